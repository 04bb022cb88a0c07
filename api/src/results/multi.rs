//! Every catalog metric of an experiment in one answer (`GET /experiments/{id}/results`
//! without `event_type`): each metric assembled as the single-metric results are, then the
//! decision's correction widened to all metrics × treatments of the decision (primary and
//! secondaries; guardrails are corrected across treatments only and checked against their
//! margins).

use serde::Serialize;

use super::{assemble, ExperimentResults, Question, Srm, Warning, Window};
use crate::{
    domain::{
        metric::{Direction, Metric, MetricKind, Role},
        Experiment, Phase,
    },
    stats::{self, Comparison, Correction, Significance},
    storage::clickhouse::VariantStats,
};

/// Whether a guardrail held in a treatment: its decision's relative interval against the
/// margin (for a `higher` metric, worse is a lift below `-margin`; for `lower`, above it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardrailStatus {
    /// The whole interval is better than "worse by the margin".
    Pass,
    /// The whole interval is worse than the margin.
    Fail,
    /// The interval straddles the margin, or there is no interval yet.
    Inconclusive,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MetricVariant {
    pub name: String,
    pub users: u64,
    /// Conversion: converted users; mean: the sum of per-user values (capped).
    pub total: Option<f64>,
    /// Conversion: the share converted; mean: the mean per user.
    pub mean: Option<f64>,
    /// Against the control (null for the control): its `decision` is adjusted across
    /// every metric × treatment of the decision (guardrails: across treatments).
    pub comparison: Option<Comparison>,
    /// Guardrails' treatments only.
    pub guardrail: Option<GuardrailStatus>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MetricResult {
    pub key: String,
    pub name: String,
    pub kind: MetricKind,
    pub role: Role,
    pub direction: Direction,
    /// Guardrails: the relative worsening tolerated.
    pub margin: Option<f64>,
    pub variants: Vec<MetricVariant>,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MetricsResults {
    pub experiment_id: i64,
    pub window: Window,
    pub phase: Phase,
    pub control: String,
    pub alpha: f64,
    /// Applied across every metric × treatment of the decision (primary and secondaries).
    pub correction: Correction,
    pub significance: Significance,
    pub sequential_tuning: f64,
    pub cuped_days: u32,
    pub srm: Srm,
    /// Users per variant in the window (the same for every metric).
    pub users: Vec<u64>,
    /// Primary first, then secondaries, then guardrails.
    pub metrics: Vec<MetricResult>,
}

/// One metric's question for the single-metric assembly: a count metric (mean without a
/// property) reads each user's event count as the value, without CUPED.
pub fn question_of(metric: &Metric, base: &Question) -> Question {
    let value_property = match metric.kind {
        MetricKind::Conversion => None,
        MetricKind::Mean => Some(metric.value_property.clone().unwrap_or_else(|| COUNT.to_owned())),
    };
    let counted = metric.kind == MetricKind::Mean && metric.value_property.is_none();
    Question {
        event_type: metric.event_type.clone(),
        value_property,
        cuped_days: if counted { 0 } else { base.cuped_days },
        ..base.clone()
    }
}

/// The value name a count metric is assembled under.
const COUNT: &str = "(events)";

/// Rows of a count metric: each user's event count is their value.
pub fn counted(metric: &Metric, rows: Vec<VariantStats>) -> Vec<VariantStats> {
    if metric.kind != MetricKind::Mean || metric.value_property.is_some() {
        return rows;
    }
    rows.into_iter().map(|r| VariantStats { value_sum: r.events as f64, value_sum_sq: r.events_sum_sq, ..r }).collect()
}

fn guardrail(c: &Comparison, direction: Direction, margin: f64) -> GuardrailStatus {
    let Some([lo, hi]) = c.decision.as_ref().and_then(|d| d.relative_ci) else {
        return GuardrailStatus::Inconclusive;
    };
    let (fail, pass) = match direction {
        Direction::Higher => (hi < -margin, lo > -margin),
        Direction::Lower => (lo > margin, hi < margin),
    };
    if fail {
        GuardrailStatus::Fail
    } else if pass {
        GuardrailStatus::Pass
    } else {
        GuardrailStatus::Inconclusive
    }
}

/// `per_metric`: each metric of `experiment.metric_definitions` (in order) with its rows.
pub fn assemble_all(
    experiment: &Experiment,
    per_metric: Vec<Vec<VariantStats>>,
    base: &Question,
    window: Window,
    phase: Phase,
) -> MetricsResults {
    let roles: Vec<(Role, Option<f64>)> =
        experiment.metrics.entries().into_iter().map(|(_, role, margin)| (role, margin)).collect();
    let mut singles: Vec<ExperimentResults> = experiment
        .metric_definitions
        .iter()
        .zip(per_metric)
        .map(|(m, rows)| assemble(experiment, counted(m, rows), question_of(m, base), window.clone(), phase.clone()))
        .collect();
    // The decision's family: primary and secondaries, every treatment.
    {
        let mut family: Vec<&mut Comparison> = Vec::new();
        for ((m, single), (role, _)) in experiment.metric_definitions.iter().zip(singles.iter_mut()).zip(&roles) {
            if *role == Role::Guardrail {
                continue;
            }
            for v in single.variants.iter_mut() {
                if let Some(c) = v.comparison.as_mut() {
                    match m.kind {
                        MetricKind::Conversion => family.push(&mut c.conversion),
                        MetricKind::Mean => family.extend(c.value.as_mut()),
                    }
                }
            }
        }
        stats::apply_correction(&mut family, base.correction);
    }
    let srm = singles
        .first()
        .map_or(Srm { p_value: None, mismatch: false }, |s| Srm { p_value: s.srm.p_value, mismatch: s.srm.mismatch });
    let users = singles.first().map_or_else(Vec::new, |s| s.variants.iter().map(|v| v.users).collect());
    let metrics = experiment
        .metric_definitions
        .iter()
        .zip(singles)
        .zip(roles)
        .map(|((m, single), (role, margin))| MetricResult {
            key: m.key.clone(),
            name: m.name.clone(),
            kind: m.kind,
            role,
            direction: m.direction,
            margin,
            warnings: single.warnings,
            variants: single
                .variants
                .into_iter()
                .map(|v| {
                    let comparison = v.comparison.and_then(|c| match m.kind {
                        MetricKind::Conversion => Some(c.conversion),
                        MetricKind::Mean => c.value,
                    });
                    let (total, mean) = match m.kind {
                        MetricKind::Conversion => (Some(v.converted_users as f64), v.conversion_rate),
                        MetricKind::Mean => v.value.map_or((None, None), |s| (s.sum, s.mean)),
                    };
                    MetricVariant {
                        guardrail: margin.zip(comparison.as_ref()).map(|(margin, c)| guardrail(c, m.direction, margin)),
                        name: v.name,
                        users: v.users,
                        total,
                        mean,
                        comparison,
                    }
                })
                .collect(),
        })
        .collect();
    MetricsResults {
        experiment_id: experiment.id,
        window,
        phase,
        control: experiment.variants[0].name.clone(),
        alpha: base.alpha,
        correction: base.correction,
        significance: experiment.significance,
        sequential_tuning: experiment.sequential_tuning,
        cuped_days: base.cuped_days,
        srm,
        users,
        metrics,
    }
}
