//! Statistics as pure functions over sufficient statistics (counts, sums, sums of squares).
//!
//! The SQL only aggregates; everything a user acts on is computed here and unit-tested
//! against scipy/statsmodels (`scripts/reference_stats.py` produced
//! `api/tests/data/reference_stats.json`). See `docs/statistics.md` for the formulas.

pub mod bayesian;
pub mod cuped;
pub mod power;
pub mod sequential;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};

pub use bayesian::Bayesian;
pub use cuped::Cuped;
pub use power::Power;
pub use sequential::Sequential;

/// Users and conversions of one variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proportion {
    pub n: u64,
    pub x: u64,
}

/// A per-user metric of one variant: count, sum and sum of squares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub n: u64,
    pub sum: f64,
    pub sum_sq: f64,
}

impl Moments {
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }

    /// Sample variance (n - 1 in the denominator).
    pub fn variance(&self) -> Option<f64> {
        (self.n > 1).then(|| {
            let n = self.n as f64;
            ((self.sum_sq - self.sum * self.sum / n) / (n - 1.0)).max(0.0)
        })
    }
}

/// Treatment against control. `None` where the data cannot support a number (no users,
/// a zero baseline for a relative lift, zero variance).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Comparison {
    pub absolute_lift: Option<f64>,
    pub absolute_ci: Option<[f64; 2]>,
    pub relative_lift: Option<f64>,
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

/// Which test decides `significant`. Only the sequential one stays valid when results
/// are looked at before the planned sample size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Significance {
    Sequential,
    FixedHorizon,
}

impl Significance {
    pub fn as_str(self) -> &'static str {
        match self {
            Significance::Sequential => "sequential",
            Significance::FixedHorizon => "fixed_horizon",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "sequential" => Some(Significance::Sequential),
            "fixed_horizon" => Some(Significance::FixedHorizon),
            _ => None,
        }
    }
}

/// GrowthBook's default tuning parameter of the confidence sequences.
pub const DEFAULT_SEQUENTIAL_TUNING: f64 = 5000.0;

/// How comparisons are made: the experiment's settings and the analyst's question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Analysis {
    pub alpha: f64,
    pub significance: Significance,
    /// The sample size (both variants) around which the confidence sequence is tightest.
    pub sequential_tuning: f64,
    /// The relative lift `power.days_to_target` is about.
    pub target_lift: Option<f64>,
    /// Days of traffic the numbers cover (for extrapolating it).
    pub elapsed_days: f64,
}

impl Analysis {
    /// Fixed-horizon significance at `alpha`, nothing else set: for tests.
    pub fn fixed(alpha: f64) -> Self {
        Analysis {
            alpha,
            significance: Significance::FixedHorizon,
            sequential_tuning: DEFAULT_SEQUENTIAL_TUNING,
            target_lift: None,
            elapsed_days: 0.0,
        }
    }

    fn power_test(&self) -> power::Test {
        match self.significance {
            Significance::FixedHorizon => power::Test::FixedHorizon,
            Significance::Sequential => power::Test::Sequential { tuning: self.sequential_tuning },
        }
    }
}

/// A point estimate and the variance of that estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub variance: f64,
}

pub(crate) fn std_normal() -> Normal {
    // mean 0, sd 1 are valid parameters
    Normal::new(0.0, 1.0).unwrap_or_else(|_| unreachable!())
}

/// Two-sided critical value of the standard normal.
pub fn z_critical(alpha: f64) -> f64 {
    std_normal().inverse_cdf(1.0 - alpha / 2.0)
}

fn two_sided_normal_p(z: f64) -> f64 {
    (2.0 * std_normal().sf(z.abs())).min(1.0)
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

pub(crate) fn interval(center: f64, half_width: f64) -> Option<[f64; 2]> {
    (center.is_finite() && half_width.is_finite()).then_some([center - half_width, center + half_width])
}

/// Delta-method variance of `t/c - 1` for independent estimates `t` and `c`.
fn ratio_variance(c: f64, var_c: f64, t: f64, var_t: f64) -> f64 {
    var_t / (c * c) + t * t * var_c / c.powi(4)
}

/// Two-proportion z-test (pooled variance for the p-value, as statsmodels'
/// `proportions_ztest`), Wald interval of the difference, delta-method interval of the
/// relative lift.
pub fn compare_proportions(control: Proportion, treatment: Proportion, analysis: &Analysis) -> Comparison {
    if control.n == 0 || treatment.n == 0 {
        return Comparison::empty();
    }
    let alpha = analysis.alpha;
    let (n1, n2) = (control.n as f64, treatment.n as f64);
    let (p1, p2) = (control.x as f64 / n1, treatment.x as f64 / n2);
    let diff = p2 - p1;
    let z_crit = z_critical(alpha);
    let (var1, var2) = (p1 * (1.0 - p1) / n1, p2 * (1.0 - p2) / n2);
    let pooled = (control.x + treatment.x) as f64 / (n1 + n2);
    let se_pooled = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let p_value = if se_pooled > 0.0 { Some(two_sided_normal_p(diff / se_pooled)) } else { None };
    let relative = (p1 > 0.0).then(|| Estimate { value: p2 / p1 - 1.0, variance: ratio_variance(p1, var1, p2, var2) });
    Comparison {
        absolute_lift: Some(diff),
        absolute_ci: interval(diff, z_crit * (var1 + var2).sqrt()),
        relative_lift: relative.and_then(|r| finite(r.value)),
        relative_ci: relative.and_then(|r| interval(r.value, z_crit * r.variance.sqrt())),
        significant: false,
        adjusted_p_value: p_value,
        p_value,
        ..Comparison::empty()
    }
    .extended(
        Estimate { value: diff, variance: var1 + var2 },
        relative,
        power::Baseline { mean: p1, variance: p1 * (1.0 - p1) },
        n1,
        n2,
        analysis,
    )
}

/// Welch's t-test on the means (scipy's `ttest_ind(equal_var=False)`), the interval of
/// the difference with Welch-Satterthwaite degrees of freedom, and a delta-method
/// (normal) interval of the relative lift.
pub fn compare_means(control: Moments, treatment: Moments, analysis: &Analysis) -> Comparison {
    let alpha = analysis.alpha;
    let (Some(m1), Some(m2), Some(v1), Some(v2)) =
        (control.mean(), treatment.mean(), control.variance(), treatment.variance())
    else {
        return Comparison::empty();
    };
    let (n1, n2) = (control.n as f64, treatment.n as f64);
    let (s1, s2) = (v1 / n1, v2 / n2);
    let se = (s1 + s2).sqrt();
    let diff = m2 - m1;
    let (p_value, absolute_ci) = if se > 0.0 {
        let df = (s1 + s2).powi(2) / (s1 * s1 / (n1 - 1.0) + s2 * s2 / (n2 - 1.0));
        match StudentsT::new(0.0, 1.0, df) {
            Ok(t) => {
                let p = (2.0 * t.sf((diff / se).abs())).min(1.0);
                (Some(p), interval(diff, t.inverse_cdf(1.0 - alpha / 2.0) * se))
            }
            Err(_) => (None, None),
        }
    } else {
        (None, Some([diff, diff]))
    };
    let relative = (m1 != 0.0).then(|| Estimate { value: m2 / m1 - 1.0, variance: ratio_variance(m1, s1, m2, s2) });
    Comparison {
        absolute_lift: Some(diff),
        absolute_ci,
        relative_lift: relative.and_then(|r| finite(r.value)),
        relative_ci: relative.and_then(|r| interval(r.value, z_critical(alpha) * r.variance.sqrt())),
        significant: false,
        adjusted_p_value: p_value,
        p_value,
        ..Comparison::empty()
    }
    .extended(
        Estimate { value: diff, variance: s1 + s2 },
        relative,
        power::Baseline { mean: m1, variance: v1 },
        n1,
        n2,
        analysis,
    )
}

impl Comparison {
    fn empty() -> Self {
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
    fn extended(
        mut self,
        absolute: Estimate,
        relative: Option<Estimate>,
        baseline: power::Baseline,
        n_c: f64,
        n_t: f64,
        a: &Analysis,
    ) -> Self {
        self.sequential = Some(sequential::analyse(absolute, relative, n_c + n_t, a.alpha, a.sequential_tuning));
        self.bayesian = relative.and_then(|r| bayesian::analyse(r, a.alpha));
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

/// How p-values of several treatments against one control are adjusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Correction {
    /// Holm-Bonferroni step-down: controls the family-wise error rate.
    Holm,
    /// Benjamini-Hochberg step-up: controls the false discovery rate.
    Bh,
    /// Unadjusted.
    None,
}

/// Adjusted p-values in the order given (statsmodels' `multipletests`, methods `holm` and
/// `fdr_bh`).
pub fn adjust_p_values(p: &[f64], correction: Correction) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut adjusted = p.to_vec();
    match correction {
        Correction::None => {}
        Correction::Holm => {
            let mut running: f64 = 0.0;
            for (rank, &i) in order.iter().enumerate() {
                running = running.max(((m - rank) as f64 * p[i]).min(1.0));
                adjusted[i] = running;
            }
        }
        Correction::Bh => {
            let mut running: f64 = 1.0;
            for (rank, &i) in order.iter().enumerate().rev() {
                running = running.min((m as f64 / (rank + 1) as f64 * p[i]).min(1.0));
                adjusted[i] = running;
            }
        }
    }
    adjusted
}

/// Adjusts the p-values of a family of comparisons in place and re-decides significance
/// on the adjusted values. Comparisons without a p-value take no part.
/// Fixed-horizon and sequential p-values are adjusted as two separate families.
pub fn apply_correction(family: &mut [&mut Comparison], correction: Correction, analysis: &Analysis) {
    let tested: Vec<usize> = (0..family.len()).filter(|&i| family[i].p_value.is_some()).collect();
    let p: Vec<f64> = tested.iter().filter_map(|&i| family[i].p_value).collect();
    for (&i, adjusted) in tested.iter().zip(adjust_p_values(&p, correction)) {
        family[i].adjusted_p_value = Some(adjusted);
    }
    let sequential_p = |c: &Comparison| c.sequential.as_ref().and_then(|s| s.p_value);
    let tested: Vec<usize> = (0..family.len()).filter(|&i| sequential_p(family[i]).is_some()).collect();
    let p: Vec<f64> = tested.iter().filter_map(|&i| sequential_p(family[i])).collect();
    for (&i, adjusted) in tested.iter().zip(adjust_p_values(&p, correction)) {
        if let Some(s) = family[i].sequential.as_mut() {
            s.adjusted_p_value = Some(adjusted);
        }
    }
    for c in family.iter_mut() {
        c.significant = c.deciding_p_value(analysis.significance).is_some_and(|p| p < analysis.alpha);
    }
}

/// Sample-ratio-mismatch: Pearson's chi-square goodness of fit of observed users against
/// the allocation weights (scipy's `chisquare`). `None` without users.
pub fn srm_p_value(observed: &[u64], weights: &[f64]) -> Option<f64> {
    let total: u64 = observed.iter().sum();
    let weight_sum: f64 = weights.iter().sum();
    if total == 0 || observed.len() < 2 || observed.len() != weights.len() || weight_sum <= 0.0 {
        return None;
    }
    let chi2: f64 = observed
        .iter()
        .zip(weights)
        .map(|(&o, &w)| {
            let expected = total as f64 * w / weight_sum;
            (o as f64 - expected).powi(2) / expected
        })
        .sum();
    let dist = ChiSquared::new((observed.len() - 1) as f64).ok()?;
    Some(dist.sf(chi2))
}

/// The threshold below which the SRM test reports a mismatch.
pub const SRM_THRESHOLD: f64 = 0.001;

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Reference {
        views: Vec<ViewCase>,
        cuped: Vec<CupedCase>,
        cuped_theta_three_variants: ThetaCase,
        power: Vec<PowerCase>,
        corrections: Vec<CorrectionCase>,
        proportions: Vec<PropCase>,
        means: Vec<MeanCase>,
        srm: Vec<SrmCase>,
    }
    #[derive(Deserialize)]
    struct PropCase {
        n1: u64,
        x1: u64,
        n2: u64,
        x2: u64,
        alpha: f64,
        p_value: f64,
        absolute_ci: [f64; 2],
        relative_lift: f64,
        relative_ci: [f64; 2],
    }
    #[derive(Deserialize)]
    struct MeanCase {
        n1: u64,
        sum1: f64,
        sum_sq1: f64,
        n2: u64,
        sum2: f64,
        sum_sq2: f64,
        alpha: f64,
        p_value: f64,
        absolute_ci: [f64; 2],
        relative_lift: f64,
        relative_ci: [f64; 2],
    }
    #[derive(Deserialize)]
    struct Arm {
        n: u64,
        x: Option<u64>,
        sum: Option<f64>,
        sum_sq: Option<f64>,
    }
    #[derive(Deserialize)]
    struct SequentialRef {
        p_value: f64,
        absolute_ci: [f64; 2],
        relative_ci: [f64; 2],
    }
    #[derive(Deserialize)]
    struct BayesianRef {
        chance_to_beat_control: f64,
        expected_loss: f64,
        credible_interval: [f64; 2],
    }
    #[derive(Deserialize)]
    struct ViewCase {
        control: Arm,
        treatment: Arm,
        alpha: f64,
        tuning: f64,
        sequential: SequentialRef,
        bayesian: BayesianRef,
    }
    #[derive(Deserialize)]
    struct PairedRef {
        n: u64,
        y_sum: f64,
        y_sum_sq: f64,
        x_sum: f64,
        x_sum_sq: f64,
        xy_sum: f64,
        binary: bool,
    }
    #[derive(Deserialize)]
    struct CupedCase {
        control: PairedRef,
        treatment: PairedRef,
        alpha: f64,
        theta: f64,
        relative_lift: f64,
        relative_ci: [f64; 2],
        p_value: f64,
        variance_reduction: f64,
    }
    #[derive(Deserialize)]
    struct ThetaCase {
        variants: Vec<PairedRef>,
        theta: f64,
    }
    #[derive(Deserialize)]
    struct PowerCase {
        mean: f64,
        variance: f64,
        n_c: f64,
        n_t: f64,
        alpha: f64,
        tuning: Option<f64>,
        elapsed_days: f64,
        target: f64,
        mde_relative: f64,
        days_to_target: f64,
    }
    #[derive(Deserialize)]
    struct CorrectionCase {
        p: Vec<f64>,
        holm: Vec<f64>,
        bh: Vec<f64>,
    }
    #[derive(Deserialize)]
    struct SrmCase {
        observed: Vec<u64>,
        weights: Vec<f64>,
        p_value: f64,
    }

    fn reference() -> Reference {
        serde_json::from_str(include_str!("../../tests/data/reference_stats.json")).expect("reference file parses")
    }

    fn close(a: f64, b: f64, what: &str) {
        let tol = 1e-9_f64.max(b.abs() * 1e-7);
        assert!((a - b).abs() <= tol, "{what}: ours {a} vs reference {b}");
    }

    fn close_pair(a: [f64; 2], b: [f64; 2], what: &str) {
        close(a[0], b[0], &format!("{what} lo"));
        close(a[1], b[1], &format!("{what} hi"));
    }

    fn compare(c: &Arm, t: &Arm, analysis: &Analysis) -> Comparison {
        match (c.x, t.x) {
            (Some(x1), Some(x2)) => {
                compare_proportions(Proportion { n: c.n, x: x1 }, Proportion { n: t.n, x: x2 }, analysis)
            }
            _ => {
                let m = |a: &Arm| Moments { n: a.n, sum: a.sum.expect("sum"), sum_sq: a.sum_sq.expect("sum_sq") };
                compare_means(m(c), m(t), analysis)
            }
        }
    }

    #[test]
    fn sequential_and_bayesian_views_match_gbstats() {
        let cases = reference().views;
        assert!(cases.len() >= 6);
        for (i, c) in cases.iter().enumerate() {
            let analysis = Analysis {
                significance: Significance::Sequential,
                sequential_tuning: c.tuning,
                ..Analysis::fixed(c.alpha)
            };
            let r = compare(&c.control, &c.treatment, &analysis);
            let s = r.sequential.as_ref().expect("sequential");
            close(s.p_value.expect("p"), c.sequential.p_value, &format!("case {i} sequential p"));
            close_pair(s.absolute_ci.expect("ci"), c.sequential.absolute_ci, &format!("case {i} sequential abs ci"));
            close_pair(s.relative_ci.expect("ci"), c.sequential.relative_ci, &format!("case {i} sequential rel ci"));
            assert_eq!(
                r.significant,
                c.sequential.p_value < c.alpha,
                "case {i}: significance follows the sequential p"
            );
            let b = r.bayesian.as_ref().expect("bayesian");
            close(b.chance_to_beat_control, c.bayesian.chance_to_beat_control, &format!("case {i} chance to beat"));
            close(b.expected_loss, c.bayesian.expected_loss, &format!("case {i} expected loss"));
            close_pair(b.credible_interval, c.bayesian.credible_interval, &format!("case {i} credible interval"));
        }
    }

    #[test]
    fn cuped_matches_gbstats_regression_adjustment() {
        let cases = reference().cuped;
        assert!(cases.len() >= 6);
        let paired = |p: &PairedRef| cuped::Paired {
            n: p.n,
            y_sum: p.y_sum,
            y_sum_sq: p.y_sum_sq,
            x_sum: p.x_sum,
            x_sum_sq: p.x_sum_sq,
            xy_sum: p.xy_sum,
            binary: p.binary,
        };
        for (i, c) in cases.iter().enumerate() {
            let (a, b) = (paired(&c.control), paired(&c.treatment));
            let r = cuped::analyse(&a, &b, cuped::theta(&[a, b]), c.alpha).expect("cuped");
            close(r.theta, c.theta, &format!("case {i} theta"));
            close(r.relative_lift, c.relative_lift, &format!("case {i} lift"));
            close_pair(r.relative_ci.expect("ci"), c.relative_ci, &format!("case {i} ci"));
            close(r.p_value.expect("p"), c.p_value, &format!("case {i} p"));
            close(r.variance_reduction, c.variance_reduction, &format!("case {i} variance reduction"));
            assert!(r.variance_reduction > 0.0, "case {i}: a correlated covariate reduces variance");
        }
        let three = reference().cuped_theta_three_variants;
        let variants: Vec<cuped::Paired> = three.variants.iter().map(paired).collect();
        close(cuped::theta(&variants), three.theta, "theta pooled over three variants");
    }

    #[test]
    fn power_matches_statsmodels_and_the_sequential_boundary() {
        let cases = reference().power;
        assert!(cases.len() >= 4);
        for (i, c) in cases.iter().enumerate() {
            let test = match c.tuning {
                None => power::Test::FixedHorizon,
                Some(tuning) => power::Test::Sequential { tuning },
            };
            let base = power::Baseline { mean: c.mean, variance: c.variance };
            let mde = power::mde(base, c.n_c, c.n_t, c.alpha, test).expect("mde");
            close(mde, c.mde_relative, &format!("case {i} mde"));
            let days =
                power::days_to_target(base, c.n_c, c.n_t, c.elapsed_days, c.alpha, test, c.target).expect("days");
            assert!(
                (days - c.days_to_target).abs() <= 1e-6_f64.max(c.days_to_target * 1e-7),
                "case {i} days: {days} vs {}",
                c.days_to_target
            );
        }
        let base = power::Baseline { mean: 0.1, variance: 0.09 };
        let fixed = power::mde(base, 1000.0, 1000.0, 0.05, power::Test::FixedHorizon).expect("mde");
        let seq = power::mde(base, 1000.0, 1000.0, 0.05, power::Test::Sequential { tuning: 5000.0 }).expect("mde");
        assert!(seq > fixed, "peeking safely costs power: {seq} vs {fixed}");
    }

    /// Calibration (seeded): A/A experiments looked at after every 200 users per variant,
    /// 20 times. The naive test "finds" an effect in far more than alpha of them; the
    /// sequential test, the default for `significant`, stays under alpha.
    #[test]
    fn sequential_test_stays_calibrated_under_peeking_and_the_naive_test_does_not() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(20_261_127);
        let (simulations, peeks, step, alpha) = (500, 20, 200, 0.05);
        let analysis = Analysis { significance: Significance::Sequential, ..Analysis::fixed(alpha) };
        // [conversion, value] x [naive, sequential]
        let mut false_positives = [[0u32; 2]; 2];
        for _ in 0..simulations {
            let (mut c, mut t) = (Proportion { n: 0, x: 0 }, Proportion { n: 0, x: 0 });
            let zero = Moments { n: 0, sum: 0.0, sum_sq: 0.0 };
            let (mut mc, mut mt) = (zero, zero);
            let mut hit = [[false; 2]; 2];
            for _ in 0..peeks {
                for _ in 0..step {
                    for (p, m) in [(&mut c, &mut mc), (&mut t, &mut mt)] {
                        p.n += 1;
                        p.x += u64::from(rng.random::<f64>() < 0.1);
                        let value = -10.0 * (1.0 - rng.random::<f64>()).ln();
                        *m = Moments { n: m.n + 1, sum: m.sum + value, sum_sq: m.sum_sq + value * value };
                    }
                }
                let comparisons = [compare_proportions(c, t, &analysis), compare_means(mc, mt, &analysis)];
                for (metric, r) in comparisons.iter().enumerate() {
                    hit[metric][0] |= r.p_value.is_some_and(|p| p < alpha);
                    hit[metric][1] |= r.significant;
                }
            }
            for metric in 0..2 {
                for test in 0..2 {
                    false_positives[metric][test] += u32::from(hit[metric][test]);
                }
            }
        }
        let rate = |n: u32| f64::from(n) / f64::from(simulations);
        for (metric, name) in ["conversion", "value"].iter().enumerate() {
            let (naive, sequential) = (rate(false_positives[metric][0]), rate(false_positives[metric][1]));
            eprintln!("{name}: false positives over {peeks} looks: naive {naive}, sequential {sequential}");
            assert!(naive > 2.0 * alpha, "{name}: peeking should break the naive test, got {naive}");
            assert!(sequential <= alpha, "{name}: sequential false-positive rate {sequential} > {alpha}");
        }
    }

    #[test]
    fn proportions_match_statsmodels() {
        let cases = reference().proportions;
        assert!(cases.len() >= 4);
        for c in cases {
            let r = compare_proportions(
                Proportion { n: c.n1, x: c.x1 },
                Proportion { n: c.n2, x: c.x2 },
                &Analysis::fixed(c.alpha),
            );
            let what = format!("{}/{} vs {}/{}", c.x1, c.n1, c.x2, c.n2);
            close(r.p_value.expect("p"), c.p_value, &format!("p {what}"));
            let ci = r.absolute_ci.expect("ci");
            close(ci[0], c.absolute_ci[0], &format!("ci lo {what}"));
            close(ci[1], c.absolute_ci[1], &format!("ci hi {what}"));
            close(r.relative_lift.expect("rel"), c.relative_lift, &format!("rel {what}"));
            let rci = r.relative_ci.expect("rel ci");
            close(rci[0], c.relative_ci[0], &format!("rel ci lo {what}"));
            close(rci[1], c.relative_ci[1], &format!("rel ci hi {what}"));
            assert_eq!(r.significant, c.p_value < c.alpha);
        }
    }

    #[test]
    fn means_match_scipy_welch() {
        let cases = reference().means;
        assert!(cases.len() >= 3);
        for c in cases {
            let r = compare_means(
                Moments { n: c.n1, sum: c.sum1, sum_sq: c.sum_sq1 },
                Moments { n: c.n2, sum: c.sum2, sum_sq: c.sum_sq2 },
                &Analysis::fixed(c.alpha),
            );
            close(r.p_value.expect("p"), c.p_value, "welch p");
            let ci = r.absolute_ci.expect("ci");
            close(ci[0], c.absolute_ci[0], "welch ci lo");
            close(ci[1], c.absolute_ci[1], "welch ci hi");
            close(r.relative_lift.expect("rel"), c.relative_lift, "rel");
            let rci = r.relative_ci.expect("rel ci");
            close(rci[0], c.relative_ci[0], "rel ci lo");
            close(rci[1], c.relative_ci[1], "rel ci hi");
        }
    }

    #[test]
    fn corrections_match_statsmodels_multipletests() {
        let cases = reference().corrections;
        assert!(cases.len() >= 4);
        for c in cases {
            for (ours, theirs) in adjust_p_values(&c.p, Correction::Holm).iter().zip(&c.holm) {
                close(*ours, *theirs, &format!("holm {:?}", c.p));
            }
            for (ours, theirs) in adjust_p_values(&c.p, Correction::Bh).iter().zip(&c.bh) {
                close(*ours, *theirs, &format!("bh {:?}", c.p));
            }
            assert_eq!(adjust_p_values(&c.p, Correction::None), c.p);
        }
    }

    #[test]
    fn corrected_significance_follows_the_adjusted_p_value() {
        let with_p = |p: Option<f64>| Comparison {
            p_value: p,
            adjusted_p_value: p,
            significant: p.is_some_and(|p| p < 0.05),
            ..Comparison::empty()
        };
        let (mut a, mut b, mut c) = (with_p(Some(0.03)), with_p(None), with_p(Some(0.04)));
        apply_correction(&mut [&mut a, &mut b, &mut c], Correction::Holm, &Analysis::fixed(0.05));
        assert_eq!((a.adjusted_p_value, c.adjusted_p_value), (Some(0.06), Some(0.06)));
        assert!(!a.significant && !c.significant, "0.03 and 0.04 are not significant as a family of two");
        assert_eq!((b.adjusted_p_value, b.significant), (None, false));
    }

    #[test]
    fn srm_matches_scipy_chisquare() {
        for c in reference().srm {
            close(srm_p_value(&c.observed, &c.weights).expect("p"), c.p_value, "srm");
        }
    }

    #[test]
    fn degenerate_inputs_give_no_numbers_rather_than_nan() {
        let a = Analysis::fixed(0.05);
        let none = compare_proportions(Proportion { n: 0, x: 0 }, Proportion { n: 10, x: 1 }, &a);
        assert_eq!(none.p_value, None);
        assert!(!none.significant);
        let zero_base = compare_proportions(Proportion { n: 10, x: 0 }, Proportion { n: 10, x: 3 }, &a);
        assert_eq!(zero_base.relative_lift, None);
        assert!(zero_base.p_value.is_some());
        let nobody_converts = compare_proportions(Proportion { n: 10, x: 0 }, Proportion { n: 10, x: 0 }, &a);
        assert_eq!(nobody_converts.p_value, None);
        let one_user =
            compare_means(Moments { n: 1, sum: 3.0, sum_sq: 9.0 }, Moments { n: 5, sum: 5.0, sum_sq: 5.0 }, &a);
        assert_eq!(one_user.p_value, None);
        assert_eq!(srm_p_value(&[0, 0], &[50.0, 50.0]), None);
        let json = serde_json::to_string(&none).expect("serialises");
        assert!(!json.contains("NaN"), "{json}");
    }
}
