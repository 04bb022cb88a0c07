//! CUPED (Deng, Xu, Kohavi and Walker, "Improving the sensitivity of online controlled
//! experiments by utilizing pre-experiment data", WSDM 2013): the metric minus theta
//! times the same metric before exposure, theta pooled over all variants of the
//! experiment, then GrowthBook's regression adjustment (gbstats
//! `RegressionAdjustedStatistic`) with its two-sided t-test on the relative lift. With two
//! variants theta is exactly gbstats' `compute_theta`.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::{decision::welch_dof, interval, sample_variance, t_quantile};

/// Per-variant sufficient statistics of the metric `y` (after exposure) and its
/// covariate `x` (the same metric in the window before exposure; 0 without history).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(test, derive(serde::Deserialize))]
pub struct Paired {
    pub n: u64,
    pub y_sum: f64,
    pub y_sum_sq: f64,
    pub x_sum: f64,
    pub x_sum_sq: f64,
    pub xy_sum: f64,
    /// A 0/1 metric: its variance is p(1 - p), as for proportions elsewhere.
    pub binary: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Cuped {
    pub relative_lift: f64,
    #[schema(min_items = 2, max_items = 2)]
    pub relative_ci: Option<[f64; 2]>,
    pub p_value: Option<f64>,
    /// 1 - (variance of the adjusted relative lift) / (variance of the unadjusted one).
    pub variance_reduction: f64,
    /// The pooled regression coefficient of the metric on its pre-exposure value.
    pub theta: f64,
}

fn variance(n: f64, sum: f64, sum_sq: f64, binary: bool) -> f64 {
    if binary {
        let p = if n > 0.0 { sum / n } else { 0.0 };
        p * (1.0 - p)
    } else {
        sample_variance(n, sum, sum_sq)
    }
}

fn covariance(n: f64, xy: f64, x: f64, y: f64) -> f64 {
    if n > 1.0 {
        (xy - x * y / n) / (n - 1.0)
    } else {
        0.0
    }
}

/// Mean and per-unit variance of `y - theta x` for one variant.
struct Adjusted {
    n: f64,
    mean: f64,
    unadjusted_mean: f64,
    variance: f64,
    unadjusted_variance: f64,
}

fn adjust(s: &Paired, theta: f64) -> Adjusted {
    let n = s.n as f64;
    let var_y = variance(n, s.y_sum, s.y_sum_sq, s.binary);
    let var_x = variance(n, s.x_sum, s.x_sum_sq, s.binary);
    let cov = covariance(n, s.xy_sum, s.x_sum, s.y_sum);
    Adjusted {
        n,
        mean: (s.y_sum - theta * s.x_sum) / n,
        unadjusted_mean: s.y_sum / n,
        variance: var_y + theta * theta * var_x - 2.0 * theta * cov,
        unadjusted_variance: var_y,
    }
}

/// Theta = Cov(x, y) / Var(x) over all variants together; 0 when either is constant
/// (then the adjusted lift is the unadjusted one).
pub fn theta(variants: &[Paired]) -> f64 {
    let Some(first) = variants.first() else { return 0.0 };
    let total = |f: fn(&Paired) -> f64| variants.iter().map(f).sum::<f64>();
    let n = total(|p| p.n as f64);
    let (ys, yss) = (total(|p| p.y_sum), total(|p| p.y_sum_sq));
    let (xs, xss) = (total(|p| p.x_sum), total(|p| p.x_sum_sq));
    let var_y = variance(n, ys, yss, first.binary);
    let var_x = variance(n, xs, xss, first.binary);
    if var_x <= 0.0 || var_y <= 0.0 {
        return 0.0;
    }
    covariance(n, total(|p| p.xy_sum), xs, ys) / var_x
}

/// Variance of the relative lift `(mean_b - mean_a) / unadjusted_mean_a` (delta method).
fn relative_variance(a: &Adjusted, b: &Adjusted, var_a: f64, var_b: f64) -> f64 {
    var_b / (a.unadjusted_mean.powi(2) * b.n) + var_a * b.unadjusted_mean.powi(2) / (a.unadjusted_mean.powi(4) * a.n)
}

/// The CUPED-adjusted relative lift of `treatment` over `control` with the pooled
/// `theta` (see [`theta`]); `None` when there is nothing to compare (fewer than two users,
/// a control mean that is not positive, no variance).
pub fn analyse(control: &Paired, treatment: &Paired, theta: f64, alpha: f64) -> Option<Cuped> {
    if control.n < 2 || treatment.n < 2 {
        return None;
    }
    let (a, b) = (adjust(control, theta), adjust(treatment, theta));
    if a.mean == 0.0 || a.unadjusted_mean <= 0.0 || a.variance <= 0.0 || b.variance <= 0.0 {
        return None;
    }
    let var = relative_variance(&a, &b, a.variance, b.variance);
    let unadjusted = relative_variance(&a, &b, a.unadjusted_variance, b.unadjusted_variance);
    let lift = (b.mean - a.mean) / a.unadjusted_mean;
    let (sa, sb) = (a.variance / a.n, b.variance / b.n);
    let dof = welch_dof(sa, a.n, sb, b.n);
    let t = StudentsT::new(0.0, 1.0, dof).ok();
    let se = var.sqrt();
    // Values beyond f64's range (a property of 1e308) overflow: no number rather than null.
    if !(lift.is_finite() && theta.is_finite() && var.is_finite() && unadjusted.is_finite()) {
        return None;
    }
    Some(Cuped {
        relative_lift: lift,
        relative_ci: t.as_ref().and_then(|t| interval(lift, t_quantile(t, 1.0 - alpha / 2.0) * se)),
        p_value: t.as_ref().map(|t| (2.0 * t.sf((lift / se).abs())).min(1.0)),
        variance_reduction: if unadjusted > 0.0 { 1.0 - var / unadjusted } else { 0.0 },
        theta,
    })
}

#[cfg(test)]
mod tests {
    use crate::stats::{
        cuped,
        reference::{close, close_pair, reference},
    };

    #[test]
    fn cuped_matches_gbstats_regression_adjustment() {
        let cases = reference().cuped;
        assert!(cases.len() >= 6);
        for (i, c) in cases.iter().enumerate() {
            let (a, b) = (c.control, c.treatment);
            let r = cuped::analyse(&a, &b, cuped::theta(&[a, b]), c.alpha).expect("cuped");
            close(r.theta, c.theta, &format!("case {i} theta"));
            close(r.relative_lift, c.relative_lift, &format!("case {i} lift"));
            close_pair(r.relative_ci.expect("ci"), c.relative_ci, &format!("case {i} ci"));
            close(r.p_value.expect("p"), c.p_value, &format!("case {i} p"));
            close(r.variance_reduction, c.variance_reduction, &format!("case {i} variance reduction"));
            assert!(r.variance_reduction > 0.0, "case {i}: a correlated covariate reduces variance");
        }
        let three = reference().cuped_theta_three_variants;
        let variants = three.variants;
        close(cuped::theta(&variants), three.theta, "theta pooled over three variants");
    }
}
