//! `?explain=true`: results that carry their proof. Beside the numbers: every ClickHouse
//! statement the answer ran (the exact text sent, bound values in place), the per-variant
//! sufficient statistics, and a self-contained Python program (scipy only) that recomputes
//! every p-value and interval of the answer from those statistics.

use serde::Serialize;

mod catalog;
pub use catalog::{explain_metrics, MetricsExplain};

use super::Question;
use crate::{
    domain::Experiment,
    stats::{Analysis, Correction, Significance},
    storage::clickhouse::VariantStats,
};

/// One variant's sufficient statistics, as the statements returned them.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VariantStatistics {
    pub variant: String,
    /// Exposed users.
    pub n: u64,
    /// Converted users.
    pub converted: u64,
    /// Sum and sum of squares of the per-user values.
    pub value_sum: f64,
    pub value_sum_sq: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Explain {
    /// Every ClickHouse statement the answer ran, in order, exactly as sent (bound values
    /// in place, as literals); the rollup's statements when it answered.
    pub statements: Vec<String>,
    /// Per variant (the control first): what every number is computed from.
    pub statistics: Vec<VariantStatistics>,
    /// A Python 3 program (needs scipy) that recomputes every treatment's p-values and
    /// intervals (fixed horizon, sequential, the decision after the correction) from
    /// `statistics` and prints them as JSON.
    pub python: String,
}

/// The explanation of one event type's results.
pub fn explain(
    experiment: &Experiment,
    rows: &[VariantStats],
    question: &Question,
    analysis: &Analysis,
    statements: Vec<String>,
) -> Explain {
    let statistics: Vec<VariantStatistics> = experiment
        .variants
        .iter()
        .map(|v| {
            let s = rows.iter().find(|r| r.variant == v.name).cloned().unwrap_or_default();
            VariantStatistics {
                variant: v.name.clone(),
                n: s.users,
                converted: s.converted_users,
                value_sum: s.value_sum,
                value_sum_sq: s.value_sum_sq,
            }
        })
        .collect();
    let input = serde_json::json!({
        "alpha": analysis.alpha,
        "tuning": analysis.sequential_tuning,
        "test": test_name(analysis),
        "correction": correction_name(question.correction),
        "value": question.value_property.is_some(),
        "variants": statistics,
    });
    let python = program(&input, EVENT_TYPE);
    Explain { statements, statistics, python }
}

/// The recomputation, written from docs/statistics.md with scipy alone (no code of ours):
/// the shared functions, then each answer's main part.
const RECOMPUTE: &str = include_str!("explain/recompute.py");
const EVENT_TYPE: &str = include_str!("explain/event_type.py");
const METRICS: &str = include_str!("explain/metrics.py");

/// The program: `input` embedded as a JSON string literal (valid Python too, whatever the
/// variant names or keys hold), then the shared functions and `main`.
fn program(input: &serde_json::Value, main: &str) -> String {
    let literal = serde_json::to_string(&input.to_string()).unwrap_or_default();
    format!("{}\n\n{main}", RECOMPUTE.replace("{{INPUT}}", &literal))
}

fn test_name(analysis: &Analysis) -> &'static str {
    match analysis.significance {
        Significance::Sequential => "sequential",
        Significance::FixedHorizon => "fixed_horizon",
    }
}

fn correction_name(correction: Correction) -> &'static str {
    match correction {
        Correction::Holm => "holm",
        Correction::Bh => "bh",
        Correction::None => "none",
    }
}
