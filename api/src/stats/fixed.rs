//! The comparisons of a conversion rate and of a per-user mean: each arm's mean and the
//! variance of that mean, then [`Comparison::new`] (the tests are in [`super::decision`]).

use super::{comparison::Arm, power, Analysis, Comparison, Moments, Proportion, RatioMoments};

/// Conversion rates: the variance of a rate is `p(1 − p)/n` (gbstats' `ProportionStatistic`).
pub fn compare_proportions(control: Proportion, treatment: Proportion, analysis: &Analysis) -> Comparison {
    if control.n == 0 || treatment.n == 0 || control.x > control.n || treatment.x > treatment.n {
        return Comparison::empty();
    }
    let arm = |p: Proportion| {
        let (n, rate) = (p.n as f64, p.x as f64 / p.n as f64);
        Arm { mean: rate, variance_of_mean: rate * (1.0 - rate) / n, n }
    };
    let c = arm(control);
    let baseline = power::Baseline { mean: c.mean, variance: c.mean * (1.0 - c.mean) };
    Comparison::new(c, arm(treatment), baseline, analysis)
}

/// Per-user means: the sample variance (n − 1) over n (gbstats' `SampleMeanStatistic`);
/// on the absolute scale this is Welch's t-test (scipy's `ttest_ind(equal_var=False)`).
pub fn compare_means(control: Moments, treatment: Moments, analysis: &Analysis) -> Comparison {
    let arm = |m: Moments| Some(Arm { mean: m.mean()?, variance_of_mean: m.variance()? / m.n as f64, n: m.n as f64 });
    let (Some(c), Some(t), Some(variance)) = (arm(control), arm(treatment), control.variance()) else {
        return Comparison::empty();
    };
    Comparison::new(c, t, power::Baseline { mean: c.mean, variance }, analysis)
}

/// Ratios of sums (revenue per order, clicks per session): the delta-method variance of
/// each variant's ratio over its users (gbstats' `RatioStatistic`), then the same tests.
pub fn compare_ratios(control: RatioMoments, treatment: RatioMoments, analysis: &Analysis) -> Comparison {
    let arm =
        |m: RatioMoments| Some(Arm { mean: m.ratio()?, variance_of_mean: m.variance()? / m.n as f64, n: m.n as f64 });
    let (Some(c), Some(t), Some(variance)) = (arm(control), arm(treatment), control.variance()) else {
        return Comparison::empty();
    };
    Comparison::new(c, t, power::Baseline { mean: c.mean, variance }, analysis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::reference::{check_fixed, close, close_pair, reference};

    #[test]
    fn proportions_match_gbstats_relative_t_test() {
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
    fn means_match_gbstats_and_scipy_welch_below_a_positive_control() {
        let cases = reference().means;
        assert!(cases.len() >= 3);
        for c in cases {
            let control = Moments { n: c.n1, sum: c.sum1, sum_sq: c.sum_sq1 };
            let treatment = Moments { n: c.n2, sum: c.sum2, sum_sq: c.sum_sq2 };
            let r = compare_means(control, treatment, &Analysis::fixed(c.expected.alpha));
            check_fixed(&r, &c.expected, "means");
            assert_eq!(r.significant, c.expected.p_value < c.expected.alpha);
        }
    }

    #[test]
    fn ratios_match_gbstats_ratio_statistic() {
        let cases = reference().ratios;
        assert!(cases.len() >= 3);
        for (i, c) in cases.iter().enumerate() {
            let m = |s: &crate::stats::reference::RatioSums| RatioMoments {
                n: s.n,
                num_sum: s.num_sum,
                num_sum_sq: s.num_sum_sq,
                den_sum: s.den_sum,
                den_sum_sq: s.den_sum_sq,
                num_den: s.num_den,
            };
            let (control, treatment) = (m(&c.control), m(&c.treatment));
            close(control.ratio().expect("ratio"), c.control_ratio, &format!("ratio {i} control"));
            close(treatment.ratio().expect("ratio"), c.treatment_ratio, &format!("ratio {i} treatment"));
            let fixed = compare_ratios(control, treatment, &Analysis::fixed(c.alpha));
            close(fixed.p_value.expect("p"), c.p_value, &format!("ratio {i} p"));
            close_pair(fixed.relative_ci.expect("ci"), c.relative_ci, &format!("ratio {i} ci"));
            let analysis = Analysis {
                significance: crate::stats::Significance::Sequential,
                sequential_tuning: c.tuning,
                ..Analysis::fixed(c.alpha)
            };
            let seq = compare_ratios(control, treatment, &analysis);
            let s = seq.sequential.as_ref().expect("sequential");
            close(s.p_value.expect("p"), c.sequential_p_value, &format!("ratio {i} sequential p"));
            close_pair(s.relative_ci.expect("ci"), c.sequential_relative_ci, &format!("ratio {i} sequential ci"));
            assert_eq!(seq.significant, c.sequential_p_value < c.alpha, "ratio {i}");
        }
        let none = RatioMoments { n: 10, num_sum: 5.0, num_sum_sq: 5.0, ..Default::default() };
        assert_eq!((none.ratio(), none.variance()), (None, None), "no denominator, no ratio");
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
        let impossible = compare_proportions(Proportion { n: 3, x: 5 }, Proportion { n: 10, x: 1 }, &a);
        assert_eq!((impossible.p_value, impossible.absolute_lift, impossible.decision), (None, None, None));
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
        let d = r.decision.as_ref().expect("decision");
        assert_eq!((d.scale, d.relative_ci, r.significant), (crate::stats::Scale::Absolute, None, true));
        assert!(d.absolute_ci.is_some_and(|[lo, _]| lo > 0.0), "{d:?}");
        assert_eq!(r.power.as_ref().and_then(|p| p.mde_relative), None);
    }
}
