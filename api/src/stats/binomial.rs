//! The binomial's lower tail, exactly, for the ranks of a quantile's interval
//! (`stats::quantile::ranks`), with `n` up to 10⁸ and more.
//!
//! Not statrs' `Binomial::cdf`: its regularized incomplete beta stops its continued fraction
//! after 140 terms, which needs about `√n` of them, so it drifts for large `n` (measured
//! beside the tests). Instead each probability term comes from Loader's saddle-point form
//! (C. Loader, "Fast and accurate computation of binomial probabilities", 2000; R's
//! `dbinom_raw`), accurate to a few ulps at any `n`, and the tail is summed term by term from
//! its small end, where nothing cancels.

use std::f64::consts::PI;

/// `ln(k!) − ln(√(2πk)·(k/e)^k)`, Stirling's error (Loader: exact sums up to 15, the
/// asymptotic series above).
fn stirling_error(k: f64) -> f64 {
    const S: [f64; 5] = [1.0 / 12.0, 1.0 / 360.0, 1.0 / 1260.0, 1.0 / 1680.0, 1.0 / 1188.0];
    if k <= 15.0 {
        let ln_factorial: f64 = (2..=k as u64).map(|i| (i as f64).ln()).sum();
        return ln_factorial - (k + 0.5) * k.ln() + k - 0.5 * (2.0 * PI).ln();
    }
    let kk = k * k;
    let terms = match k {
        k if k > 500.0 => 2,
        k if k > 80.0 => 3,
        k if k > 35.0 => 4,
        _ => 5,
    };
    S[..terms].iter().rev().fold(0.0, |acc, s| s - acc / kk) / k
}

/// `x·ln(x/m) + m − x` without cancellation when `x` is near `m` (Loader's `bd0`).
fn deviance(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let v = (x - m) / (x + m);
        let (mut sum, mut term, v2) = ((x - m) * v, 2.0 * x * v, v * v);
        for j in 1..1000 {
            term *= v2;
            let next = sum + term / f64::from(2 * j + 1);
            if next == sum {
                break;
            }
            sum = next;
        }
        return sum;
    }
    x * (x / m).ln() + m - x
}

/// `ln P(B = k)`, `B ~ Binomial(n, p)`, `0 < p < 1`, `k ≤ n`.
pub fn ln_pmf(k: u64, n: u64, p: f64) -> f64 {
    let (kf, nf, q) = (k as f64, n as f64, 1.0 - p);
    if k == 0 {
        return nf * (-p).ln_1p();
    }
    if k == n {
        return nf * p.ln();
    }
    let lc = stirling_error(nf)
        - stirling_error(kf)
        - stirling_error(nf - kf)
        - deviance(kf, nf * p)
        - deviance(nf - kf, nf * q);
    lc - 0.5 * ((2.0 * PI).ln() + kf.ln() + (-kf / nf).ln_1p())
}

/// Where the lower tail of `B ~ Binomial(n, p)` (`n ≥ 1`, `0 < p < 1`) crosses `target`
/// (targets below 1e-300 taken as 1e-300): `[(k − 1, P(B ≤ k − 1)), (k, P(B ≤ k))]` for the
/// first `k` with `P(B ≤ k) ≥ target`, `n − 1` if none; both entries are `k` when it is 0
/// or when none crosses. `start` must be at or below that `k` (`stats::quantile` finds one
/// with Bernstein's inequality): the tail up to `start` is summed downwards until its terms
/// no longer count, then the terms are added upwards until the tail reaches `target`.
/// Probabilities are kept in units of `target`, so that none near it underflows; a term too
/// small to carry on from is recomputed.
pub fn crossing(n: u64, p: f64, target: f64, start: u64) -> [(u64, f64); 2] {
    let (target, start) = (target.max(1e-300), start.min(n - 1));
    let (odds, ln_target) = (p / (1.0 - p), target.ln());
    let scaled = |k: u64| (ln_pmf(k, n, p) - ln_target).exp();
    let first = scaled(start);
    let (mut cdf, mut term, mut j) = (first, first, start);
    while j > 0 && term > cdf * 1e-18 {
        // P(B = j − 1) = P(B = j) · j / ((n − j + 1) · odds)
        term *= j as f64 / ((n - j + 1) as f64 * odds);
        cdf += term;
        j -= 1;
    }
    let (mut k, mut pmf) = (start, first);
    while cdf < 1.0 && k < n - 1 {
        k += 1;
        pmf = if pmf > 1e-250 { pmf * (n - k + 1) as f64 * odds / k as f64 } else { scaled(k) };
        cdf += pmf;
    }
    let above = (k, cdf * target);
    if k == 0 || cdf < 1.0 {
        [above, above]
    } else {
        [(k - 1, (cdf - pmf).max(0.0) * target), above]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use statrs::distribution::{Binomial, DiscreteCDF};

    fn close(ours: f64, reference: f64, tolerance: f64) {
        assert!((ours - reference).abs() <= tolerance * reference.abs(), "{ours} vs {reference}");
    }

    /// mpmath at 50 digits (`log(binomial(n, k)) + k log p + (n − k) log(1 − p)`, `p` the double), to
    /// 1e-13.
    /// scipy's `binom.logpmf` is off by 5e-10 at 10⁶ and 2e-8 at 10⁸ (it subtracts `gammaln`s).
    #[test]
    fn probabilities_match_mpmath_at_any_size() {
        close(ln_pmf(880, 1000, 0.9), -5.351_947_190_775_781, 1e-13);
        close(ln_pmf(499_000, 1_000_000, 0.5), -9.133_546_214_959_664, 1e-13);
        close(ln_pmf(49_990_000, 100_000_000, 0.5), -11.436_131_720_454_243, 1e-13);
        close(ln_pmf(89_994_000, 100_000_000, 0.9), -10.925_217_237_422_614, 1e-13);
        close(ln_pmf(0, 10, 0.3), 10.0 * 0.7f64.ln(), 1e-14);
        close(ln_pmf(10, 10, 0.3), 10.0 * 0.3f64.ln(), 1e-14);
        close(ln_pmf(3, 7, 0.25), (35.0 * 0.25f64.powi(3) * 0.75f64.powi(4)).ln(), 1e-13);
    }

    /// The crossing against statrs' cdf (exact at these sizes), from the lowest start.
    #[test]
    fn the_crossing_brackets_the_target() {
        for n in [1u64, 2, 5, 20, 57, 200, 1000] {
            for p in [0.01, 0.1, 0.5, 0.9, 0.99] {
                let b = Binomial::new(p, n).expect("binomial");
                for target in [1e-12, 0.0005, 0.025, 0.1, 0.25] {
                    let [(below, low), (above, high)] = crossing(n, p, target, 0);
                    let at = format!("n {n} p {p} target {target}");
                    close(low, b.cdf(below), 1e-10);
                    close(high, b.cdf(above), 1e-10);
                    if b.cdf(0) >= target {
                        assert_eq!((below, above), (0, 0), "{at}");
                    } else if b.cdf(n - 1) < target {
                        assert_eq!((below, above), (n - 1, n - 1), "{at}");
                    } else {
                        assert_eq!((below + 1, low < target, high >= target), (above, true, true), "{at}");
                    }
                }
            }
        }
    }

    /// `P(B ≤ k)` summed by mpmath at 40 digits (`p` the double): 0.022755531314807857 at
    /// 49 990 000 of 10⁸ (p = ½; scipy's `binom.cdf` 0.022755531314786137, statrs'
    /// 0.022755532601388774, printed below), 0.022766330307755375 at 89 994 000 of 10⁸
    /// (p = 0.9), 0.021996144965794224 at 880 of 1000 (p = 0.9). With a target a tenth of the
    /// next term below that tail the crossing is at `k`, a tenth above it just after.
    #[test]
    fn large_counts_are_exact() {
        let b = Binomial::new(0.5, 100_000_000).expect("binomial");
        eprintln!("statrs at 10⁸: {} (mpmath 0.022755531314807857)", b.cdf(49_990_000));
        for (n, p, k, tail) in [
            (100_000_000u64, 0.5, 49_990_000u64, 0.022_755_531_314_807_857),
            (100_000_000, 0.9, 89_994_000, 0.022_766_330_307_755_375),
            (1000, 0.9, 880, 0.021_996_144_965_794_224),
        ] {
            let step = ln_pmf(k, n, p).exp() / 10.0;
            let start = k - 10_000.min(k);
            let [_, (above, high)] = crossing(n, p, tail - step, start);
            assert_eq!(above, k, "{n} {p}");
            close(high, tail, 1e-12);
            let [(below, low), _] = crossing(n, p, tail + step, start);
            assert_eq!(below, k, "{n} {p}");
            close(low, tail, 1e-12);
        }
    }
}
