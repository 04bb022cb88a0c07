//! One test on one scale: a p-value and intervals that always agree, and the decision
//! (`significant`) they support.
//!
//! Both tests work on the **relative** lift `t/c − 1` (delta-method variance), as GrowthBook's
//! gbstats does by default (`difference_type="relative"`): the fixed-horizon test is its
//! `TwoSidedTTest` (Student t with Welch's degrees of freedom), the sequential one its
//! `SequentialTwoSidedTTest` (a confidence sequence). The absolute interval is the relative
//! one times the control mean: the same interval in the metric's units, centred on the
//! absolute lift. Without a positive control mean there is no relative lift, and the same
//! test runs on the absolute difference (`scale = absolute`, no relative interval).
//!
//! A correction (Holm, BH) raises p-values; the decision's intervals widen to match the
//! adjusted p-value (as GrowthBook adjusts intervals since its PR #1740), so they exclude 0
//! exactly when the adjusted p-value is below alpha, that is exactly when `significant`.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::{interval, sequential, t_quantile, Estimate, Significance};

/// What a test's estimate is a difference of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// `treatment / control − 1` (a positive control mean).
    Relative,
    /// `treatment − control` (a control mean of 0 or below has no relative lift).
    Absolute,
}

/// Fixed horizon or sequential, with what each needs beyond the estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    /// Student t with these (Welch-Satterthwaite) degrees of freedom.
    Fixed { dof: f64 },
    /// Confidence sequence after `n` units in total, tightest around `tuning` units.
    Sequential { n: f64, tuning: f64 },
}

/// One test of one estimate at one level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Test {
    estimate: Estimate,
    scale: Scale,
    control_mean: f64,
    alpha: f64,
    kind: Kind,
}

impl Test {
    /// None when the estimate cannot be tested (no positive, finite variance).
    pub(crate) fn new(estimate: Estimate, scale: Scale, control_mean: f64, alpha: f64, kind: Kind) -> Option<Self> {
        let Estimate { value, variance } = estimate;
        let kind_ok = match kind {
            Kind::Fixed { dof } => dof.is_finite() && dof > 0.0,
            Kind::Sequential { n, tuning } => n > 0.0 && tuning > 0.0,
        };
        (value.is_finite() && variance.is_finite() && variance > 0.0 && kind_ok).then_some(Test {
            estimate,
            scale,
            control_mean,
            alpha,
            kind,
        })
    }

    pub(crate) fn scale(&self) -> Scale {
        self.scale
    }

    pub(crate) fn alpha(&self) -> f64 {
        self.alpha
    }

    pub(crate) fn p_value(&self) -> f64 {
        let Estimate { value, variance } = self.estimate;
        match self.kind {
            Kind::Fixed { dof } => {
                student(dof).map_or(f64::NAN, |t| (2.0 * t.sf((value / variance.sqrt()).abs())).min(1.0))
            }
            Kind::Sequential { n, tuning } => sequential::p_value(value, variance, n, self.alpha, tuning),
        }
    }

    /// The (1 − alpha) intervals `[relative, absolute]`, widened so that they exclude 0
    /// exactly when `p` (the test's p-value or an adjusted one above it) is below alpha.
    pub(crate) fn intervals(&self, p: f64) -> [Option<[f64; 2]>; 2] {
        let ci = self.half_width(p).and_then(|h| interval(self.estimate.value, h));
        match self.scale {
            Scale::Relative => [ci, ci.map(|[lo, hi]| [lo * self.control_mean, hi * self.control_mean])],
            Scale::Absolute => [None, ci],
        }
    }

    /// Half width at alpha for the larger of the estimate's variance and the variance at
    /// which its p-value would be `p`. None when that interval is unbounded (a fixed-horizon
    /// p-value adjusted to 1).
    fn half_width(&self, p: f64) -> Option<f64> {
        let Estimate { value, variance } = self.estimate;
        let widen = value != 0.0 && p > self.p_value();
        match self.kind {
            Kind::Fixed { dof } => {
                let t = student(dof)?;
                let mut se = variance.sqrt();
                if widen {
                    if p >= 1.0 {
                        return None;
                    }
                    se = se.max(value.abs() / t_quantile(&t, 1.0 - p / 2.0));
                }
                Some(t_quantile(&t, 1.0 - self.alpha / 2.0) * se)
            }
            Kind::Sequential { n, tuning } => {
                let v = if widen {
                    variance.max(sequential::variance_at_p_value(value, n, self.alpha, tuning, p))
                } else {
                    variance
                };
                Some(sequential::half_width(v, n, self.alpha, tuning))
            }
        }
    }
}

fn student(dof: f64) -> Option<StudentsT> {
    StudentsT::new(0.0, 1.0, dof).ok()
}

/// Welch-Satterthwaite degrees of freedom from each arm's variance of the mean (`s = σ²/n`)
/// and size (gbstats' `TTest.dof`).
pub(crate) fn welch_dof(s_c: f64, n_c: f64, s_t: f64, n_t: f64) -> f64 {
    let term = |s: f64, n: f64| if s == 0.0 { 0.0 } else { s * s / (n - 1.0) };
    (s_c + s_t).powi(2) / (term(s_c, n_c) + term(s_t, n_t))
}

/// The deciding test of one comparison: the experiment's `significance` on the scale of
/// its metric, adjusted for the other comparisons of the same family.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Decision {
    /// The test that decides (the experiment's `significance`).
    pub test: Significance,
    /// The scale the test works on: relative unless the control mean is 0 or below.
    pub scale: Scale,
    pub p_value: f64,
    /// `p_value` adjusted for every comparison of the family (the experiment's treatments).
    pub adjusted_p_value: f64,
    /// Interval of the relative lift at the adjusted level: excludes 0 exactly when
    /// `significant`. Null on the absolute scale, or when unbounded (`adjusted_p_value` 1).
    #[schema(min_items = 2, max_items = 2)]
    pub relative_ci: Option<[f64; 2]>,
    /// The same interval in the metric's units (the relative one times the control mean).
    #[schema(min_items = 2, max_items = 2)]
    pub absolute_ci: Option<[f64; 2]>,
    /// `adjusted_p_value` < alpha.
    pub significant: bool,
    #[serde(skip)]
    basis: Test,
}

impl Decision {
    pub(crate) fn new(test: Significance, basis: Test) -> Self {
        let p = basis.p_value();
        let mut d = Decision {
            test,
            scale: basis.scale(),
            p_value: p,
            adjusted_p_value: p,
            relative_ci: None,
            absolute_ci: None,
            significant: false,
            basis,
        };
        d.adjust(p);
        d
    }

    /// Takes the family's adjusted p-value: widens the intervals and re-decides.
    pub(crate) fn adjust(&mut self, adjusted_p_value: f64) {
        self.adjusted_p_value = adjusted_p_value;
        [self.relative_ci, self.absolute_ci] = self.basis.intervals(adjusted_p_value);
        self.significant = adjusted_p_value < self.basis.alpha();
    }
}

#[cfg(test)]
mod tests {
    use rand::{rngs::StdRng, Rng, SeedableRng};

    use crate::stats::{
        apply_correction, compare_means, compare_proportions, Analysis, Comparison, Correction, Moments, Proportion,
        Significance,
    };

    fn excludes_zero(ci: Option<[f64; 2]>) -> bool {
        ci.is_some_and(|[lo, hi]| lo > 0.0 || hi < 0.0)
    }

    fn check(c: &Comparison, what: &str) {
        let Some(d) = &c.decision else {
            assert!(!c.significant, "{what}: significant without a test");
            return;
        };
        assert_eq!(c.significant, d.significant, "{what}");
        assert_eq!(d.significant, d.adjusted_p_value < 0.05, "{what}: {d:?}");
        assert_eq!(d.significant, excludes_zero(d.absolute_ci), "{what}: absolute interval {d:?}");
        if d.scale == super::Scale::Relative {
            assert_eq!(d.significant, excludes_zero(d.relative_ci), "{what}: relative interval {d:?}");
        }
        // Each test's own (unadjusted) p-value and intervals agree too.
        let views = [
            (c.p_value, c.relative_ci, c.absolute_ci),
            c.sequential.as_ref().map_or((None, None, None), |s| (s.p_value, s.relative_ci, s.absolute_ci)),
        ];
        for (p, rel, abs) in views {
            if let Some(p) = p {
                assert_eq!(p < 0.05, excludes_zero(abs), "{what}: view p {p} vs {abs:?}");
                if d.scale == super::Scale::Relative {
                    assert_eq!(p < 0.05, excludes_zero(rel), "{what}: view p {p} vs {rel:?}");
                }
            }
        }
    }

    /// The review's cases: fixed horizon 50/1000 vs 71/1000 read p = 0.049 "significant"
    /// beside a relative interval of [-7.9 %, +91.9 %]; sequentially 100/1000 vs 146/1000
    /// likewise.
    #[test]
    fn significant_agrees_with_both_intervals_of_the_deciding_test() {
        let fixed = Analysis::fixed(0.05);
        let sequential = Analysis { significance: Significance::Sequential, ..fixed };
        let p = |n, x| Proportion { n, x };
        let r = compare_proportions(p(1000, 50), p(1000, 71), &fixed);
        check(&r, "50/1000 vs 71/1000");
        let d = r.decision.as_ref().expect("decision");
        assert!(!r.significant && d.p_value > 0.09, "{d:?}");
        let r = compare_proportions(p(1000, 100), p(1000, 146), &sequential);
        check(&r, "100/1000 vs 146/1000 sequential");
        assert!(!r.significant, "{:?}", r.decision);
        for (a, b) in [((1000, 85), (1000, 50)), ((5000, 322), (5000, 250)), ((20000, 4261), (20000, 4000))] {
            check(&compare_proportions(p(a.0, a.1), p(b.0, b.1), &sequential), &format!("{a:?} vs {b:?}"));
        }
    }

    fn draw(rng: &mut StdRng, n: u64, rate: f64, mean: f64, lift: f64) -> (Proportion, Moments) {
        let x = (0..n).filter(|_| rng.random::<f64>() < rate * lift).count() as u64;
        let (mean, sd) = (mean * lift, rng.random_range(0.5..30.0_f64));
        (Proportion { n, x }, Moments { n, sum: mean * n as f64, sum_sq: (sd * sd + mean * mean) * n as f64 })
    }

    /// Seeded random families of 1 to 4 treatments, both tests, every correction: the
    /// decision and each test's own numbers never contradict each other.
    #[test]
    fn decisions_agree_with_their_intervals_under_every_correction() {
        let mut rng = StdRng::seed_from_u64(20_261_130);
        for case in 0..2000 {
            let significance = if case % 2 == 0 { Significance::FixedHorizon } else { Significance::Sequential };
            let analysis = Analysis { significance, ..Analysis::fixed(0.05) };
            let correction = [Correction::Holm, Correction::Bh, Correction::None][case % 3];
            let treatments = rng.random_range(1..=4);
            let n = rng.random_range(50..5000u64);
            let (rate, mean) = (rng.random_range(0.01..0.5), rng.random_range(-2.0..20.0));
            let (pc, mc) = draw(&mut rng, n, rate, mean, 1.0);
            let mut arms: Vec<(Comparison, Comparison)> = (0..treatments)
                .map(|_| {
                    let lift = rng.random_range(0.8..1.3);
                    let (pt, mt) = draw(&mut rng, n, rate, mean, lift);
                    (compare_proportions(pc, pt, &analysis), compare_means(mc, mt, &analysis))
                })
                .collect();
            let mut conversions: Vec<&mut Comparison> = Vec::new();
            let mut values: Vec<&mut Comparison> = Vec::new();
            for (c, v) in arms.iter_mut() {
                conversions.push(c);
                values.push(v);
            }
            apply_correction(&mut conversions, correction);
            apply_correction(&mut values, correction);
            for (c, v) in &arms {
                check(c, &format!("case {case} conversion {correction:?}"));
                check(v, &format!("case {case} value {correction:?}"));
            }
        }
    }

    /// Seeded simulation: at a single look, each test's relative interval covers the true
    /// lift in 95 % of experiments (the fixed-horizon one within 1 point, the sequential
    /// one at least that often: it holds at every look), and with no true lift each test
    /// is significant in at most alpha of them (plus simulation error).
    #[test]
    fn intervals_cover_the_true_lift_and_false_positives_stay_within_alpha() {
        let mut rng = StdRng::seed_from_u64(20_261_130);
        let simulations = 4000;
        let n = 1000u64;
        for (metric, lift) in [("conversion", 0.0), ("conversion", 0.1), ("value", 0.0), ("value", 0.1)] {
            // [fixed, sequential]: covered, significant
            let mut covered = [0u32; 2];
            let mut significant = [0u32; 2];
            for _ in 0..simulations {
                let mut arm = |l: f64| {
                    let (mut x, mut s, mut q) = (0u64, 0.0, 0.0);
                    for _ in 0..n {
                        if metric == "conversion" {
                            x += u64::from(rng.random::<f64>() < 0.1 * (1.0 + l));
                        } else {
                            let v = -10.0 * (1.0 + l) * (1.0 - rng.random::<f64>()).ln();
                            (s, q) = (s + v, q + v * v);
                        }
                    }
                    (Proportion { n, x }, Moments { n, sum: s, sum_sq: q })
                };
                let (c, t) = (arm(0.0), arm(lift));
                for (k, significance) in [Significance::FixedHorizon, Significance::Sequential].into_iter().enumerate()
                {
                    let a = Analysis { significance, ..Analysis::fixed(0.05) };
                    let r = if metric == "conversion" {
                        compare_proportions(c.0, t.0, &a)
                    } else {
                        compare_means(c.1, t.1, &a)
                    };
                    let d = r.decision.expect("decision");
                    covered[k] += u32::from(d.relative_ci.is_some_and(|[lo, hi]| lo <= lift && lift <= hi));
                    significant[k] += u32::from(d.significant);
                }
            }
            let rate = |k: u32| f64::from(k) / f64::from(simulations);
            eprintln!(
                "{metric} lift {lift}: coverage fixed {} sequential {}; significant fixed {} sequential {}",
                rate(covered[0]),
                rate(covered[1]),
                rate(significant[0]),
                rate(significant[1])
            );
            assert!((rate(covered[0]) - 0.95).abs() <= 0.01, "{metric} {lift}: fixed coverage {}", rate(covered[0]));
            assert!(rate(covered[1]) >= 0.95 - 0.005, "{metric} {lift}: sequential coverage {}", rate(covered[1]));
            if lift == 0.0 {
                // 4000 simulations: 3.4 standard errors above 0.05 is 0.062
                assert!(rate(significant[0]) <= 0.062, "{metric}: fixed false positives {}", rate(significant[0]));
                assert!(rate(significant[1]) <= 0.05, "{metric}: sequential false positives {}", rate(significant[1]));
            }
        }
    }

    /// Seeded A/A experiments decided on three metrics with two treatments: with Holm
    /// across the six comparisons (as the metrics answer corrects them), the chance that
    /// any of them is significant stays within alpha; without a correction it does not.
    #[test]
    fn corrections_across_metrics_keep_the_family_wise_error_within_alpha() {
        let mut rng = StdRng::seed_from_u64(20_261_201);
        let (simulations, n, alpha) = (2000, 400u64, 0.05);
        let analysis = Analysis::fixed(alpha);
        let mut any = [0u32; 2]; // [holm, none]
        for _ in 0..simulations {
            let arms: Vec<(Proportion, Moments, Moments)> = (0..3)
                .map(|_| {
                    let mut p = Proportion { n, x: 0 };
                    let (mut a, mut b) = (Moments { n, sum: 0.0, sum_sq: 0.0 }, Moments { n, sum: 0.0, sum_sq: 0.0 });
                    for _ in 0..n {
                        p.x += u64::from(rng.random::<f64>() < 0.2);
                        let v = -5.0 * (1.0 - rng.random::<f64>()).ln();
                        let w = rng.random::<f64>() * 10.0;
                        (a.sum, a.sum_sq, b.sum, b.sum_sq) = (a.sum + v, a.sum_sq + v * v, b.sum + w, b.sum_sq + w * w);
                    }
                    (p, a, b)
                })
                .collect();
            for (k, correction) in [Correction::Holm, Correction::None].into_iter().enumerate() {
                let mut family: Vec<Comparison> = (1..3)
                    .flat_map(|t| {
                        [
                            compare_proportions(arms[0].0, arms[t].0, &analysis),
                            compare_means(arms[0].1, arms[t].1, &analysis),
                            compare_means(arms[0].2, arms[t].2, &analysis),
                        ]
                    })
                    .collect();
                let mut refs: Vec<&mut Comparison> = family.iter_mut().collect();
                apply_correction(&mut refs, correction);
                any[k] += u32::from(family.iter().any(|c| c.significant));
            }
        }
        let rate = |k: usize| f64::from(any[k]) / f64::from(simulations);
        eprintln!("family-wise error over 6 comparisons: holm {}, none {}", rate(0), rate(1));
        // 2000 simulations: 0.05 + 3.4 standard errors is 0.067
        assert!(rate(0) <= 0.067, "holm {}", rate(0));
        assert!(rate(1) > 2.0 * alpha, "uncorrected {}", rate(1));
    }
}
