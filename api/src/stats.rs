//! Statistics as pure functions over sufficient statistics (counts, sums, sums of squares).
//!
//! The SQL only aggregates; everything a user acts on is computed here and unit-tested
//! against scipy/statsmodels (`scripts/reference_stats.py` produced
//! `api/tests/data/reference_stats.json`). See `docs/statistics.md` for the formulas.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF, Normal, StudentsT};

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
    /// `adjusted_p_value < alpha`.
    pub significant: bool,
}

fn std_normal() -> Normal {
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

fn interval(center: f64, half_width: f64) -> Option<[f64; 2]> {
    (center.is_finite() && half_width.is_finite()).then_some([center - half_width, center + half_width])
}

/// Delta-method variance of `t/c - 1` for independent estimates `t` and `c`.
fn ratio_variance(c: f64, var_c: f64, t: f64, var_t: f64) -> f64 {
    var_t / (c * c) + t * t * var_c / c.powi(4)
}

/// Two-proportion z-test (pooled variance for the p-value, as statsmodels'
/// `proportions_ztest`), Wald interval of the difference, delta-method interval of the
/// relative lift.
pub fn compare_proportions(control: Proportion, treatment: Proportion, alpha: f64) -> Comparison {
    if control.n == 0 || treatment.n == 0 {
        return Comparison::empty();
    }
    let (n1, n2) = (control.n as f64, treatment.n as f64);
    let (p1, p2) = (control.x as f64 / n1, treatment.x as f64 / n2);
    let diff = p2 - p1;
    let z_crit = z_critical(alpha);
    let (var1, var2) = (p1 * (1.0 - p1) / n1, p2 * (1.0 - p2) / n2);
    let pooled = (control.x + treatment.x) as f64 / (n1 + n2);
    let se_pooled = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)).sqrt();
    let p_value = if se_pooled > 0.0 { Some(two_sided_normal_p(diff / se_pooled)) } else { None };
    let (relative_lift, relative_ci) = if p1 > 0.0 {
        let rel = p2 / p1 - 1.0;
        (finite(rel), interval(rel, z_crit * ratio_variance(p1, var1, p2, var2).sqrt()))
    } else {
        (None, None)
    };
    Comparison {
        absolute_lift: Some(diff),
        absolute_ci: interval(diff, z_crit * (var1 + var2).sqrt()),
        relative_lift,
        relative_ci,
        significant: p_value.is_some_and(|p| p < alpha),
        adjusted_p_value: p_value,
        p_value,
    }
}

/// Welch's t-test on the means (scipy's `ttest_ind(equal_var=False)`), the interval of
/// the difference with Welch-Satterthwaite degrees of freedom, and a delta-method
/// (normal) interval of the relative lift.
pub fn compare_means(control: Moments, treatment: Moments, alpha: f64) -> Comparison {
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
    let (relative_lift, relative_ci) = if m1 != 0.0 {
        let rel = m2 / m1 - 1.0;
        (finite(rel), interval(rel, z_critical(alpha) * ratio_variance(m1, s1, m2, s2).sqrt()))
    } else {
        (None, None)
    };
    Comparison {
        absolute_lift: Some(diff),
        absolute_ci,
        relative_lift,
        relative_ci,
        significant: p_value.is_some_and(|p| p < alpha),
        adjusted_p_value: p_value,
        p_value,
    }
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
pub fn apply_correction(family: &mut [&mut Comparison], correction: Correction, alpha: f64) {
    let tested: Vec<usize> = (0..family.len()).filter(|&i| family[i].p_value.is_some()).collect();
    let p: Vec<f64> = tested.iter().filter_map(|&i| family[i].p_value).collect();
    for (&i, adjusted) in tested.iter().zip(adjust_p_values(&p, correction)) {
        family[i].adjusted_p_value = Some(adjusted);
        family[i].significant = adjusted < alpha;
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
        serde_json::from_str(include_str!("../tests/data/reference_stats.json")).expect("reference file parses")
    }

    fn close(a: f64, b: f64, what: &str) {
        let tol = 1e-9_f64.max(b.abs() * 1e-7);
        assert!((a - b).abs() <= tol, "{what}: ours {a} vs reference {b}");
    }

    #[test]
    fn proportions_match_statsmodels() {
        let cases = reference().proportions;
        assert!(cases.len() >= 4);
        for c in cases {
            let r = compare_proportions(Proportion { n: c.n1, x: c.x1 }, Proportion { n: c.n2, x: c.x2 }, c.alpha);
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
                c.alpha,
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
        apply_correction(&mut [&mut a, &mut b, &mut c], Correction::Holm, 0.05);
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
        let none = compare_proportions(Proportion { n: 0, x: 0 }, Proportion { n: 10, x: 1 }, 0.05);
        assert_eq!(none.p_value, None);
        assert!(!none.significant);
        let zero_base = compare_proportions(Proportion { n: 10, x: 0 }, Proportion { n: 10, x: 3 }, 0.05);
        assert_eq!(zero_base.relative_lift, None);
        assert!(zero_base.p_value.is_some());
        let nobody_converts = compare_proportions(Proportion { n: 10, x: 0 }, Proportion { n: 10, x: 0 }, 0.05);
        assert_eq!(nobody_converts.p_value, None);
        let one_user =
            compare_means(Moments { n: 1, sum: 3.0, sum_sq: 9.0 }, Moments { n: 5, sum: 5.0, sum_sq: 5.0 }, 0.05);
        assert_eq!(one_user.p_value, None);
        assert_eq!(srm_p_value(&[0, 0], &[50.0, 50.0]), None);
        let json = serde_json::to_string(&none).expect("serialises");
        assert!(!json.contains("NaN"), "{json}");
    }
}
