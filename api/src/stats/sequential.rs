//! Always-valid inference: the asymptotic confidence sequences of Waudby-Smith, Arnold,
//! Wu, Ramdas and Wasserman ("Time-uniform central limit theory and asymptotic
//! confidence sequences", Annals of Statistics, 2024; arXiv:2103.06476), as GrowthBook
//! uses them (gbstats `SequentialTwoSidedTTest`). An interval computed this way holds at
//! every sample size at once, so looking every day does not inflate the error rate.

use serde::Serialize;

use super::decision::Test;

/// Confidence sequence and always-valid p-value of one comparison, on the scale of its
/// decision (relative unless the control mean is 0 or below; see [`super::decision`]):
/// `p_value < alpha` exactly when the intervals exclude 0.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Sequential {
    /// Always-valid p-value of "no difference".
    pub p_value: Option<f64>,
    /// `p_value` adjusted for several treatments, like the fixed-horizon one.
    pub adjusted_p_value: Option<f64>,
    /// The relative interval times the control mean (the metric's units).
    #[schema(min_items = 2, max_items = 2)]
    pub absolute_ci: Option<[f64; 2]>,
    #[schema(min_items = 2, max_items = 2)]
    pub relative_ci: Option<[f64; 2]>,
}

impl Sequential {
    pub(crate) fn of(test: &Test) -> Self {
        let p = test.p_value();
        let [relative_ci, absolute_ci] = test.intervals(p);
        Sequential { p_value: Some(p), adjusted_p_value: Some(p), absolute_ci, relative_ci }
    }
}

/// `rho` of eq. 161 (the CS is tightest around `tuning` total units; GrowthBook's
/// default tuning parameter is 5000).
fn rho(alpha: f64, tuning: f64) -> f64 {
    ((-2.0 * alpha.ln() + (-2.0 * alpha.ln() + 1.0).ln()) / tuning).sqrt()
}

/// Half width of the (1 - alpha) confidence sequence (eq. 9) for an estimate with
/// variance `variance` after `n` units in total.
pub fn half_width(variance: f64, n: f64, alpha: f64, tuning: f64) -> f64 {
    let rho = rho(alpha, tuning);
    let nr2 = n * rho * rho;
    let s2 = variance * n;
    s2.sqrt() * ((2.0 * (nr2 + 1.0)) * ((nr2 + 1.0).sqrt() / alpha).ln() / (n * rho).powi(2)).sqrt()
}

/// Always-valid p-value (eq. 155): the inverse of the mixture e-value, capped at 1.
pub fn p_value(estimate: f64, variance: f64, n: f64, alpha: f64, tuning: f64) -> f64 {
    let rho2 = rho(alpha, tuning).powi(2);
    let st2 = estimate * estimate * n / variance;
    let tr2p1 = n * rho2 + 1.0;
    // 1 / e-value, computed in logs so a huge statistic gives 0, not inf/inf
    let log_inverse_e = tr2p1.ln() / 2.0 - rho2 * st2 / (2.0 * tr2p1);
    log_inverse_e.exp().min(1.0)
}

/// The variance at which `estimate` would have the always-valid p-value `p` (eq. 155
/// solved for the variance): the confidence sequence of that variance touches 0 exactly
/// at `p = alpha`.
pub fn variance_at_p_value(estimate: f64, n: f64, alpha: f64, tuning: f64, p: f64) -> f64 {
    let rho2 = rho(alpha, tuning).powi(2);
    let tr2p1 = n * rho2 + 1.0;
    let st2 = 2.0 * tr2p1 * (tr2p1.ln() / 2.0 - p.ln()) / rho2;
    estimate * estimate * n / st2
}

#[cfg(test)]
mod tests {
    use crate::stats::{
        compare_means, compare_proportions,
        reference::{close, close_pair, compare, reference},
        Analysis, Moments, Proportion, Significance,
    };

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
            let d = r.decision.as_ref().expect("decision");
            close(d.p_value, c.sequential.p_value, &format!("case {i} decision p"));
            close_pair(d.relative_ci.expect("ci"), c.sequential.relative_ci, &format!("case {i} decision ci"));
            let b = r.bayesian.as_ref().expect("bayesian");
            close(b.chance_to_beat_control, c.bayesian.chance_to_beat_control, &format!("case {i} chance to beat"));
            close(b.expected_loss, c.bayesian.expected_loss, &format!("case {i} expected loss"));
            close_pair(
                b.credible_interval.expect("interval"),
                c.bayesian.credible_interval,
                &format!("case {i} credible interval"),
            );
        }
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
}
