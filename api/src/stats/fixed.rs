//! The fixed-horizon tests: two-proportion z-test and Welch's t-test, with intervals of the
//! absolute and the relative (delta method) lift.

use statrs::distribution::{ContinuousCDF, StudentsT};

use super::{
    finite, interval, power, two_sided_normal_p, z_critical, Analysis, Comparison, Estimate, Moments, Proportion,
};

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
        (None, None)
    };
    // A relative lift needs a positive baseline: against a control mean of -10, a treatment
    // of -5 is better, yet -5 / -10 - 1 reads -50 %.
    let relative = (m1 > 0.0).then(|| Estimate { value: m2 / m1 - 1.0, variance: ratio_variance(m1, s1, m2, s2) });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::reference::{check_fixed, reference};

    #[test]
    fn proportions_match_statsmodels() {
        let cases = reference().proportions;
        assert!(cases.len() >= 4);
        for c in cases {
            let (c1, c2) = (Proportion { n: c.n1, x: c.x1 }, Proportion { n: c.n2, x: c.x2 });
            let r = compare_proportions(c1, c2, &Analysis::fixed(c.expected.alpha));
            check_fixed(&r, &c.expected, &format!("{}/{} vs {}/{}", c.x1, c.n1, c.x2, c.n2));
            assert_eq!(r.significant, c.expected.p_value < c.expected.alpha);
        }
    }

    #[test]
    fn means_match_scipy_welch() {
        let cases = reference().means;
        assert!(cases.len() >= 3);
        for c in cases {
            let control = Moments { n: c.n1, sum: c.sum1, sum_sq: c.sum_sq1 };
            let treatment = Moments { n: c.n2, sum: c.sum2, sum_sq: c.sum_sq2 };
            let r = compare_means(control, treatment, &Analysis::fixed(c.expected.alpha));
            check_fixed(&r, &c.expected, "welch");
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
        let json = serde_json::to_string(&none).expect("serialises");
        assert!(!json.contains("NaN"), "{json}");
    }

    #[test]
    fn no_interval_without_variance() {
        let a = Analysis::fixed(0.05);
        for (c, t) in [(0, 0), (10, 10)] {
            let r = compare_proportions(Proportion { n: 10, x: c }, Proportion { n: 10, x: t }, &a);
            assert_eq!((r.absolute_ci, r.relative_ci), (None, None), "{c}/10 vs {t}/10");
            assert!(r.sequential.as_ref().is_none_or(|s| s.absolute_ci.is_none()), "{c}/10 vs {t}/10");
        }
        let constant =
            compare_means(Moments { n: 5, sum: 5.0, sum_sq: 5.0 }, Moments { n: 5, sum: 10.0, sum_sq: 20.0 }, &a);
        assert_eq!(constant.absolute_lift, Some(1.0));
        assert_eq!((constant.absolute_ci, constant.p_value), (None, None));
        // Constant values that binary cannot hold exactly: the sums leave rounding noise.
        let sums = |n: u64, v: f64| (0..n).fold((0.0, 0.0), |(s, q), _| (s + v, q + v * v));
        let ((s1, q1), (s2, q2)) = (sums(1000, 0.1), sums(1000, 9.99));
        let noisy =
            compare_means(Moments { n: 1000, sum: s1, sum_sq: q1 }, Moments { n: 1000, sum: s2, sum_sq: q2 }, &a);
        assert_eq!((noisy.absolute_ci, noisy.p_value), (None, None), "{noisy:?}");
    }

    #[test]
    fn a_non_positive_control_mean_has_no_relative_numbers() {
        let a = Analysis::fixed(0.05);
        let control = Moments { n: 100, sum: -1000.0, sum_sq: 100.0 * 109.0 };
        let treatment = Moments { n: 100, sum: -500.0, sum_sq: 100.0 * 34.0 };
        let r = compare_means(control, treatment, &a);
        assert_eq!((r.relative_lift, r.relative_ci), (None, None));
        assert!(r.bayesian.is_none(), "no chance to beat without a relative scale: {:?}", r.bayesian);
        assert!(r.sequential.as_ref().is_some_and(|s| s.relative_ci.is_none()));
        assert_eq!(r.absolute_lift, Some(5.0));
        assert!(r.p_value.is_some_and(|p| p < 1e-6), "the absolute test still decides");
        assert_eq!(r.power.as_ref().and_then(|p| p.mde_relative), None);
    }
}
