//! Seeded calibration of the ratio and quantile comparisons, through the production
//! functions (`compare_ratios`, `compare_quantiles`); the conversion and mean ones are in
//! `decision`. Each simulation asserts, at a single look, that the fixed-horizon relative
//! interval covers the true lift within 1 point of 95 % (and the quantile's own interval
//! the true quantile, at its exact binomial ranks), that the sequential one covers at
//! least that often, and that without a lift each test is significant in at most alpha of
//! the experiments plus the Monte Carlo error (stated beside each bound). Figures are in docs/statistics.md.

use std::ops::RangeInclusive;

use rand::{rngs::StdRng, Rng, SeedableRng};
use statrs::distribution::{Binomial, DiscreteCDF};

use super::{
    apply_correction, compare_proportions, compare_ratios,
    quantile::{compare_quantiles, ranks, QuantileEstimate},
    z_critical, Analysis, Comparison, Correction, Proportion, RatioMoments, Significance,
};

const ALPHA: f64 = 0.05;

/// Over simulated experiments, per test `[fixed horizon, sequential]`: how often the
/// decision's relative interval covered the true lift, and how often it was significant.
#[derive(Default)]
struct Tally {
    runs: u32,
    covered: [u32; 2],
    significant: [u32; 2],
}

impl Tally {
    fn add(&mut self, lift: f64, compare: impl Fn(&Analysis) -> Comparison) {
        self.runs += 1;
        for (k, significance) in [Significance::FixedHorizon, Significance::Sequential].into_iter().enumerate() {
            let d = compare(&Analysis { significance, ..Analysis::fixed(ALPHA) }).decision.expect("decision");
            self.covered[k] += u32::from(d.relative_ci.is_some_and(|[lo, hi]| lo <= lift && lift <= hi));
            self.significant[k] += u32::from(d.significant);
        }
    }

    fn rate(&self, count: u32) -> f64 {
        f64::from(count) / f64::from(self.runs)
    }

    /// `coverage`: where the fixed-horizon interval's coverage must fall (95 % ± 1 point
    /// when calibrated); `fp_bound`: alpha plus 3.4 Monte Carlo standard errors at this many
    /// runs. The sequential interval must cover at least 94.5 % and be significant without
    /// a lift in at most alpha (it holds at every look, so a single look is conservative).
    fn check(&self, what: &str, lift: f64, coverage: RangeInclusive<f64>, fp_bound: f64) {
        let [cf, cs] = self.covered.map(|c| self.rate(c));
        let [sf, ss] = self.significant.map(|c| self.rate(c));
        eprintln!("{what} lift {lift}: coverage fixed {cf} sequential {cs}; significant fixed {sf} sequential {ss}");
        assert!(coverage.contains(&cf), "{what} {lift}: fixed coverage {cf} outside {coverage:?}");
        assert!(cs >= 0.95 - 0.005, "{what} {lift}: sequential coverage {cs}");
        if lift == 0.0 {
            assert!(sf <= fp_bound, "{what}: fixed false positives {sf}");
            assert!(ss <= ALPHA, "{what}: sequential false positives {ss}");
        }
    }
}

/// `n` users with 0 to 4 orders each (uniform), each order worth an exponential amount of
/// mean `20 (1 + lift)`: revenue per order is `20 (1 + lift)`.
fn ratio_arm(rng: &mut StdRng, n: u64, lift: f64) -> RatioMoments {
    let mut m = RatioMoments { n, ..RatioMoments::default() };
    for _ in 0..n {
        let orders = rng.random_range(0..5u32);
        let revenue: f64 = (0..orders).map(|_| -20.0 * (1.0 + lift) * (1.0 - rng.random::<f64>()).ln()).sum();
        let orders = f64::from(orders);
        m.num_sum += revenue;
        m.num_sum_sq += revenue * revenue;
        m.den_sum += orders;
        m.den_sum_sq += orders * orders;
        m.num_den += revenue * orders;
    }
    m
}

/// `n` independent exponential events of mean `1 + lift` (true quantile `q`:
/// `−ln(1 − q)(1 + lift)`), read at the production ranks ([`ranks`] at `ALPHA`). Rényi's
/// representation gives the order statistics without sorting:
/// `X₍ₖ₎ = (1 + lift) Σ_{j ≤ k} E_j / (n − j + 1)` with independent standard exponentials `E_j`.
fn quantile_arm(rng: &mut StdRng, n: u64, q: f64, lift: f64) -> QuantileEstimate {
    let [value, lo, hi] = ranks(n, q, ALPHA).expect("values");
    let (mut x, mut at) = (0.0, [0.0; 3]);
    for k in 1..=value.max(hi) {
        x -= (1.0 + lift) * (1.0 - rng.random::<f64>()).ln() / (n - k + 1) as f64;
        for (slot, rank) in at.iter_mut().zip([value, lo, hi]) {
            if k == rank {
                *slot = x;
            }
        }
    }
    QuantileEstimate { n, value: at[0], lo: at[1], hi: at[2] }
}

/// The delta-method ratio test: 4000 experiments of 500 users per arm.
#[test]
fn ratio_intervals_cover_the_true_lift_and_false_positives_stay_within_alpha() {
    let mut rng = StdRng::seed_from_u64(20_261_201);
    let (simulations, n) = (4000, 500);
    for lift in [0.0, 0.1] {
        let mut tally = Tally::default();
        for _ in 0..simulations {
            let (c, t) = (ratio_arm(&mut rng, n, 0.0), ratio_arm(&mut rng, n, lift));
            tally.add(lift, |a| compare_ratios(c, t, a));
        }
        // 4000 runs: 95 % ± 1 point is ± 2.9 Monte Carlo standard errors (0.0034);
        // 0.05 + 3.4 · √(0.05 · 0.95 / 4000) = 0.062
        tally.check("ratio", lift, 0.94..=0.96, 0.062);
    }
}

/// Each variant's order-statistic interval covers the true quantile as often as the
/// binomial says its exact ranks do (computed beside the simulation), within 1 point of
/// 95 % in these cases; the comparison built on that interval's width covers the true lift
/// within 1 point of 95 % too. 4000 experiments per case, independent events.
#[test]
fn quantile_intervals_cover_the_true_quantile_and_false_positives_stay_within_alpha() {
    let mut rng = StdRng::seed_from_u64(20_261_202);
    let (simulations, z) = (4000u32, z_critical(ALPHA));
    // (events per arm, quantile, true lift)
    let cases = [
        (1000u64, 0.5f64, 0.0),
        (1000, 0.5, 0.1),
        (1000, 0.9, 0.0),
        (1000, 0.9, 0.1),
        (200, 0.5, 0.0),
        (200, 0.5, 0.1),
        (200, 0.9, 0.0),
        (200, 0.9, 0.1),
    ];
    for (n, q, lift) in cases {
        let truth = -(1.0 - q).ln();
        let [_, lo, hi] = ranks(n, q, ALPHA).expect("ranks");
        // [x_lo, x_hi] covers the true quantile when lo ≤ B ≤ hi − 1, B ~ Binomial(n, q) the
        // number of values below it.
        let b = Binomial::new(q, n).expect("binomial");
        let exact = b.cdf(hi - 1) - b.cdf(lo - 1);
        let (mut tally, mut covered) = (Tally::default(), 0u32);
        for _ in 0..simulations {
            let (c, t) = (quantile_arm(&mut rng, n, q, 0.0), quantile_arm(&mut rng, n, q, lift));
            covered += u32::from(c.lo <= truth && truth <= c.hi);
            tally.add(lift, |a| compare_quantiles(c, t, z, a));
        }
        let simulated = f64::from(covered) / f64::from(simulations);
        eprintln!("quantile {q} of {n}: the variant's interval covers {simulated} (binomial {exact:.4})");
        // 4000 runs: the binomial figure ± 3.4 · √(0.95 · 0.05 / 4000) = 0.012
        assert!((simulated - exact).abs() <= 0.012, "{q} of {n}: {simulated} vs {exact}");
        assert!((0.94..=0.96).contains(&exact), "{q} of {n}: the ranks cover {exact}");
        tally.check(&format!("quantile {q} of {n}"), lift, 0.94..=0.96, 0.062);
    }
}

/// A/A experiments decided on a conversion, a ratio and a quantile with two treatments:
/// with Holm across the six comparisons the chance that any is significant stays within
/// alpha; without a correction it does not.
#[test]
fn corrections_across_ratio_and_quantile_metrics_keep_the_family_wise_error_within_alpha() {
    let mut rng = StdRng::seed_from_u64(20_261_203);
    let (simulations, n, z) = (2000, 400, z_critical(ALPHA));
    let analysis = Analysis::fixed(ALPHA);
    let mut any = [0u32; 2]; // [holm, none]
    for _ in 0..simulations {
        let arms: Vec<(Proportion, RatioMoments, QuantileEstimate)> = (0..3)
            .map(|_| {
                let x = (0..n).filter(|_| rng.random::<f64>() < 0.2).count() as u64;
                (Proportion { n, x }, ratio_arm(&mut rng, n, 0.0), quantile_arm(&mut rng, n, 0.9, 0.0))
            })
            .collect();
        for (k, correction) in [Correction::Holm, Correction::None].into_iter().enumerate() {
            let mut family: Vec<Comparison> = (1..3)
                .flat_map(|t| {
                    [
                        compare_proportions(arms[0].0, arms[t].0, &analysis),
                        compare_ratios(arms[0].1, arms[t].1, &analysis),
                        compare_quantiles(arms[0].2, arms[t].2, z, &analysis),
                    ]
                })
                .collect();
            let mut refs: Vec<&mut Comparison> = family.iter_mut().collect();
            apply_correction(&mut refs, correction);
            any[k] += u32::from(family.iter().any(|c| c.significant));
        }
    }
    let rate = |k: usize| f64::from(any[k]) / f64::from(simulations);
    eprintln!("family-wise error over conversion, ratio, quantile × 2: holm {}, none {}", rate(0), rate(1));
    // 2000 simulations: 0.05 + 3.4 standard errors is 0.067
    assert!(rate(0) <= 0.067, "holm {}", rate(0));
    assert!(rate(1) > 2.0 * ALPHA, "uncorrected {}", rate(1));
}
