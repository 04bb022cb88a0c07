//! Every catalog metric of an experiment in one answer (`GET /experiments/{id}/results`
//! without `event_type`): each metric assembled as the single-metric results are, then the
//! decision's correction widened to all metrics × treatments of the decision (primary and
//! secondaries; guardrails are corrected across treatments only and checked against their
//! margins).

use std::collections::HashMap;

use serde::Serialize;

use super::{analysis_of, assemble, Question, Srm, Warning, Window};
use crate::{
    domain::{
        metric::{Direction, Metric, MetricKind, Role},
        Experiment, Phase,
    },
    stats::{self, quantile::QuantileEstimate, Analysis, Comparison, Correction, RatioMoments, Significance},
    storage::clickhouse::{QuantileRow, RatioRow, VariantStats},
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
    /// Conversion: converted users; mean: the sum of per-user values (capped); ratio: the
    /// numerator's sum.
    pub total: Option<f64>,
    /// Ratio: the denominator's sum; null for the other kinds.
    pub denominator: Option<f64>,
    /// Conversion: the share converted; mean: the mean per user; ratio: total / denominator;
    /// quantile: the quantile of the valued events (`total` of them).
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
    /// With `explain=true`: the statements run, every metric's sufficient statistics and a
    /// Python program that recomputes every decision; null otherwise.
    pub explain: Option<super::explain::MetricsExplain>,
    /// With `dimension=<attribute>`: every metric per value of the attribute.
    pub breakdown: Option<super::breakdown::MetricsBreakdown>,
}

/// What ClickHouse answered for one metric.
#[derive(Debug)]
pub enum MetricRows {
    /// Conversion and mean metrics: the results statement's rows.
    Stats(Vec<VariantStats>),
    /// Ratio metrics.
    Ratio(Vec<RatioRow>),
    /// Quantile metrics.
    Quantile(Vec<QuantileRow>),
}

/// One metric's question for the single-metric assembly: a count metric (mean without a
/// property) reads each user's event count as the value, without CUPED.
pub fn question_of(metric: &Metric, base: &Question) -> Question {
    let counted = metric.kind == MetricKind::Mean && metric.value_property.is_none();
    let value_property = match metric.kind {
        MetricKind::Mean => Some(metric.value_property.clone().unwrap_or_else(|| COUNT.to_owned())),
        MetricKind::Conversion | MetricKind::Ratio | MetricKind::Quantile => None,
    };
    Question {
        event_type: metric.event_type.clone(),
        value_property,
        cuped_days: if counted || metric.kind == MetricKind::Ratio { 0 } else { base.cuped_days },
        prior: metric.prior,
        ..base.clone()
    }
}

/// The value name a count metric is assembled under.
const COUNT: &str = "(events)";

/// Rows of a count metric: each user's event count is their value.
pub(crate) fn counted(metric: &Metric, rows: Vec<VariantStats>) -> Vec<VariantStats> {
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

/// A conversion or mean metric: the single-metric results, its own comparison kept.
fn from_stats(
    experiment: &Experiment,
    m: &Metric,
    rows: Vec<VariantStats>,
    base: &Question,
    window: &Window,
    phase: &Phase,
) -> (Vec<MetricVariant>, Vec<Warning>, Srm) {
    let single = assemble(experiment, counted(m, rows), question_of(m, base), window.clone(), phase.clone());
    let variants = single
        .variants
        .into_iter()
        .map(|v| {
            let comparison = v.comparison.and_then(|c| match m.kind {
                MetricKind::Conversion => Some(c.conversion),
                _ => c.value,
            });
            let (total, mean) = match m.kind {
                MetricKind::Conversion => (Some(v.converted_users as f64), v.conversion_rate),
                _ => v.value.map_or((None, None), |s| (s.sum, s.mean)),
            };
            MetricVariant { name: v.name, users: v.users, total, denominator: None, mean, comparison, guardrail: None }
        })
        .collect();
    (variants, single.warnings, single.srm)
}

/// A ratio metric: each variant's ratio of sums, each treatment against the control
/// (corrected by [`decide`]).
fn from_ratio(experiment: &Experiment, rows: Vec<RatioRow>, analysis: &Analysis) -> Vec<MetricVariant> {
    let mut by_name: HashMap<String, RatioRow> = rows.into_iter().map(|r| (r.variant.clone(), r)).collect();
    let moments: Vec<RatioMoments> =
        experiment.variants.iter().map(|v| by_name.remove(&v.name).unwrap_or_default().moments()).collect();
    experiment
        .variants
        .iter()
        .zip(&moments)
        .enumerate()
        .map(|(i, (v, m))| MetricVariant {
            name: v.name.clone(),
            users: m.n,
            total: stats::finite(m.num_sum),
            denominator: stats::finite(m.den_sum),
            mean: m.ratio().and_then(stats::finite),
            comparison: (i > 0).then(|| stats::compare_ratios(moments[0], *m, analysis)),
            guardrail: None,
        })
        .collect()
}

/// A quantile metric: each variant's quantile, each treatment's relative difference tested
/// with the standard error its order-statistic interval implies (`(hi − lo) / 2z`)
/// (corrected by [`decide`]).
fn from_quantile(experiment: &Experiment, rows: Vec<QuantileRow>, analysis: &Analysis) -> Vec<MetricVariant> {
    let mut by_name: HashMap<String, QuantileRow> = rows.into_iter().map(|r| (r.variant.clone(), r)).collect();
    let z = stats::z_critical(analysis.alpha);
    let estimates: Vec<QuantileEstimate> = experiment
        .variants
        .iter()
        .map(|v| {
            let r = by_name.remove(&v.name).unwrap_or_default();
            QuantileEstimate { n: r.n, value: r.value, lo: r.lo, hi: r.hi }
        })
        .collect();
    experiment
        .variants
        .iter()
        .zip(&estimates)
        .enumerate()
        .map(|(i, (v, e))| MetricVariant {
            name: v.name.clone(),
            users: 0,
            total: Some(e.n as f64),
            denominator: None,
            mean: (e.n > 0).then_some(e.value).and_then(stats::finite),
            comparison: (i > 0).then(|| stats::quantile::compare_quantiles(estimates[0], *e, z, analysis)),
            guardrail: None,
        })
        .collect()
}

/// The decision over `metrics` (one answer's, or every slice's of a breakdown): the primary
/// and secondaries × treatments corrected together; each guardrail (by key) across its
/// treatments, then judged against its margin.
pub fn decide(metrics: &mut [&mut MetricResult], correction: Correction) {
    let mut family: Vec<&mut Comparison> = metrics
        .iter_mut()
        .filter(|m| m.role != Role::Guardrail)
        .flat_map(|m| m.variants.iter_mut().filter_map(|v| v.comparison.as_mut()))
        .collect();
    stats::apply_correction(&mut family, correction);
    let mut guardrails: Vec<String> =
        metrics.iter().filter(|m| m.role == Role::Guardrail).map(|m| m.key.clone()).collect();
    guardrails.sort();
    guardrails.dedup();
    for key in guardrails {
        let mut family: Vec<&mut Comparison> = metrics
            .iter_mut()
            .filter(|m| m.key == key)
            .flat_map(|m| m.variants.iter_mut().filter_map(|v| v.comparison.as_mut()))
            .collect();
        stats::apply_correction(&mut family, correction);
    }
    for m in metrics.iter_mut() {
        let (Some(margin), direction) = (m.margin, m.direction) else { continue };
        for v in m.variants.iter_mut() {
            v.guardrail = v.comparison.as_ref().map(|c| guardrail(c, direction, margin));
        }
    }
}

/// `per_metric`: each metric of `experiment.metric_definitions` (in order) with its rows.
pub fn assemble_all(
    experiment: &Experiment,
    per_metric: Vec<MetricRows>,
    base: &Question,
    window: Window,
    phase: Phase,
) -> MetricsResults {
    let analysis = analysis_of(experiment, base, &window);
    let entries = experiment.metrics.entries();
    let mut srm = None;
    let mut metrics: Vec<MetricResult> = experiment
        .metric_definitions
        .iter()
        .zip(per_metric)
        .zip(&entries)
        .map(|((m, rows), (_, role, margin))| {
            let own = Analysis { prior: m.prior, ..analysis };
            let (variants, warnings) = match rows {
                MetricRows::Stats(rows) => {
                    let (variants, warnings, s) = from_stats(experiment, m, rows, base, &window, &phase);
                    srm.get_or_insert(s);
                    (variants, warnings)
                }
                MetricRows::Ratio(rows) => (from_ratio(experiment, rows, &own), Vec::new()),
                MetricRows::Quantile(rows) => (from_quantile(experiment, rows, &own), Vec::new()),
            };
            MetricResult {
                key: m.key.clone(),
                name: m.name.clone(),
                kind: m.kind,
                role: *role,
                direction: m.direction,
                margin: *margin,
                variants,
                warnings,
            }
        })
        .collect();
    decide(&mut metrics.iter_mut().collect::<Vec<_>>(), base.correction);
    let users = metrics
        .iter()
        .find(|m| m.kind != MetricKind::Quantile)
        .map_or_else(Vec::new, |m| m.variants.iter().map(|v| v.users).collect());
    // A quantile's statement counts events, not users: the exposed users are everyone's.
    for m in metrics.iter_mut().filter(|m| m.kind == MetricKind::Quantile) {
        m.variants.iter_mut().zip(&users).for_each(|(v, u)| v.users = *u);
    }
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
        srm: srm.unwrap_or_else(|| srm_of(experiment, &users)),
        users,
        metrics,
        explain: None,
        breakdown: None,
    }
}

fn srm_of(experiment: &Experiment, users: &[u64]) -> Srm {
    let weights: Vec<f64> = experiment.variants.iter().map(|v| v.allocation_percent).collect();
    let p_value = stats::srm_p_value(users, &weights);
    Srm { p_value, mismatch: p_value.is_some_and(|p| p < stats::SRM_THRESHOLD) }
}
