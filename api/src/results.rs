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
    stats::{self, Comparison, Moments, Proportion},
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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExperimentResults {
    pub experiment_id: i64,
    pub event_type: String,
    pub value_property: Option<String>,
    pub window: Window,
    /// Name of the control (the first variant).
    pub control: String,
    pub alpha: f64,
    pub srm: Srm,
    pub variants: Vec<VariantResult>,
}

/// Per-variant sufficient statistics, as the query returns them.
#[derive(Debug, Clone, Default, Row, Deserialize)]
pub struct VariantStats {
    pub variant: String,
    pub users: u64,
    pub converted_users: u64,
    pub events: u64,
    pub value_sum: f64,
    pub value_sum_sq: f64,
}

/// One pass over the exposures and the events of one type. Exposure per user: the
/// earliest (replays collapse). Events per user: each event id once, at or after the
/// user's exposure, inside the window. No per-user rows leave ClickHouse.
/// Runs on ClickHouse 18.16 and current releases (hence `ANY LEFT JOIN ... USING`, and
/// no alias that shadows a column).
pub const RESULTS_SQL: &str = "
SELECT
    assigned_variant AS variant,
    toUInt64(count()) AS users,
    toUInt64(countIf(n_events > 0)) AS converted_users,
    toUInt64(sum(n_events)) AS events,
    toFloat64(sum(value)) AS value_sum,
    toFloat64(sum(value * value)) AS value_sum_sq
FROM
(
    SELECT user_id, assigned_variant, n_events, value
    FROM
    (
        SELECT user_id, argMin(variant, exposed_at) AS assigned_variant
        FROM exposures
        WHERE experiment_id = ? AND exposed_at >= toDateTime(?) AND exposed_at <= toDateTime(?)
        GROUP BY user_id
    )
    ANY LEFT JOIN
    (
        SELECT user_id, toUInt64(count()) AS n_events, sum(v) AS value
        FROM
        (
            SELECT user_id, ts, v
            FROM
            (
                SELECT user_id, event_id, min(timestamp) AS ts, any(visitParamExtractFloat(properties, ?)) AS v
                FROM events
                WHERE type = ? AND timestamp >= toDateTime(?) AND timestamp <= toDateTime(?)
                  AND user_id IN (SELECT user_id FROM exposures WHERE experiment_id = ?)
                GROUP BY user_id, event_id
            )
            ALL INNER JOIN
            (
                SELECT user_id, min(exposed_at) AS first_exposed
                FROM exposures
                WHERE experiment_id = ? AND exposed_at >= toDateTime(?) AND exposed_at <= toDateTime(?)
                GROUP BY user_id
            ) USING user_id
            WHERE ts >= first_exposed
        )
        GROUP BY user_id
    ) USING user_id
)
GROUP BY assigned_variant";

/// Runs [`RESULTS_SQL`] with every parameter bound (escaped by the client), never spliced.
pub async fn query_stats(
    ch: &clickhouse::Client,
    experiment_id: i64,
    event_type: &str,
    value_property: &str,
    from: u32,
    to: u32,
) -> Result<Vec<VariantStats>, clickhouse::error::Error> {
    ch.query(RESULTS_SQL)
        .bind(experiment_id)
        .bind(from)
        .bind(to)
        .bind(value_property)
        .bind(event_type)
        .bind(from)
        .bind(to)
        .bind(experiment_id)
        .bind(experiment_id)
        .bind(from)
        .bind(to)
        .fetch_all::<VariantStats>()
        .await
}

struct Parsed {
    event_type: String,
    last_day: Option<u32>,
    value_property: Option<String>,
    alpha: f64,
}

fn parse(params: ResultsParams) -> Result<Parsed, ApiError> {
    let bad = |field: &str, message: &str| ApiError::field("invalid_query", field, message);
    let event_type =
        params.event_type.ok_or_else(|| bad("event_type", "event_type is required, e.g. ?event_type=purchase"))?;
    if event_type.is_empty() || event_type.len() > MAX_TYPE_BYTES {
        return Err(bad("event_type", "event_type must be 1 to 128 bytes"));
    }
    let last_day = match params.last_day {
        None => None,
        Some(s) => match s.trim().parse::<u32>() {
            Ok(n) if (1..=3650).contains(&n) => Some(n),
            _ => return Err(bad("last_day", "last_day must be a whole number of days from 1 to 3650")),
        },
    };
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
    Ok(Parsed { event_type, last_day, value_property, alpha })
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
    let to = Utc::now();
    let from = match p.last_day {
        Some(days) => to - ChronoDuration::days(i64::from(days)),
        None => experiment.created_at - ChronoDuration::seconds(1),
    };
    let secs = |t: DateTime<Utc>| u32::try_from(t.timestamp().max(0)).unwrap_or(u32::MAX);
    let rows = query_stats(
        &state.clickhouse,
        experiment.id,
        &p.event_type,
        p.value_property.as_deref().unwrap_or(""),
        secs(from),
        secs(to),
    )
    .await
    .map_err(crate::clickhouse_error)?;
    Ok(Json(assemble(&experiment, rows, p.event_type, p.value_property, p.alpha, Window { from, to })))
}

/// Turns sufficient statistics into the response; pure, so the numbers are unit-testable.
pub fn assemble(
    experiment: &Experiment,
    rows: Vec<VariantStats>,
    event_type: String,
    value_property: Option<String>,
    alpha: f64,
    window: Window,
) -> ExperimentResults {
    let mut by_name: HashMap<String, VariantStats> = rows.into_iter().map(|r| (r.variant.clone(), r)).collect();
    let stats: Vec<VariantStats> =
        experiment.variants.iter().map(|v| by_name.remove(&v.name).unwrap_or_default()).collect();
    let with_value = value_property.is_some();
    let control = &stats[0];
    let control_prop = Proportion { n: control.users, x: control.converted_users };
    let control_moments = Moments { n: control.users, sum: control.value_sum, sum_sq: control.value_sum_sq };
    let observed: Vec<u64> = stats.iter().map(|s| s.users).collect();
    let weights: Vec<f64> = experiment.variants.iter().map(|v| v.allocation_percent).collect();
    let srm_p = stats::srm_p_value(&observed, &weights);
    let variants = experiment
        .variants
        .iter()
        .zip(&stats)
        .enumerate()
        .map(|(i, (v, s))| {
            let moments = Moments { n: s.users, sum: s.value_sum, sum_sq: s.value_sum_sq };
            VariantResult {
                name: v.name.clone(),
                allocation_percent: v.allocation_percent,
                users: s.users,
                converted_users: s.converted_users,
                conversion_rate: (s.users > 0).then(|| s.converted_users as f64 / s.users as f64),
                events: s.events,
                value: with_value.then(|| ValueSummary {
                    sum: s.value_sum,
                    mean: moments.mean(),
                    std_dev: moments.variance().map(f64::sqrt),
                }),
                comparison: (i > 0).then(|| VariantComparison {
                    conversion: stats::compare_proportions(
                        control_prop,
                        Proportion { n: s.users, x: s.converted_users },
                        alpha,
                    ),
                    value: with_value.then(|| stats::compare_means(control_moments, moments, alpha)),
                }),
            }
        })
        .collect();
    ExperimentResults {
        experiment_id: experiment.id,
        event_type,
        value_property,
        window,
        control: experiment.variants[0].name.clone(),
        alpha,
        srm: Srm { p_value: srm_p, mismatch: srm_p.is_some_and(|p| p < stats::SRM_THRESHOLD) },
        variants,
    }
}
