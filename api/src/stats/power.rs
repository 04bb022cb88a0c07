//! Power for the current traffic: the smallest relative lift the test that decides
//! `significant` would detect with 80 % power, and how many more days of the same
//! traffic a given lift needs.
//!
//! Under no effect the relative lift has standard error `se = (sd / mean) *
//! sqrt(1/n_c + 1/n_t)` (control's mean and per-user sd). A test rejects when
//! |estimate| > `boundary`: `z(1 - alpha/2) se` for the fixed-horizon test (exactly
//! statsmodels' `NormalIndPower`), the confidence sequence's half width for the
//! sequential one. The power at a true lift d is `Phi((d - boundary)/se) +
//! Phi((-d - boundary)/se)`; the MDE is the d where that equals 80 %.

use serde::Serialize;

use super::{sequential, std_normal, z_critical};
use statrs::distribution::ContinuousCDF;

pub const TARGET_POWER: f64 = 0.8;
/// Traffic is not extrapolated further than this.
pub const MAX_DAYS: f64 = 3650.0;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Power {
    /// Minimum detectable relative lift (either direction) at 80 % power, now.
    pub mde_relative: Option<f64>,
    /// More days at the traffic so far until `target_lift` is detectable with 80 %
    /// power (0 if it already is); null without `target_lift`, or beyond 10 years.
    pub days_to_target: Option<f64>,
}

/// Which test's boundary the power is computed for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Test {
    FixedHorizon,
    Sequential { tuning: f64 },
}

/// The control's metric: mean and per-user variance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    pub mean: f64,
    pub variance: f64,
}

fn power_at(d: f64, se: f64, boundary: f64) -> f64 {
    let n = std_normal();
    n.cdf((d - boundary) / se) + n.cdf((-d - boundary) / se)
}

/// Minimum detectable relative lift with `n_c` and `n_t` users.
pub fn mde(base: Baseline, n_c: f64, n_t: f64, alpha: f64, test: Test) -> Option<f64> {
    if !(base.mean > 0.0 && base.variance > 0.0 && n_c > 0.0 && n_t > 0.0) {
        return None;
    }
    let se2 = base.variance / (base.mean * base.mean) * (1.0 / n_c + 1.0 / n_t);
    let se = se2.sqrt();
    let boundary = match test {
        Test::FixedHorizon => z_critical(alpha) * se,
        Test::Sequential { tuning } => sequential::half_width(se2, n_c + n_t, alpha, tuning),
    };
    // power_at rises with d: bisect between 0 and a d whose power is certainly enough
    let (mut lo, mut hi) = (0.0, boundary + 10.0 * se);
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if power_at(mid, se, boundary) < TARGET_POWER {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some((lo + hi) / 2.0).filter(|d| d.is_finite())
}

/// More days until `target` (a relative lift) is detectable, if traffic continues as in
/// the `elapsed_days` so far.
pub fn days_to_target(
    base: Baseline,
    n_c: f64,
    n_t: f64,
    elapsed_days: f64,
    alpha: f64,
    test: Test,
    target: f64,
) -> Option<f64> {
    let target = target.abs();
    if !(elapsed_days > 0.0 && target > 0.0) {
        return None;
    }
    let mde_after = |days: f64| mde(base, n_c * days / elapsed_days, n_t * days / elapsed_days, alpha, test);
    if mde_after(elapsed_days)? <= target {
        return Some(0.0);
    }
    let (mut lo, mut hi) = (elapsed_days, elapsed_days + MAX_DAYS);
    if mde_after(hi)? > target {
        return None;
    }
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if mde_after(mid)? > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi - elapsed_days)
}

#[cfg(test)]
mod tests {
    use crate::stats::{
        power,
        reference::{close, reference},
    };

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
}
