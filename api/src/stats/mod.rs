//! Statistics as pure functions over sufficient statistics (counts, sums, sums of squares).
//!
//! The SQL only aggregates; everything a user acts on is computed here and unit-tested,
//! each module beside its tests, against scipy, statsmodels and GrowthBook's gbstats
//! (`scripts/reference_stats.py` produced `api/tests/data/reference_stats.json`). See
//! `docs/statistics.md` for the formulas.
//!
//! - [`decision`]: the fixed-horizon and sequential tests on one scale, and the decision;
//! - [`fixed`]: conversion rates and per-user means into a [`Comparison`];
//! - [`sequential`], [`bayesian`], [`cuped`], [`power`]: the other views of one comparison;
//! - [`comparison`]: the [`Comparison`] that gathers them and decides `significant`;
//! - [`correction`]: Holm and Benjamini-Hochberg across treatments; [`srm`]: sample ratio;
//! - [`quantile`]: a quantile's exact order-statistic interval (its ranks from the
//!   binomial tails of [`binomial`]) and the comparison of two quantiles.

pub mod bayesian;
pub mod binomial;
pub mod comparison;
pub mod correction;
pub mod cuped;
pub mod decision;
pub mod fixed;
pub mod power;
pub mod quantile;
#[cfg(test)]
mod reference;
pub mod sequential;
#[cfg(test)]
mod sims;
pub mod srm;

use serde::{Deserialize, Serialize};
use statrs::distribution::{Continuous, ContinuousCDF, Normal, StudentsT};

pub use bayesian::Bayesian;
pub use comparison::Comparison;
pub use correction::{adjust_p_values, apply_correction, Correction};
pub use cuped::Cuped;
pub use decision::{Decision, Scale};
pub use fixed::{compare_means, compare_proportions, compare_ratios};
pub use power::Power;
pub use sequential::Sequential;
pub use srm::{srm_p_value, SRM_THRESHOLD};

/// Users and conversions of one variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proportion {
    pub n: u64,
    pub x: u64,
}

/// A per-user metric of one variant: count, sum and sum of squares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moments {
    pub n: u64,
    pub sum: f64,
    pub sum_sq: f64,
}

/// A ratio metric of one variant (sum of a numerator over sum of a denominator, per user):
/// users, each part's sum and sum of squares, and the sum of their products.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, utoipa::ToSchema)]
pub struct RatioMoments {
    pub n: u64,
    pub num_sum: f64,
    pub num_sum_sq: f64,
    pub den_sum: f64,
    pub den_sum_sq: f64,
    /// Sum over users of numerator × denominator.
    pub num_den: f64,
}

impl RatioMoments {
    /// `Σ numerator / Σ denominator`; none without a denominator.
    pub fn ratio(&self) -> Option<f64> {
        (self.den_sum != 0.0).then(|| self.num_sum / self.den_sum)
    }

    /// The delta-method variance of the ratio per user (gbstats `RatioStatistic.variance`):
    /// `σ²_m/μ_d² − 2 cov μ_m/μ_d³ + μ_m² σ²_d/μ_d⁴`, each from the sample (n − 1).
    pub fn variance(&self) -> Option<f64> {
        if self.n < 2 || self.den_sum == 0.0 {
            return None;
        }
        let n = self.n as f64;
        let (mm, md) = (self.num_sum / n, self.den_sum / n);
        let vm = sample_variance(n, self.num_sum, self.num_sum_sq);
        let vd = sample_variance(n, self.den_sum, self.den_sum_sq);
        let cov = (self.num_den - self.num_sum * self.den_sum / n) / (n - 1.0);
        let v = vm / md.powi(2) - 2.0 * cov * mm / md.powi(3) + mm * mm * vd / md.powi(4);
        Some(if v <= 1e-12 * (mm / md).powi(2) { 0.0 } else { v })
    }
}

impl Moments {
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }

    /// Sample variance (n - 1 in the denominator).
    pub fn variance(&self) -> Option<f64> {
        (self.n > 1).then(|| sample_variance(self.n as f64, self.sum, self.sum_sq))
    }
}

/// Sample variance from a count, a sum and a sum of squares (n - 1 in the denominator);
/// 0 below two observations. `sum_sq - sum²/n` cancels: for values that are all equal but
/// not exact in binary (0.1) it leaves rounding noise instead of 0, which would read as
/// near-certainty. A variance below 1e-12 of the squared mean is below what these sums
/// can resolve in f64 (about 1e-16 relative each), and counts as 0.
pub fn sample_variance(n: f64, sum: f64, sum_sq: f64) -> f64 {
    if n <= 1.0 {
        return 0.0;
    }
    let mean = sum / n;
    let variance = (sum_sq - sum * mean) / (n - 1.0);
    if variance <= 1e-12 * mean * mean {
        0.0
    } else {
        variance
    }
}

/// Which test decides `significant`. Only the sequential one stays valid when results
/// are looked at before the planned sample size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Significance {
    Sequential,
    FixedHorizon,
}

/// GrowthBook's default tuning parameter of the confidence sequences.
pub const DEFAULT_SEQUENTIAL_TUNING: f64 = 5000.0;

/// How comparisons are made: the experiment's settings and the analyst's question.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Analysis {
    pub alpha: f64,
    pub significance: Significance,
    /// The sample size (both variants) around which the confidence sequence is tightest.
    pub sequential_tuning: f64,
    /// The relative lift `power.days_to_target` is about.
    pub target_lift: Option<f64>,
    /// Days of traffic the numbers cover (for extrapolating it).
    pub elapsed_days: f64,
    /// The Bayesian view's prior on the relative lift; `None`: flat (the default).
    pub prior: Option<bayesian::Prior>,
}

impl Analysis {
    /// Fixed-horizon significance at `alpha`, nothing else set: for tests.
    pub fn fixed(alpha: f64) -> Self {
        Analysis {
            alpha,
            significance: Significance::FixedHorizon,
            sequential_tuning: DEFAULT_SEQUENTIAL_TUNING,
            target_lift: None,
            elapsed_days: 0.0,
            prior: None,
        }
    }

    pub(crate) fn power_test(&self) -> power::Test {
        match self.significance {
            Significance::FixedHorizon => power::Test::FixedHorizon,
            Significance::Sequential => power::Test::Sequential { tuning: self.sequential_tuning },
        }
    }
}

/// A point estimate and the variance of that estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub value: f64,
    pub variance: f64,
}

pub(crate) fn std_normal() -> Normal {
    // mean 0, sd 1 are valid parameters
    Normal::new(0.0, 1.0).unwrap_or_else(|_| unreachable!())
}

/// Two-sided critical value of the standard normal.
pub fn z_critical(alpha: f64) -> f64 {
    std_normal().inverse_cdf(1.0 - alpha / 2.0)
}

/// Quantile of Student's t: statrs' inverse polished by Newton steps on its cdf (the
/// inverse alone is off by ~1e-6 relative at 10^5 degrees of freedom; scipy is exact).
pub(crate) fn t_quantile(t: &StudentsT, p: f64) -> f64 {
    let mut q = t.inverse_cdf(p);
    for _ in 0..3 {
        let step = (t.cdf(q) - p) / t.pdf(q);
        if !step.is_finite() || step == 0.0 {
            break;
        }
        q -= step;
    }
    q
}

pub(crate) fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// `center ± half_width`; none without a positive, finite half width: an interval needs a
/// positive standard error (0/n against 0/n, or constant arms, have none: `[0, 0]` would
/// claim a certainty the data do not give).
pub(crate) fn interval(center: f64, half_width: f64) -> Option<[f64; 2]> {
    (center.is_finite() && half_width.is_finite() && half_width > 0.0)
        .then_some([center - half_width, center + half_width])
}
