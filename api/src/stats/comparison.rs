//! One treatment against the control, every view of it, and which test decides
//! `significant`.

use serde::Serialize;

use super::{bayesian, power, sequential, Analysis, Bayesian, Cuped, Estimate, Power, Sequential, Significance};

/// Treatment against control. `None` where the data cannot support a number (no users,
/// a zero baseline for a relative lift, zero variance).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    pub absolute_lift: Option<f64>,
    #[schema(min_items = 2, max_items = 2)]
    pub absolute_ci: Option<[f64; 2]>,
    pub relative_lift: Option<f64>,
    #[schema(min_items = 2, max_items = 2)]
    pub relative_ci: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    /// `p_value` adjusted for the comparisons of all variants with the control
    /// (see [`adjust_p_values`]); equal to it with two variants or `correction=none`.
    pub adjusted_p_value: Option<f64>,
    /// The adjusted p-value of the test the experiment's `significance` setting names
    /// (`sequential.adjusted_p_value` by default, else `adjusted_p_value`) is < alpha.
    pub significant: bool,
    /// Always-valid inference, safe to look at every day.
    pub sequential: Option<Sequential>,
    /// Chance to beat control and expected loss; null without a usable variance.
    pub bayesian: Option<Bayesian>,
    /// CUPED-adjusted lift (set by the results, which know the pre-exposure metric).
    pub cuped: Option<Cuped>,
    /// Detectable lift now, and days until `target_lift` would be.
    pub power: Option<Power>,
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
            sequential: None,
            bayesian: None,
            cuped: None,
            power: None,
        }
    }

    /// Adds the sequential, Bayesian and power views of the same estimates, and decides
    /// `significant` by the experiment's chosen test.
    pub(crate) fn extended(
        mut self,
        absolute: Estimate,
        relative: Option<Estimate>,
        baseline: power::Baseline,
        n_c: f64,
        n_t: f64,
        a: &Analysis,
    ) -> Self {
        self.sequential = Some(sequential::analyse(absolute, relative, n_c + n_t, a.alpha, a.sequential_tuning));
        self.bayesian = relative.and_then(|r| bayesian::analyse(r, a.alpha, None));
        let test = a.power_test();
        self.power = Some(Power {
            mde_relative: power::mde(baseline, n_c, n_t, a.alpha, test),
            days_to_target: a
                .target_lift
                .and_then(|t| power::days_to_target(baseline, n_c, n_t, a.elapsed_days, a.alpha, test, t)),
        });
        self.significant = self.deciding_p_value(a.significance).is_some_and(|p| p < a.alpha);
        self
    }

    /// The adjusted p-value of the test that decides `significant`.
    pub fn deciding_p_value(&self, significance: Significance) -> Option<f64> {
        match significance {
            Significance::FixedHorizon => self.adjusted_p_value,
            Significance::Sequential => self.sequential.as_ref().and_then(|s| s.adjusted_p_value),
        }
    }
}
