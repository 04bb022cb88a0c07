//! Quantile metrics: the order-statistic interval of one variant's quantile, and the
//! comparison of two quantiles through the standard error that interval implies.
//!
//! ClickHouse sorts the values and returns the quantile and the values around it
//! ([`window`], the same bounds as `QUANTILE_SQL`; the statement computes them because
//! only it knows `n`); the interval's exact ranks ([`ranks`]) are chosen here, and the
//! rest is here too, pure, so that the calibration simulation (`stats::sims`) runs the
//! production code.

use super::{binomial::crossing, comparison::Arm, power, Analysis, Comparison};

/// One variant's quantile as `QUANTILE_SQL` returns it: `n` values, the value at rank
/// `value` of [`ranks`], and the values at its `lo` and `hi` ranks.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QuantileEstimate {
    pub n: u64,
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// How far the count `B ~ Binomial(n, q)` of values below the true quantile strays from
/// `n·q` with probability at most `α/2` on each side, by Bernstein's inequality
/// (`P(B − n·q ≥ t) ≤ exp(−t² / (2(n·q·(1−q) + t/3)))`, terms within 1 of their mean, and
/// the same below): `t = L/3 + √(L²/9 + 2·L·n·q·(1−q))`, `L = ln(2/α)`. Unlike the normal
/// approximation it holds for any `n`, `q` and `α`, skewed tails included.
pub fn reach(n: u64, q: f64, alpha: f64) -> f64 {
    let l = (2.0 / alpha).ln();
    l / 3.0 + (l * l / 9.0 + 2.0 * l * n as f64 * q * (1.0 - q)).sqrt()
}

/// The 1-based ranks `[first, last]` of the sorted values `QUANTILE_SQL` returns around
/// the quantile: from `⌊n·q − t⌋ − 3` to `⌈n·q + t⌉ + 4`, `t` the [`reach`], clamped to
/// `1..=n`. Every rank [`ranks`] can choose lies within `⌊n·q − t⌋ − 1` and `⌈n·q + t⌉ + 2`
/// (its start is a rank below `n·q − t`, the crossing one further); the two more on each
/// side absorb rounding (`n·(1 − q)` against `n − n·q`, the statement's arithmetic).
pub fn window(n: u64, q: f64, alpha: f64) -> [u64; 2] {
    let (nf, t) = (n as f64, reach(n, q, alpha));
    [((nf * q - t).floor() - 3.0).max(1.0) as u64, ((nf * q + t).ceil() + 4.0).min(nf) as u64]
}

/// 1-based ranks `[value, lo, hi]` among `n` sorted values for the quantile `q` with an
/// interval at level `1 − α`: the value at `⌈n·q⌉`; the interval `[x₍ₗ₎, x₍ᵤ₎]`, which
/// holds the true quantile exactly when `l ≤ B ≤ u − 1`, `B ~ Binomial(n, q)` the number of
/// values below it, whatever the distribution (Hahn and Meeker, *Statistical Intervals*,
/// 1991, §5.2; Conover, *Practical Nonparametric Statistics*, 1999, §3.2). On each side,
/// the two ranks whose miss (`P(B ≤ l − 1)` below, `P(B ≥ u)` above) brackets `α/2`; of
/// those four pairs, the one whose coverage `P(l ≤ B ≤ u − 1)` is nearest `1 − α` (to
/// 1e-12; on a tie the wider, then the lower): nearest rather than conservative, so that the coverage is as close to
/// `1 − α` as the discreteness allows (each side alone nearest `α/2` can miss by both
/// steps: 94.1 % instead of 95.2 % for the p90 of 200). Ranks stay within `1..=n`. The
/// binomial is summed exactly ([`crossing`]) from where Bernstein's [`reach`] says its
/// tail is below `α/2`. None without values.
pub fn ranks(n: u64, q: f64, alpha: f64) -> Option<[u64; 3]> {
    if n == 0 {
        return None;
    }
    let (nf, t, half) = (n as f64, reach(n, q, alpha), alpha / 2.0);
    let start = |mean: f64| ((mean - t).floor() - 1.0).max(0.0) as u64;
    // l = k + 1 misses when B ≤ k; u = n − k when n − B ≤ k, n − B ~ Binomial(n, 1 − q)
    let lows = crossing(n, q, half, start(nf * q)).map(|(k, miss)| (k + 1, miss));
    let highs = crossing(n, 1.0 - q, half, start(nf * (1.0 - q))).map(|(k, miss)| (n - k, miss));
    // nearest coverage (to 1e-12, so that mirror pairs tie whatever the rounding), then
    // the wider, then the lower
    let key = |((l, below), (u, above)): ((u64, f64), (u64, f64))| {
        let coverage = if l <= u { 1.0 - below - above } else { 0.0 };
        ((coverage - (1.0 - alpha)).abs() * 1e12).round() as u64
    };
    let ((lo, _), (hi, _)) = lows
        .into_iter()
        .flat_map(|l| highs.map(|u| (l, u)))
        .min_by_key(|pair| (key(*pair), std::cmp::Reverse(pair.1 .0.saturating_sub(pair.0 .0)), pair.0 .0))?;
    Some([(nf * q).ceil().clamp(1.0, nf) as u64, lo, hi])
}

impl QuantileEstimate {
    /// The estimate read from `sorted` (ascending) at [`ranks`] for level `1 − alpha`.
    pub fn of_sorted(sorted: &[f64], q: f64, alpha: f64) -> Option<Self> {
        let [v, lo, hi] = ranks(sorted.len() as u64, q, alpha)?;
        let at = |r: u64| sorted[r as usize - 1];
        Some(QuantileEstimate { n: sorted.len() as u64, value: at(v), lo: at(lo), hi: at(hi) })
    }

    /// The standard error the interval implies, `(hi − lo) / 2z`.
    pub fn standard_error(&self, z: f64) -> f64 {
        (self.hi - self.lo) / (2.0 * z)
    }

    /// The variant as one arm of a comparison (the events are its units); none below two.
    pub(crate) fn arm(&self, z: f64) -> Option<Arm> {
        let se = self.standard_error(z);
        (self.n >= 2).then_some(Arm { mean: self.value, variance_of_mean: se * se, n: self.n as f64 })
    }
}

/// Treatment against control: the relative difference of the quantiles, each with the
/// standard error its interval (at `z`, the one the statement used) implies, through the
/// delta method and the same tests as means (events treated as independent).
pub fn compare_quantiles(control: QuantileEstimate, treatment: QuantileEstimate, z: f64, a: &Analysis) -> Comparison {
    match (control.arm(z), treatment.arm(z)) {
        (Some(c), Some(t)) => {
            let baseline = power::Baseline { mean: c.mean, variance: c.variance_of_mean * c.n };
            Comparison::new(c, t, baseline, a)
        }
        _ => Comparison::empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From `quantile_ranks` in `scripts/reference_stats.py` (a full search with
    /// scipy.stats.binom), with the coverage each pair gives.
    #[test]
    fn ranks_are_the_exact_binomial_ones() {
        let cases: [(u64, f64, f64, [u64; 3]); 14] = [
            (1000, 0.9, 0.05, [900, 882, 919]),  // covers 94.91 %
            (1000, 0.5, 0.05, [500, 469, 531]),  // 95.00 %
            (200, 0.9, 0.05, [180, 171, 188]),   // 95.16 %
            (200, 0.5, 0.05, [100, 86, 114]),    // 95.20 %
            (50, 0.5, 0.05, [25, 18, 32]),       // 95.11 %
            (30, 0.9, 0.05, [27, 23, 30]),       // 94.98 %
            (1000, 0.99, 0.05, [990, 984, 996]), // 94.49 %
            (1000, 0.9, 0.01, [900, 875, 924]),  // 99.02 %
            (1000, 0.9, 0.5, [900, 894, 907]),   // 50.67 %
            (1000, 0.9, 1e-6, [900, 852, 944]),  // 99.99990 %
            (100_000, 0.99, 0.05, [99_000, 98_939, 99_062]),
            (1, 0.5, 0.05, [1, 1, 1]),  // covers never: one value cannot bracket anything
            (2, 0.5, 0.05, [1, 1, 2]),  // 50 %
            (3, 0.99, 0.05, [3, 2, 3]), // 2.94 %
        ];
        for (n, q, alpha, expected) in cases {
            assert_eq!(ranks(n, q, alpha), Some(expected), "{q} of {n} at {alpha}");
        }
        assert_eq!(ranks(0, 0.9, 0.05), None);
        let sorted: Vec<f64> = (1..=1000).map(f64::from).collect();
        let e = QuantileEstimate::of_sorted(&sorted, 0.9, 0.05).expect("values");
        assert_eq!((e.n, e.value, e.lo, e.hi), (1000, 900.0, 882.0, 919.0));
        let z = crate::stats::z_critical(0.05);
        assert!((e.standard_error(z) - 37.0 / (2.0 * z)).abs() < 1e-12);
    }

    /// Every rank chosen lies in the statement's window, in order, for any size, level and
    /// alpha the api accepts (skewed tails, tiny alphas and tiny counts included).
    #[test]
    fn ranks_stay_within_the_statements_window() {
        let sizes = (1..=60).chain([97, 200, 1000, 12_345, 1_000_000, 100_000_000]);
        for n in sizes {
            for q in [0.001, 0.01, 0.1, 0.25, 0.5, 0.9, 0.99, 0.999] {
                for alpha in [0.5, 0.2, 0.05, 0.01, 1e-4, 1e-10, 1e-30] {
                    let [value, lo, hi] = ranks(n, q, alpha).expect("ranks");
                    let [first, last] = window(n, q, alpha);
                    let at = format!("{q} of {n} at {alpha}: {lo}..{hi} in {first}..{last}");
                    assert!(1 <= first && first <= lo && lo <= hi && hi <= last && last <= n, "{at}");
                    assert!((1..=n).contains(&value), "{at}");
                }
            }
        }
    }

    #[test]
    fn a_variant_without_two_values_has_no_comparison() {
        let a = Analysis::fixed(0.05);
        let one = QuantileEstimate { n: 1, value: 3.0, lo: 3.0, hi: 3.0 };
        let many = QuantileEstimate { n: 100, value: 5.0, lo: 4.0, hi: 6.0 };
        assert_eq!(compare_quantiles(one, many, 1.96, &a).p_value, None);
        let r = compare_quantiles(many, QuantileEstimate { value: 6.0, ..many }, 1.96, &a);
        assert!(r.relative_lift.is_some_and(|l| (l - 0.2).abs() < 1e-12), "{r:?}");
    }
}
