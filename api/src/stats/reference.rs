//! The reference values of `api/tests/data/reference_stats.json` (from scipy, statsmodels
//! and gbstats, written by `scripts/reference_stats.py`) and how tests compare with them.

use serde::Deserialize;

use super::{compare_means, compare_proportions, cuped::Paired, Analysis, Comparison, Moments, Proportion};

#[derive(Deserialize)]
pub struct Reference {
    pub views: Vec<ViewCase>,
    pub cuped: Vec<CupedCase>,
    pub ratios: Vec<RatioCase>,
    pub cuped_theta_three_variants: ThetaCase,
    pub power: Vec<PowerCase>,
    pub corrections: Vec<CorrectionCase>,
    pub proportions: Vec<PropCase>,
    pub means: Vec<MeanCase>,
    pub srm: Vec<SrmCase>,
}
/// What gbstats (or scipy's Welch test, for a control mean of 0 or below) answered for one
/// fixed-horizon comparison.
#[derive(Deserialize)]
pub struct Expected {
    pub alpha: f64,
    pub p_value: f64,
    pub absolute_ci: [f64; 2],
    pub relative_lift: Option<f64>,
    pub relative_ci: Option<[f64; 2]>,
}
#[derive(Deserialize)]
pub struct PropCase {
    pub n1: u64,
    pub x1: u64,
    pub n2: u64,
    pub x2: u64,
    #[serde(flatten)]
    pub expected: Expected,
}
#[derive(Deserialize)]
pub struct MeanCase {
    pub n1: u64,
    pub sum1: f64,
    pub sum_sq1: f64,
    pub n2: u64,
    pub sum2: f64,
    pub sum_sq2: f64,
    #[serde(flatten)]
    pub expected: Expected,
}
#[derive(Deserialize)]
pub struct Arm {
    pub n: u64,
    pub x: Option<u64>,
    pub sum: Option<f64>,
    pub sum_sq: Option<f64>,
}
#[derive(Deserialize)]
pub struct SequentialRef {
    pub p_value: f64,
    pub absolute_ci: [f64; 2],
    pub relative_ci: [f64; 2],
}
#[derive(Deserialize)]
pub struct BayesianRef {
    pub chance_to_beat_control: f64,
    pub expected_loss: f64,
    pub credible_interval: [f64; 2],
}
#[derive(Deserialize)]
pub struct ViewCase {
    pub control: Arm,
    pub treatment: Arm,
    pub alpha: f64,
    pub tuning: f64,
    pub sequential: SequentialRef,
    pub bayesian: BayesianRef,
}
#[derive(Deserialize)]
pub struct CupedCase {
    pub control: Paired,
    pub treatment: Paired,
    pub alpha: f64,
    pub theta: f64,
    pub relative_lift: f64,
    pub relative_ci: [f64; 2],
    pub p_value: f64,
    pub variance_reduction: f64,
}
#[derive(Deserialize)]
pub struct RatioSums {
    pub n: u64,
    pub num_sum: f64,
    pub num_sum_sq: f64,
    pub den_sum: f64,
    pub den_sum_sq: f64,
    pub num_den: f64,
}
#[derive(Deserialize)]
pub struct RatioCase {
    pub control: RatioSums,
    pub treatment: RatioSums,
    pub alpha: f64,
    pub tuning: f64,
    pub control_ratio: f64,
    pub treatment_ratio: f64,
    pub p_value: f64,
    pub relative_ci: [f64; 2],
    pub sequential_p_value: f64,
    pub sequential_relative_ci: [f64; 2],
}
#[derive(Deserialize)]
pub struct ThetaCase {
    pub variants: Vec<Paired>,
    pub theta: f64,
}
#[derive(Deserialize)]
pub struct PowerCase {
    pub mean: f64,
    pub variance: f64,
    pub n_c: f64,
    pub n_t: f64,
    pub alpha: f64,
    pub tuning: Option<f64>,
    pub elapsed_days: f64,
    pub target: f64,
    pub mde_relative: f64,
    pub days_to_target: f64,
}
#[derive(Deserialize)]
pub struct CorrectionCase {
    pub p: Vec<f64>,
    pub holm: Vec<f64>,
    pub bh: Vec<f64>,
}
#[derive(Deserialize)]
pub struct SrmCase {
    pub observed: Vec<u64>,
    pub weights: Vec<f64>,
    pub p_value: f64,
}

pub fn reference() -> Reference {
    serde_json::from_str(include_str!("../../tests/data/reference_stats.json")).expect("reference file parses")
}

pub fn close(a: f64, b: f64, what: &str) {
    let tol = 1e-9_f64.max(b.abs() * 1e-7);
    assert!((a - b).abs() <= tol, "{what}: ours {a} vs reference {b}");
}

pub fn close_pair(a: [f64; 2], b: [f64; 2], what: &str) {
    close(a[0], b[0], &format!("{what} lo"));
    close(a[1], b[1], &format!("{what} hi"));
}

pub fn compare(c: &Arm, t: &Arm, analysis: &Analysis) -> Comparison {
    match (c.x, t.x) {
        (Some(x1), Some(x2)) => {
            compare_proportions(Proportion { n: c.n, x: x1 }, Proportion { n: t.n, x: x2 }, analysis)
        }
        _ => {
            let m = |a: &Arm| Moments { n: a.n, sum: a.sum.expect("sum"), sum_sq: a.sum_sq.expect("sum_sq") };
            compare_means(m(c), m(t), analysis)
        }
    }
}

/// A fixed-horizon comparison against its reference values.
pub fn check_fixed(r: &Comparison, e: &Expected, what: &str) {
    close(r.p_value.expect("p"), e.p_value, &format!("p {what}"));
    close_pair(r.absolute_ci.expect("ci"), e.absolute_ci, &format!("ci {what}"));
    match (e.relative_lift, e.relative_ci) {
        (Some(lift), Some(ci)) => {
            close(r.relative_lift.expect("relative lift"), lift, &format!("relative lift {what}"));
            close_pair(r.relative_ci.expect("relative ci"), ci, &format!("relative ci {what}"));
        }
        _ => assert_eq!((r.relative_lift, r.relative_ci), (None, None), "no relative numbers {what}"),
    }
}
