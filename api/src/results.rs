//! Experiment results: one ClickHouse query for per-variant sufficient statistics, the
//! statistics in Rust (`crate::stats`).

use std::collections::HashMap;

use axum::{extract::State, Json};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use clickhouse::Row;
use common::event::MAX_TYPE_BYTES;
use ingest::{error::ApiError, extract::Query};
use serde::{Deserialize, Serialize};

use crate::{
    experiments::{self, Experiment},
    stats::{self, cuped::Paired, Analysis, Comparison, Correction, Moments, Proportion, Significance},
    AppState, ExperimentId,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ResultsParams {
    /// The conversion event, e.g. `purchase` (required).
    pub event_type: Option<String>,
    /// Only exposures and events of the last N days (1 to 3650).
    pub last_day: Option<String>,
    /// A numeric property summed per user as the value metric, e.g. `order_value`.
    pub value_property: Option<String>,
    /// Significance level, in (0, 0.5]; default 0.05.
    pub alpha: Option<String>,
    /// Adjustment of the p-values of several treatments: `holm` (default), `bh` or `none`.
    pub correction: Option<String>,
    /// Days before each user's exposure whose events are the CUPED covariate, 0 to 365
    /// (default 14; 0 turns CUPED off).
    pub cuped_days: Option<String>,
    /// A relative lift (e.g. `0.05` for +5 %) for `power.days_to_target`.
    pub target_lift: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Srm {
    /// Chi-square goodness-of-fit p-value of users against allocations; null without users.
    pub p_value: Option<f64>,
    /// True when `p_value` < 0.001.
    pub mismatch: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ValueSummary {
    pub sum: f64,
    pub mean: Option<f64>,
    pub std_dev: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VariantComparison {
    pub conversion: Comparison,
    pub value: Option<Comparison>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VariantResult {
    pub name: String,
    pub allocation_percent: f64,
    /// Exposed users in the window.
    pub users: u64,
    /// Exposed users with at least one `event_type` event at or after their exposure.
    pub converted_users: u64,
    pub conversion_rate: Option<f64>,
    /// Those users' `event_type` events (each event id once).
    pub events: u64,
    /// Per-user sums of `value_property` (0 for users without events); null without it.
    pub value: Option<ValueSummary>,
    /// Against the control; null for the control itself.
    pub comparison: Option<VariantComparison>,
}

/// Something that should make an analyst read the numbers with care.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Warning {
    /// `sample_ratio_mismatch`, `small_sample` or `zero_conversions`.
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExperimentResults {
    pub experiment_id: i64,
    pub event_type: String,
    pub value_property: Option<String>,
    pub window: Window,
    /// Name of the control (the first variant).
    pub control: String,
    pub alpha: f64,
    /// How `adjusted_p_value` (and so `significant`) accounts for several treatments.
    pub correction: Correction,
    /// The experiment's setting: which test's adjusted p-value decides `significant`.
    pub significance: Significance,
    /// The experiment's tuning parameter of the sequential intervals.
    pub sequential_tuning: f64,
    /// Days before exposure used as the CUPED covariate (0: CUPED off).
    pub cuped_days: u32,
    /// The lift `power.days_to_target` is about, when asked.
    pub target_lift: Option<f64>,
    pub srm: Srm,
    pub warnings: Vec<Warning>,
    pub variants: Vec<VariantResult>,
}

/// Per-variant sufficient statistics, as the query returns them. `pre_*`: the same
/// metric for the same users in the CUPED window before their exposure.
#[derive(Debug, Clone, Default, Row, Deserialize)]
pub struct VariantStats {
    pub variant: String,
    pub users: u64,
    pub converted_users: u64,
    pub events: u64,
    pub value_sum: f64,
    pub value_sum_sq: f64,
    /// Users with an event before exposure, and those of them who also converted after.
    pub pre_converted_users: u64,
    pub converted_both: u64,
    pub pre_value_sum: f64,
    pub pre_value_sum_sq: f64,
    /// Sum over users of value × pre-exposure value.
    pub value_pre_value: f64,
}

/// One pass over the events of one type and two over the experiment's exposures.
/// Exposure per user: the earliest (replays collapse), which also fixes the user's variant.
/// Events: each `(type, user_id, event_id)` once, read with `FINAL` (the table's
/// ReplacingMergeTree key: a streaming merge of sorted parts, far cheaper than hashing
/// every event id; of duplicates the last written counts). Per user, events at or after
/// the exposure count, those in the `cuped_days` before it are the CUPED covariate. Users
/// per variant come from the exposures alone, the event sums from users with events, and
/// the two are added up by variant: no per-user rows leave ClickHouse and no join of all
/// exposed users with their events is needed.
/// Runs on ClickHouse 18.16 and current releases (hence `ALL INNER JOIN ... USING`, and
/// no alias that shadows a column).
pub const RESULTS_SQL: &str = "
SELECT
    variant,
    toUInt64(sum(n_users)) AS users,
    toUInt64(sum(n_converted)) AS converted_users,
    toUInt64(sum(n_events_total)) AS events,
    toFloat64(sum(y_sum)) AS value_sum,
    toFloat64(sum(y_sum_sq)) AS value_sum_sq,
    toUInt64(sum(n_pre_converted)) AS pre_converted_users,
    toUInt64(sum(n_both)) AS converted_both,
    toFloat64(sum(x_sum)) AS pre_value_sum,
    toFloat64(sum(x_sum_sq)) AS pre_value_sum_sq,
    toFloat64(sum(xy_sum)) AS value_pre_value
FROM
(
    SELECT
        assigned_variant AS variant, count() AS n_users, 0 AS n_converted, 0 AS n_events_total,
        0. AS y_sum, 0. AS y_sum_sq, 0 AS n_pre_converted, 0 AS n_both, 0. AS x_sum, 0. AS x_sum_sq, 0. AS xy_sum
    FROM
    (
        SELECT user_id, argMin(variant, exposed_at) AS assigned_variant
        FROM exposures
        WHERE experiment_id = ? AND exposed_at >= toDateTime(?) AND exposed_at <= toDateTime(?)
        GROUP BY user_id
    )
    GROUP BY assigned_variant
    UNION ALL
    SELECT
        assigned_variant AS variant, 0 AS n_users,
        countIf(n_events > 0) AS n_converted, sum(n_events) AS n_events_total,
        sum(value) AS y_sum, sum(value * value) AS y_sum_sq,
        countIf(n_pre > 0) AS n_pre_converted, countIf(n_pre > 0 AND n_events > 0) AS n_both,
        sum(pre_value) AS x_sum, sum(pre_value * pre_value) AS x_sum_sq, sum(value * pre_value) AS xy_sum
    FROM
    (
        SELECT
            user_id,
            any(assigned_variant) AS assigned_variant,
            countIf(ts >= first_exposed) AS n_events,
            sumIf(v, ts >= first_exposed) AS value,
            countIf(ts < first_exposed) AS n_pre,
            sumIf(v, ts < first_exposed) AS pre_value
        FROM
        (
            SELECT user_id, timestamp AS ts, visitParamExtractFloat(properties, ?) AS v
            FROM events FINAL
            WHERE type = ? AND timestamp >= toDateTime(?) AND timestamp <= toDateTime(?)
        )
        ALL INNER JOIN
        (
            SELECT user_id, min(exposed_at) AS first_exposed, argMin(variant, exposed_at) AS assigned_variant
            FROM exposures
            WHERE experiment_id = ? AND exposed_at >= toDateTime(?) AND exposed_at <= toDateTime(?)
            GROUP BY user_id
        ) USING user_id
        WHERE ts >= first_exposed - ?
        GROUP BY user_id
    )
    GROUP BY assigned_variant
)
GROUP BY variant";

/// What [`RESULTS_SQL`] is asked: times in Unix seconds.
pub struct StatsQuery<'a> {
    pub experiment_id: i64,
    pub event_type: &'a str,
    pub value_property: &'a str,
    pub from: u32,
    pub to: u32,
    /// Length of the CUPED pre-exposure window.
    pub cuped_seconds: u32,
}

/// Runs [`RESULTS_SQL`] with every parameter bound (escaped by the client), never spliced.
pub async fn query_stats(
    ch: &clickhouse::Client,
    q: &StatsQuery<'_>,
) -> Result<Vec<VariantStats>, clickhouse::error::Error> {
    ch.query(RESULTS_SQL)
        .bind(q.experiment_id)
        .bind(q.from)
        .bind(q.to)
        .bind(q.value_property)
        .bind(q.event_type)
        .bind(q.from.saturating_sub(q.cuped_seconds))
        .bind(q.to)
        .bind(q.experiment_id)
        .bind(q.from)
        .bind(q.to)
        .bind(q.cuped_seconds)
        .fetch_all::<VariantStats>()
        .await
}

pub(crate) struct Parsed {
    pub event_type: String,
    pub last_day: Option<u32>,
    pub value_property: Option<String>,
    pub alpha: f64,
    pub correction: Correction,
    pub cuped_days: u32,
    pub target_lift: Option<f64>,
}

/// Default CUPED window before exposure, in days.
pub const DEFAULT_CUPED_DAYS: u32 = 14;

pub(crate) fn parse(params: ResultsParams) -> Result<Parsed, ApiError> {
    let bad = |field: &str, message: &str| ApiError::field("invalid_query", field, message);
    let event_type =
        params.event_type.ok_or_else(|| bad("event_type", "event_type is required, e.g. ?event_type=purchase"))?;
    if event_type.is_empty() || event_type.len() > MAX_TYPE_BYTES {
        return Err(bad("event_type", "event_type must be 1 to 128 bytes"));
    }
    let last_day = parse_last_day(params.last_day.as_deref())?;
    let value_property = match params.value_property {
        None => None,
        Some(p) if p.is_empty() || p.len() > 128 => {
            return Err(bad("value_property", "value_property must be 1 to 128 bytes"))
        }
        Some(p) => Some(p),
    };
    let alpha = match params.alpha {
        None => 0.05,
        Some(s) => match s.trim().parse::<f64>() {
            Ok(a) if a > 0.0 && a <= 0.5 => a,
            _ => return Err(bad("alpha", "alpha must be a number in (0, 0.5]")),
        },
    };
    let correction = match params.correction.as_deref() {
        None | Some("holm") => Correction::Holm,
        Some("bh") => Correction::Bh,
        Some("none") => Correction::None,
        Some(_) => return Err(bad("correction", "correction must be holm, bh or none")),
    };
    let cuped_days = match params.cuped_days {
        None => DEFAULT_CUPED_DAYS,
        Some(s) => match s.trim().parse::<u32>() {
            Ok(n) if n <= 365 => n,
            _ => return Err(bad("cuped_days", "cuped_days must be a whole number of days from 0 to 365")),
        },
    };
    let target_lift = match params.target_lift {
        None => None,
        Some(s) => match s.trim().parse::<f64>() {
            Ok(t) if t.is_finite() && t != 0.0 && t.abs() <= 100.0 => Some(t),
            _ => return Err(bad("target_lift", "target_lift must be a non-zero relative lift, e.g. 0.05 for +5 %")),
        },
    };
    Ok(Parsed { event_type, last_day, value_property, alpha, correction, cuped_days, target_lift })
}

/// Conversion (and optionally value) per variant, compared with the control.
#[utoipa::path(get, path = "/experiments/{id}/results", tag = "results", params(("id" = i64, Path), ResultsParams),
    responses((status = 200, body = ExperimentResults), (status = 400, body = ingest::error::ErrorBody), (status = 404, body = ingest::error::ErrorBody),
        (status = 503, body = ingest::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn results(
    State(state): State<AppState>,
    id: ExperimentId,
    Query(params): Query<ResultsParams>,
) -> Result<Json<ExperimentResults>, ApiError> {
    let p = parse(params)?;
    let experiment = state.cache.get(&state.db, id.0).await?.ok_or_else(|| experiments::not_found(id.0))?;
    let Window { from, to } = window(&experiment, p.last_day);
    let query = StatsQuery {
        experiment_id: experiment.id,
        event_type: &p.event_type,
        value_property: p.value_property.as_deref().unwrap_or(""),
        from: secs(from),
        to: secs(to),
        cuped_seconds: p.cuped_days * 86_400,
    };
    let rows = query_stats(&state.clickhouse, &query).await.map_err(crate::clickhouse_error)?;
    let question = Question {
        event_type: p.event_type,
        value_property: p.value_property,
        alpha: p.alpha,
        correction: p.correction,
        cuped_days: p.cuped_days,
        target_lift: p.target_lift,
    };
    Ok(Json(assemble(&experiment, rows, question, Window { from, to })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct EventTypesParams {
    /// Event types seen in the last N days (1 to 3650, default 30).
    pub last_day: Option<String>,
}

#[derive(Debug, Row, Deserialize)]
struct TypeRow {
    event_type: String,
    n: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventTypeCount {
    #[serde(rename = "type")]
    pub event_type: String,
    /// Events of this type in the window (a replayed event may count twice here).
    pub events: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EventTypes {
    pub window: Window,
    /// The 100 most frequent types, most frequent first.
    pub event_types: Vec<EventTypeCount>,
}

/// The event types recently received, for choosing a results metric (the results page's
/// event type selector). One cheap query: two columns, partitions of the window only.
#[utoipa::path(get, path = "/event_types", tag = "results", params(EventTypesParams),
    responses((status = 200, body = EventTypes), (status = 400, body = ingest::error::ErrorBody), (status = 503, body = ingest::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn event_types(
    State(state): State<AppState>,
    Query(params): Query<EventTypesParams>,
) -> Result<Json<EventTypes>, ApiError> {
    let days = parse_last_day(params.last_day.as_deref())?.unwrap_or(30);
    let to = Utc::now();
    let from = to - ChronoDuration::days(i64::from(days));
    let event_types = state
        .clickhouse
        .query(
            "SELECT type AS event_type, toUInt64(count()) AS n FROM events
             WHERE timestamp >= toDateTime(?) AND timestamp <= toDateTime(?)
             GROUP BY type ORDER BY n DESC, event_type LIMIT 100",
        )
        .bind(secs(from))
        .bind(secs(to))
        .fetch_all::<TypeRow>()
        .await
        .map_err(crate::clickhouse_error)?
        .into_iter()
        .map(|r| EventTypeCount { event_type: r.event_type, events: r.n })
        .collect();
    Ok(Json(EventTypes { window: Window { from, to }, event_types }))
}

/// `last_day`: a whole number of days from 1 to 3650, or absent.
fn parse_last_day(raw: Option<&str>) -> Result<Option<u32>, ApiError> {
    match raw.map(|s| s.trim().parse::<u32>()) {
        None => Ok(None),
        Some(Ok(n)) if (1..=3650).contains(&n) => Ok(Some(n)),
        Some(_) => {
            Err(ApiError::field("invalid_query", "last_day", "last_day must be a whole number of days from 1 to 3650"))
        }
    }
}

/// The last `last_day` days up to now, or everything since the experiment was created.
pub(crate) fn window(experiment: &Experiment, last_day: Option<u32>) -> Window {
    let to = Utc::now();
    let from = match last_day {
        Some(days) => to - ChronoDuration::days(i64::from(days)),
        None => experiment.created_at - ChronoDuration::seconds(1),
    };
    Window { from, to }
}

/// Seconds since the epoch as ClickHouse 18.16's `DateTime` takes them.
pub(crate) fn secs(t: DateTime<Utc>) -> u32 {
    u32::try_from(t.timestamp().max(0)).unwrap_or(u32::MAX)
}

/// What the analyst asked for, validated.
pub struct Question {
    pub event_type: String,
    pub value_property: Option<String>,
    pub alpha: f64,
    pub correction: Correction,
    pub cuped_days: u32,
    pub target_lift: Option<f64>,
}

/// Turns sufficient statistics into the response; pure, so the numbers are unit-testable.
pub fn assemble(
    experiment: &Experiment,
    rows: Vec<VariantStats>,
    question: Question,
    window: Window,
) -> ExperimentResults {
    let Question { event_type, value_property, alpha, correction, cuped_days, target_lift } = question;
    let mut by_name: HashMap<String, VariantStats> = rows.into_iter().map(|r| (r.variant.clone(), r)).collect();
    let stats: Vec<VariantStats> =
        experiment.variants.iter().map(|v| by_name.remove(&v.name).unwrap_or_default()).collect();
    let with_value = value_property.is_some();
    let started = window.from.max(experiment.created_at);
    let analysis = Analysis {
        alpha,
        significance: experiment.significance,
        sequential_tuning: experiment.sequential_tuning,
        target_lift,
        elapsed_days: (window.to - started).num_milliseconds().max(0) as f64 / 86_400_000.0,
    };
    let control = &stats[0];
    let observed: Vec<u64> = stats.iter().map(|s| s.users).collect();
    let weights: Vec<f64> = experiment.variants.iter().map(|v| v.allocation_percent).collect();
    let srm_p = stats::srm_p_value(&observed, &weights);
    // theta is pooled over all variants, per metric
    let thetas: Vec<f64> = [VariantStats::conversion_pairs as fn(&VariantStats) -> Paired, VariantStats::value_pairs]
        .iter()
        .map(|metric| stats::cuped::theta(&stats.iter().map(metric).collect::<Vec<_>>()))
        .collect();
    let cuped = |metric: fn(&VariantStats) -> Paired, theta: f64, treatment: &VariantStats| {
        (cuped_days > 0).then(|| stats::cuped::analyse(&metric(control), &metric(treatment), theta, alpha)).flatten()
    };
    let mut variants: Vec<VariantResult> = experiment
        .variants
        .iter()
        .zip(&stats)
        .enumerate()
        .map(|(i, (v, s))| VariantResult {
            name: v.name.clone(),
            allocation_percent: v.allocation_percent,
            users: s.users,
            converted_users: s.converted_users,
            conversion_rate: (s.users > 0).then(|| s.converted_users as f64 / s.users as f64),
            events: s.events,
            value: with_value.then(|| ValueSummary {
                sum: s.value_sum,
                mean: s.moments().mean(),
                std_dev: s.moments().variance().map(f64::sqrt),
            }),
            comparison: (i > 0).then(|| VariantComparison {
                conversion: Comparison {
                    cuped: cuped(VariantStats::conversion_pairs, thetas[0], s),
                    ..stats::compare_proportions(control.proportion(), s.proportion(), &analysis)
                },
                value: with_value.then(|| Comparison {
                    cuped: cuped(VariantStats::value_pairs, thetas[1], s),
                    ..stats::compare_means(control.moments(), s.moments(), &analysis)
                }),
            }),
        })
        .collect();
    let mut conversions: Vec<&mut Comparison> = Vec::new();
    let mut values: Vec<&mut Comparison> = Vec::new();
    for comparison in variants.iter_mut().filter_map(|v| v.comparison.as_mut()) {
        conversions.push(&mut comparison.conversion);
        if let Some(value) = comparison.value.as_mut() {
            values.push(value);
        }
    }
    stats::apply_correction(&mut conversions, correction, &analysis);
    stats::apply_correction(&mut values, correction, &analysis);
    let srm = Srm { p_value: srm_p, mismatch: srm_p.is_some_and(|p| p < stats::SRM_THRESHOLD) };
    let warnings = warnings(&srm, &variants);
    ExperimentResults {
        experiment_id: experiment.id,
        event_type,
        value_property,
        window,
        control: experiment.variants[0].name.clone(),
        alpha,
        correction,
        significance: experiment.significance,
        sequential_tuning: experiment.sequential_tuning,
        cuped_days,
        target_lift,
        srm,
        warnings,
        variants,
    }
}

impl VariantStats {
    fn proportion(&self) -> Proportion {
        Proportion { n: self.users, x: self.converted_users }
    }

    fn moments(&self) -> Moments {
        Moments { n: self.users, sum: self.value_sum, sum_sq: self.value_sum_sq }
    }

    /// Converted after exposure (y) and before it (x), as 0/1 per user.
    fn conversion_pairs(&self) -> Paired {
        let (y, x) = (self.converted_users as f64, self.pre_converted_users as f64);
        Paired {
            n: self.users,
            y_sum: y,
            y_sum_sq: y,
            x_sum: x,
            x_sum_sq: x,
            xy_sum: self.converted_both as f64,
            binary: true,
        }
    }

    /// Value after exposure (y) and before it (x) per user.
    fn value_pairs(&self) -> Paired {
        Paired {
            n: self.users,
            y_sum: self.value_sum,
            y_sum_sq: self.value_sum_sq,
            x_sum: self.pre_value_sum,
            x_sum_sq: self.pre_value_sum_sq,
            xy_sum: self.value_pre_value,
            binary: false,
        }
    }
}

/// Users per variant below which the normal approximation is not trusted: it needs at
/// least this many converted and this many unconverted users (the usual n·p ≥ 5 rule).
const MIN_OUTCOMES: u64 = 5;

fn warnings(srm: &Srm, variants: &[VariantResult]) -> Vec<Warning> {
    let mut out = Vec::new();
    if srm.mismatch {
        out.push(Warning {
            code: "sample_ratio_mismatch",
            message: format!(
                "users per variant do not match the allocations (p = {:.2e} < {}): check assignment and exposure logging before trusting any number",
                srm.p_value.unwrap_or(0.0),
                stats::SRM_THRESHOLD
            ),
        });
    }
    for v in variants {
        if v.users > 0 && v.converted_users == 0 {
            out.push(Warning {
                code: "zero_conversions",
                message: format!("variant `{}` has no conversions yet", v.name),
            });
        }
        if v.converted_users < MIN_OUTCOMES || v.users - v.converted_users < MIN_OUTCOMES {
            out.push(Warning {
                code: "small_sample",
                message: format!(
                    "variant `{}` has {} users and {} conversions: too few for the normal approximation (at least {MIN_OUTCOMES} converted and {MIN_OUTCOMES} unconverted users)",
                    v.name, v.users, v.converted_users
                ),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(variant: &str, users: u64, converted: u64) -> VariantStats {
        VariantStats {
            variant: variant.into(),
            users,
            converted_users: converted,
            events: converted,
            ..Default::default()
        }
    }

    fn query(correction: Correction) -> Question {
        Question {
            event_type: "purchase".into(),
            value_property: None,
            alpha: 0.05,
            correction,
            cuped_days: DEFAULT_CUPED_DAYS,
            target_lift: None,
        }
    }

    fn window() -> Window {
        Window { from: Utc::now(), to: Utc::now() }
    }

    #[test]
    fn several_treatments_are_each_compared_with_the_control_and_corrected() {
        let e = Experiment::test(&[3334, 3333, 3333]);
        let rows = vec![stats("v0", 1000, 100), stats("v1", 1000, 128), stats("v2", 1000, 131)];
        let none = assemble(&e, rows.clone(), query(Correction::None), window());
        let holm = assemble(&e, rows.clone(), query(Correction::Holm), window());
        let p = |r: &ExperimentResults, i: usize| {
            r.variants[i].comparison.as_ref().map(|c| c.conversion.clone()).expect("comparison")
        };
        assert!(none.variants[0].comparison.is_none());
        let (p1, p2) = (p(&none, 1).p_value.expect("p"), p(&none, 2).p_value.expect("p"));
        assert!(p1 < 0.05 && p2 < 0.05, "{p1} {p2}");
        assert!(p(&none, 1).significant);
        // Holm: the smaller p-value times 2, the larger times 1, kept monotone.
        let expected = adjust_p_values_reference(&[p1, p2]);
        assert_eq!(p(&holm, 1).adjusted_p_value, Some(expected[0]));
        assert_eq!(p(&holm, 2).adjusted_p_value, Some(expected[1]));
        assert_eq!(p(&holm, 1).p_value, Some(p1), "the raw p-value stays");
        assert_eq!(p(&holm, 1).significant, expected[0] < 0.05);
        assert_eq!(holm.correction, Correction::Holm);
    }

    fn adjust_p_values_reference(p: &[f64; 2]) -> [f64; 2] {
        let (lo, hi) = if p[0] <= p[1] { (0, 1) } else { (1, 0) };
        let mut out = [0.0; 2];
        out[lo] = (2.0 * p[lo]).min(1.0);
        out[hi] = p[hi].max(out[lo]).min(1.0);
        out
    }

    #[test]
    fn warnings_name_what_is_wrong() {
        let e = Experiment::test(&[5000, 5000]);
        let balanced =
            assemble(&e, vec![stats("v0", 1000, 100), stats("v1", 1000, 120)], query(Correction::Holm), window());
        assert_eq!(balanced.warnings, vec![]);
        let skewed =
            assemble(&e, vec![stats("v0", 1000, 100), stats("v1", 1300, 120)], query(Correction::Holm), window());
        assert!(skewed.srm.mismatch);
        assert_eq!(skewed.warnings.iter().map(|w| w.code).collect::<Vec<_>>(), ["sample_ratio_mismatch"]);
        let early = assemble(&e, vec![stats("v0", 12, 0), stats("v1", 11, 3)], query(Correction::Holm), window());
        let codes: Vec<_> = early.warnings.iter().map(|w| w.code).collect();
        assert_eq!(codes, ["zero_conversions", "small_sample", "small_sample"]);
        assert!(early.warnings[0].message.contains("v0"));
    }
}
