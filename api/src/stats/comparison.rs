//! One treatment against the control: every view of it, and the decision.

use serde::Serialize;

use super::{
    bayesian,
    decision::{welch_dof, Decision, Kind, Scale, Test},
    finite, power, Analysis, Bayesian, Cuped, Estimate, Power, Sequential, Significance,
};

/// Treatment against control. `None` where the data cannot support a number (no users,
/// a baseline of 0 or below for a relative lift, zero variance).
///
/// `p_value`, `absolute_ci` and `relative_ci` are the fixed-horizon test, `sequential` the
/// always-valid one; both on the scale of `decision` (relative unless the control mean is 0
/// or below), so each test's p-value is below alpha exactly when its intervals exclude 0.
/// `decision` is the experiment's test after the correction, and decides `significant`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    pub absolute_lift: Option<f64>,
    /// Fixed-horizon interval in the metric's units: the relative interval times the
    /// control mean (Welch's interval of the difference on the absolute scale).
    #[schema(min_items = 2, max_items = 2)]
    pub absolute_ci: Option<[f64; 2]>,
    pub relative_lift: Option<f64>,
    /// Fixed-horizon interval of the relative lift (Student t, Welch's degrees of freedom).
    #[schema(min_items = 2, max_items = 2)]
    pub relative_ci: Option<[f64; 2]>,
    /// Fixed-horizon p-value of the same test as the intervals.
    pub p_value: Option<f64>,
    /// `p_value` adjusted for the comparisons of all variants with the control
    /// (see [`super::adjust_p_values`]); equal to it with two variants or `correction=none`.
    pub adjusted_p_value: Option<f64>,
    /// `decision.significant`: false without a decision.
    pub significant: bool,
    /// The experiment's test (`significance`), adjusted, with intervals at the adjusted
    /// level: null when the data support no test (no variance, no users).
    pub decision: Option<Decision>,
    /// Always-valid inference, safe to look at every day.
    pub sequential: Option<Sequential>,
    /// Chance to beat control and expected loss; null without a usable variance.
    pub bayesian: Option<Bayesian>,
    /// CUPED-adjusted lift (set by the results, which know the pre-exposure metric).
    pub cuped: Option<Cuped>,
    /// Detectable lift now, and days until `target_lift` would be.
    pub power: Option<Power>,
}

/// One arm's mean, the variance of that mean (`σ²/n`), and its size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Arm {
    pub mean: f64,
    pub variance_of_mean: f64,
    pub n: f64,
}

impl Comparison {
    pub(crate) fn empty() -> Self {
        Self {
            absolute_lift: None,
            absolute_ci: None,
            relative_lift: None,
            relative_ci: None,
            p_value: None,
            adjusted_p_value: None,
            significant: false,
            decision: None,
            sequential: None,
            bayesian: None,
            cuped: None,
            power: None,
        }
    }

    /// Every view of treatment against control, and the decision by the experiment's test.
    /// `baseline` is the control's mean and per-user variance, for the power view.
    pub(crate) fn new(c: Arm, t: Arm, baseline: power::Baseline, a: &Analysis) -> Self {
        let absolute = Estimate { value: t.mean - c.mean, variance: c.variance_of_mean + t.variance_of_mean };
        // A relative lift needs a positive baseline: against a control mean of -10, a
        // treatment of -5 is better, yet -5 / -10 - 1 reads -50 %.
        let relative = (c.mean > 0.0).then(|| Estimate {
            value: t.mean / c.mean - 1.0,
            // delta method for independent means
            variance: t.variance_of_mean / (c.mean * c.mean) + t.mean * t.mean * c.variance_of_mean / c.mean.powi(4),
        });
        let (estimate, scale) = relative.map_or((absolute, Scale::Absolute), |r| (r, Scale::Relative));
        let test = |kind| Test::new(estimate, scale, c.mean, a.alpha, kind);
        let fixed = test(Kind::Fixed { dof: welch_dof(c.variance_of_mean, c.n, t.variance_of_mean, t.n) });
        let sequential = test(Kind::Sequential { n: c.n + t.n, tuning: a.sequential_tuning });
        let p_value = fixed.map(|f| f.p_value());
        let [relative_ci, absolute_ci] = match (fixed, p_value) {
            (Some(f), Some(p)) => f.intervals(p),
            _ => [None, None],
        };
        let deciding = match a.significance {
            Significance::FixedHorizon => fixed,
            Significance::Sequential => sequential,
        };
        let decision = deciding.map(|d| Decision::new(a.significance, d));
        let test = a.power_test();
        Comparison {
            absolute_lift: finite(absolute.value),
            absolute_ci,
            relative_lift: relative.and_then(|r| finite(r.value)),
            relative_ci,
            p_value,
            adjusted_p_value: p_value,
            significant: decision.as_ref().is_some_and(|d| d.significant),
            decision,
            sequential: sequential.as_ref().map(Sequential::of),
            bayesian: relative.and_then(|r| bayesian::analyse(r, a.alpha, a.prior)),
            cuped: None,
            power: Some(Power {
                mde_relative: power::mde(baseline, c.n, t.n, a.alpha, test),
                days_to_target: a
                    .target_lift
                    .and_then(|l| power::days_to_target(baseline, c.n, t.n, a.elapsed_days, a.alpha, test, l)),
            }),
        }
    }

    /// The adjusted p-value of the test that decides `significant`.
    pub(crate) fn deciding_adjusted_p_value(&self) -> Option<f64> {
        match self.decision.as_ref()?.test {
            Significance::FixedHorizon => self.adjusted_p_value,
            Significance::Sequential => self.sequential.as_ref().and_then(|s| s.adjusted_p_value),
        }
    }
}
