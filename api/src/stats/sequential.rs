//! Always-valid inference: the asymptotic confidence sequences of Waudby-Smith, Arnold,
//! Wu, Ramdas and Wasserman ("Time-uniform central limit theory and asymptotic
//! confidence sequences", Annals of Statistics, 2024; arXiv:2103.06476), as GrowthBook
//! uses them (gbstats `SequentialTwoSidedTTest`). An interval computed this way holds at
//! every sample size at once, so looking every day does not inflate the error rate.

use serde::Serialize;

use super::{interval, Estimate};

/// Confidence sequence and always-valid p-value of one comparison.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Sequential {
    /// Always-valid p-value of "no difference" (from the absolute difference, so
    /// `p_value < alpha` exactly when `absolute_ci` excludes 0).
    pub p_value: Option<f64>,
    /// `p_value` adjusted for several treatments, like the fixed-horizon one.
    pub adjusted_p_value: Option<f64>,
    pub absolute_ci: Option<[f64; 2]>,
    pub relative_ci: Option<[f64; 2]>,
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

/// Sequential inference for an absolute and a relative estimate over `n` units in total.
pub fn analyse(absolute: Estimate, relative: Option<Estimate>, n: f64, alpha: f64, tuning: f64) -> Sequential {
    let usable = |e: &Estimate| e.variance > 0.0 && e.variance.is_finite() && e.value.is_finite() && n > 0.0;
    let ci = |e: Estimate| usable(&e).then(|| interval(e.value, half_width(e.variance, n, alpha, tuning))).flatten();
    let p = usable(&absolute).then(|| p_value(absolute.value, absolute.variance, n, alpha, tuning));
    Sequential { p_value: p, adjusted_p_value: p, absolute_ci: ci(absolute), relative_ci: relative.and_then(ci) }
}
