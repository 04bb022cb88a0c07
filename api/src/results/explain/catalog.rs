//! `?explain=true` on the metrics answer: every metric's per-variant sufficient statistics
//! (what its kind is computed from) and a program recomputing each decision, the family's
//! correction and each guardrail's status.

use serde::Serialize;

use super::{correction_name, program, test_name, VariantStatistics, METRICS};
use crate::{
    domain::{
        metric::{Direction, MetricKind, Role},
        Experiment,
    },
    results::multi::{counted, MetricRows},
    stats::{Analysis, Correction, RatioMoments},
};

/// A ratio metric's sums over one variant's exposed users (numerator, denominator).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RatioStatistics {
    pub variant: String,
    #[serde(flatten)]
    pub moments: RatioMoments,
}

/// A quantile metric's valued events `n`, the quantile and the ends of its
/// order-statistic interval.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct QuantileStatistics {
    pub variant: String,
    pub n: u64,
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// One variant's statistics, by the metric's kind.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Statistics {
    /// Conversion and mean metrics (a count metric: `value_sum` counts events).
    Users(VariantStatistics),
    Ratio(RatioStatistics),
    Quantile(QuantileStatistics),
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MetricStatistics {
    pub key: String,
    pub kind: MetricKind,
    pub role: Role,
    pub direction: Direction,
    pub margin: Option<f64>,
    /// The control first.
    pub variants: Vec<Statistics>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MetricsExplain {
    /// Every ClickHouse statement the answer ran, exactly as sent (bound values in place).
    pub statements: Vec<String>,
    pub metrics: Vec<MetricStatistics>,
    /// A Python 3 program (needs scipy) that recomputes every metric's decision, adjusted
    /// across the decision's family (guardrails: across treatments), and each guardrail's
    /// status, and prints them as JSON.
    pub python: String,
}

/// The explanation of the metrics answer; `per_metric` as `assemble_all` receives it.
pub fn explain_metrics(
    experiment: &Experiment,
    per_metric: &[MetricRows],
    analysis: &Analysis,
    correction: Correction,
    statements: Vec<String>,
) -> MetricsExplain {
    let entries = experiment.metrics.entries();
    let metrics: Vec<MetricStatistics> = experiment
        .metric_definitions
        .iter()
        .zip(per_metric)
        .zip(&entries)
        .map(|((m, rows), (_, role, margin))| MetricStatistics {
            key: m.key.clone(),
            kind: m.kind,
            role: *role,
            direction: m.direction,
            margin: *margin,
            variants: experiment.variants.iter().map(|v| statistics(m, rows, &v.name)).collect(),
        })
        .collect();
    let input = serde_json::json!({
        "alpha": analysis.alpha,
        "tuning": analysis.sequential_tuning,
        "test": test_name(analysis),
        "correction": correction_name(correction),
        "metrics": metrics,
    });
    MetricsExplain { statements, python: program(&input, METRICS), metrics }
}

fn statistics(m: &crate::domain::metric::Metric, rows: &MetricRows, variant: &str) -> Statistics {
    let name = variant.to_owned();
    match rows {
        MetricRows::Stats(rows) => {
            let row = rows.iter().find(|r| r.variant == variant).cloned().unwrap_or_default();
            let s = counted(m, vec![row]).remove(0);
            Statistics::Users(VariantStatistics {
                variant: name,
                n: s.users,
                converted: s.converted_users,
                value_sum: s.value_sum,
                value_sum_sq: s.value_sum_sq,
            })
        }
        MetricRows::Ratio(rows) => {
            let r = rows.iter().find(|r| r.variant == variant).cloned().unwrap_or_default();
            Statistics::Ratio(RatioStatistics { variant: name, moments: r.moments() })
        }
        MetricRows::Quantile(rows) => {
            let r = rows.iter().find(|r| r.variant == variant).cloned().unwrap_or_default();
            Statistics::Quantile(QuantileStatistics { variant: name, n: r.n, value: r.value, lo: r.lo, hi: r.hi })
        }
    }
}
