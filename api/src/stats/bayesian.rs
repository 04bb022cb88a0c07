//! Bayesian view of the relative lift: a normal approximation of the likelihood (the
//! delta-method estimate and variance) combined with a weak proper normal prior, as in
//! GrowthBook's `EffectBayesianABTest` (gbstats) with a proper prior.

use serde::Serialize;

use super::{interval, std_normal, z_critical, Estimate};
use statrs::distribution::{Continuous, ContinuousCDF};

/// Prior on the relative lift: N(0, 0.3²). Weak: a ±30 % lift is one standard deviation,
/// so a few hundred users per variant already outweigh it; it only tames tiny samples.
pub const PRIOR_MEAN: f64 = 0.0;
pub const PRIOR_SD: f64 = 0.3;

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Bayesian {
    /// Posterior probability that the treatment's mean is above the control's.
    pub chance_to_beat_control: f64,
    /// Expected relative loss of shipping this variant, E[max(0, -lift)]: what is given
    /// up, as a fraction of the control's mean, if it is in fact worse.
    pub expected_loss: f64,
    /// Central (1 - alpha) posterior interval of the relative lift; null when it is not
    /// finite (an alpha so small, below about 1e-16, that its quantile is infinite in f64).
    #[schema(min_items = 2, max_items = 2)]
    pub credible_interval: Option<[f64; 2]>,
}

/// Posterior of the relative lift from its estimate; `None` without a usable variance.
pub fn analyse(relative: Estimate, alpha: f64) -> Option<Bayesian> {
    if !(relative.variance > 0.0 && relative.variance.is_finite() && relative.value.is_finite()) {
        return None;
    }
    let prior_variance = PRIOR_SD * PRIOR_SD;
    let precision = 1.0 / relative.variance + 1.0 / prior_variance;
    let mean = (relative.value / relative.variance + PRIOR_MEAN / prior_variance) / precision;
    let sd = (1.0 / precision).sqrt();
    let normal = std_normal();
    let z = mean / sd;
    let half = z_critical(alpha) * sd;
    Some(Bayesian {
        chance_to_beat_control: normal.cdf(z),
        // E[max(0, -X)] for X ~ N(mean, sd²)
        expected_loss: (sd * normal.pdf(z) - mean * normal.cdf(-z)).max(0.0),
        credible_interval: interval(mean, half),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unbounded_interval_is_null_never_infinite() {
        let estimate = Estimate { value: 0.1, variance: 0.01 };
        assert!(analyse(estimate, 0.05).expect("usable").credible_interval.is_some());
        // 1 - alpha/2 rounds to 1 in f64: the quantile is infinite, and JSON has no infinity.
        let tiny = analyse(estimate, 5e-324).expect("usable");
        assert_eq!(tiny.credible_interval, None);
        assert!(tiny.chance_to_beat_control.is_finite() && tiny.expected_loss.is_finite());
    }
}
