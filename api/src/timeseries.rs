//! Exposure and conversion over time: daily series per variant, aggregated in ClickHouse.
//! Same semantics as the results (`crate::results`): a user's exposure is the earliest,
//! events count at or after it, each event id once, inside the window; days are UTC dates.

use std::collections::HashMap;

use axum::{extract::State, Json};
use chrono::NaiveDate;
use clickhouse::Row;
use ingest::{error::ApiError, extract::Query};
use serde::{Deserialize, Serialize};

use crate::{
    experiments::{self, Experiment},
    results::{self, ResultsParams, Window},
    AppState, ExperimentId,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct TimeseriesParams {
    /// The conversion event, e.g. `purchase` (required).
    pub event_type: Option<String>,
    /// Only exposures and events of the last N days (1 to 3650).
    pub last_day: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VariantSeries {
    pub name: String,
    /// Users first exposed on each day.
    pub exposed_users: Vec<u64>,
    /// Users whose first conversion (first `event_type` event at or after their exposure)
    /// was on each day.
    pub converted_users: Vec<u64>,
    /// Exposed users up to and including each day; the last equals the results' `users`.
    pub cumulative_users: Vec<u64>,
    /// Converted users up to and including each day; the last equals the results'
    /// `converted_users`.
    pub cumulative_converted_users: Vec<u64>,
    /// `cumulative_converted_users / cumulative_users`; null before the first exposure.
    pub cumulative_conversion_rate: Vec<Option<f64>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Timeseries {
    pub experiment_id: i64,
    pub event_type: String,
    pub window: Window,
    /// Every UTC date of the window, `YYYY-MM-DD`, oldest first; each series has one
    /// number per day.
    pub days: Vec<String>,
    /// In the experiment's order; the first is the control.
    pub variants: Vec<VariantSeries>,
}

/// Per variant and day: first exposures and first conversions, as the query returns them.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct DayStats {
    pub variant: String,
    pub day: String,
    pub exposed_users: u64,
    pub converted_users: u64,
}

/// One pass: per user the earliest exposure (variant, time) and the first event of the
/// type at or after it (inside the window; a duplicate event cannot change a minimum); each user then counts once
/// on their exposure day and once on their conversion day. No per-user rows leave
/// ClickHouse. Written for ClickHouse 18.16 like `RESULTS_SQL`.
pub const TIMESERIES_SQL: &str = "
SELECT
    assigned_variant AS variant,
    toString(tupleElement(point, 1)) AS day,
    toUInt64(sum(tupleElement(point, 2))) AS exposed_users,
    toUInt64(sum(tupleElement(point, 3))) AS converted_users
FROM
(
    SELECT
        assigned_variant,
        arrayJoin(if(toUInt32(first_conversion) = 0,
            [(toDate(first_exposed), toUInt8(1), toUInt8(0))],
            [(toDate(first_exposed), toUInt8(1), toUInt8(0)), (toDate(first_conversion), toUInt8(0), toUInt8(1))]
        )) AS point
    FROM
    (
        SELECT user_id, argMin(variant, exposed_at) AS assigned_variant, min(exposed_at) AS first_exposed
        FROM exposures
        WHERE experiment_id = ? AND exposed_at >= toDateTime(?) AND exposed_at <= toDateTime(?)
        GROUP BY user_id
    )
    ANY LEFT JOIN
    (
        SELECT user_id, min(ts) AS first_conversion
        FROM
        (
            SELECT user_id, timestamp AS ts
            FROM events
            WHERE type = ? AND timestamp >= toDateTime(?) AND timestamp <= toDateTime(?)
        )
        ALL INNER JOIN
        (
            SELECT user_id, min(exposed_at) AS exposed_first
            FROM exposures
            WHERE experiment_id = ? AND exposed_at >= toDateTime(?) AND exposed_at <= toDateTime(?)
            GROUP BY user_id
        ) USING user_id
        WHERE ts >= exposed_first
        GROUP BY user_id
    ) USING user_id
)
GROUP BY assigned_variant, day";

/// Runs [`TIMESERIES_SQL`] with every parameter bound, never spliced.
pub async fn query_days(
    ch: &clickhouse::Client,
    experiment_id: i64,
    event_type: &str,
    from: u32,
    to: u32,
) -> Result<Vec<DayStats>, clickhouse::error::Error> {
    ch.query(TIMESERIES_SQL)
        .bind(experiment_id)
        .bind(from)
        .bind(to)
        .bind(event_type)
        .bind(from)
        .bind(to)
        .bind(experiment_id)
        .bind(from)
        .bind(to)
        .fetch_all::<DayStats>()
        .await
}

/// Daily exposures and conversions per variant, with cumulative conversion rates.
#[utoipa::path(get, path = "/experiments/{id}/timeseries", tag = "results", params(("id" = i64, Path), TimeseriesParams),
    responses((status = 200, body = Timeseries), (status = 400, body = ingest::error::ErrorBody), (status = 404, body = ingest::error::ErrorBody),
        (status = 503, body = ingest::error::ErrorBody)),
    security(("bearer" = [])))]
pub async fn timeseries(
    State(state): State<AppState>,
    id: ExperimentId,
    Query(params): Query<TimeseriesParams>,
) -> Result<Json<Timeseries>, ApiError> {
    // The same validation (and so the same 400s) as the results.
    let p = results::parse(ResultsParams {
        event_type: params.event_type,
        last_day: params.last_day,
        value_property: None,
        alpha: None,
        correction: None,
        cuped_days: None,
        target_lift: None,
    })?;
    let experiment = state.cache.get(&state.db, id.0).await?.ok_or_else(|| experiments::not_found(id.0))?;
    let window = results::window(&experiment, p.last_day);
    let rows = query_days(
        &state.clickhouse,
        experiment.id,
        &p.event_type,
        results::secs(window.from),
        results::secs(window.to),
    )
    .await
    .map_err(crate::clickhouse_error)?;
    Ok(Json(assemble(&experiment, p.event_type, window, rows)))
}

/// Lays the rows out on every day of the window, zeros where nothing happened; pure.
pub fn assemble(experiment: &Experiment, event_type: String, window: Window, rows: Vec<DayStats>) -> Timeseries {
    let first = window.from.date_naive();
    let last = window.to.date_naive().max(first);
    let days: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= last).collect();
    let index: HashMap<String, usize> = days.iter().enumerate().map(|(i, d)| (d.to_string(), i)).collect();
    let mut per_variant: HashMap<&str, (Vec<u64>, Vec<u64>)> =
        experiment.variants.iter().map(|v| (v.name.as_str(), (vec![0; days.len()], vec![0; days.len()]))).collect();
    for row in &rows {
        if let (Some(series), Some(&i)) = (per_variant.get_mut(row.variant.as_str()), index.get(&row.day)) {
            series.0[i] += row.exposed_users;
            series.1[i] += row.converted_users;
        }
    }
    let variants = experiment
        .variants
        .iter()
        .map(|v| {
            let (exposed_users, converted_users) = per_variant.remove(v.name.as_str()).unwrap_or_default();
            let cumulative = |xs: &[u64]| {
                xs.iter()
                    .scan(0u64, |total, x| {
                        *total += x;
                        Some(*total)
                    })
                    .collect::<Vec<u64>>()
            };
            let cumulative_users = cumulative(&exposed_users);
            let cumulative_converted_users = cumulative(&converted_users);
            let cumulative_conversion_rate = cumulative_users
                .iter()
                .zip(&cumulative_converted_users)
                .map(|(&n, &x)| (n > 0).then(|| x as f64 / n as f64))
                .collect();
            VariantSeries {
                name: v.name.clone(),
                exposed_users,
                converted_users,
                cumulative_users,
                cumulative_converted_users,
                cumulative_conversion_rate,
            }
        })
        .collect();
    Timeseries {
        experiment_id: experiment.id,
        event_type,
        window,
        days: days.iter().map(NaiveDate::to_string).collect(),
        variants,
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn every_day_of_the_window_has_a_number_and_cumulative_rates_add_up() {
        let experiment = Experiment::test(&[5000, 5000]);
        let window = Window {
            from: Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).single().expect("date"),
            to: Utc.with_ymd_and_hms(2026, 3, 4, 8, 0, 0).single().expect("date"),
        };
        let row = |variant: &str, day: &str, exposed, converted| DayStats {
            variant: variant.into(),
            day: day.into(),
            exposed_users: exposed,
            converted_users: converted,
        };
        let rows = vec![
            row("v0", "2026-03-01", 4, 0),
            row("v0", "2026-03-03", 0, 2),
            row("v1", "2026-03-02", 5, 1),
            row("gone", "2026-03-02", 9, 9),
        ];
        let t = assemble(&experiment, "purchase".into(), window, rows);
        assert_eq!(t.days, ["2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"]);
        assert_eq!(t.variants[0].exposed_users, [4, 0, 0, 0]);
        assert_eq!(t.variants[0].cumulative_converted_users, [0, 0, 2, 2]);
        assert_eq!(t.variants[0].cumulative_conversion_rate, [Some(0.0), Some(0.0), Some(0.5), Some(0.5)]);
        assert_eq!(t.variants[1].cumulative_users, [0, 5, 5, 5]);
        assert_eq!(t.variants[1].cumulative_conversion_rate, [None, Some(0.2), Some(0.2), Some(0.2)]);
    }
}
