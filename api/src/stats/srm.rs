//! Sample ratio mismatch: do users per variant match the allocations?

use statrs::distribution::{ChiSquared, ContinuousCDF};

/// Sample-ratio-mismatch: Pearson's chi-square goodness of fit of observed users against
/// the allocation weights (scipy's `chisquare`). `None` without users.
pub fn srm_p_value(observed: &[u64], weights: &[f64]) -> Option<f64> {
    let total: u64 = observed.iter().sum();
    let weight_sum: f64 = weights.iter().sum();
    if total == 0 || observed.len() < 2 || observed.len() != weights.len() || weight_sum <= 0.0 {
        return None;
    }
    let chi2: f64 = observed
        .iter()
        .zip(weights)
        .map(|(&o, &w)| {
            let expected = total as f64 * w / weight_sum;
            (o as f64 - expected).powi(2) / expected
        })
        .sum();
    let dist = ChiSquared::new((observed.len() - 1) as f64).ok()?;
    Some(dist.sf(chi2))
}

/// The threshold below which the SRM test reports a mismatch.
pub const SRM_THRESHOLD: f64 = 0.001;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::reference::{close, reference};

    #[test]
    fn srm_matches_scipy_chisquare() {
        for c in reference().srm {
            close(srm_p_value(&c.observed, &c.weights).expect("p"), c.p_value, "srm");
        }
        assert_eq!(srm_p_value(&[0, 0], &[50.0, 50.0]), None);
    }
}
