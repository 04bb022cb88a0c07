//! Every ClickHouse statement of the api. Each runs on ClickHouse 18.16 (the local stack)
//! and on current releases (checked by the tests on both): joined subqueries carry aliases
//! (the new analyzer requires them), joins are `ALL INNER` / `ANY LEFT ... USING`, no alias
//! shadows a column. Every parameter is bound (escaped by the client), never spliced.

use std::collections::HashMap;

use clickhouse::{query::Query, Client, Row};
use serde::Deserialize;

use super::StorageError;

type Result<T> = std::result::Result<T, StorageError>;

/// Per-variant sufficient statistics of one metric, as [`RESULTS_SQL`] returns them.
/// `pre_*`: the same metric for the same users in the CUPED window before their exposure.
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
/// every event id). Per user, events at or after the exposure count, those in the
/// `cuped_days` before it are the CUPED covariate. Users per variant come from the
/// exposures alone, the event sums from users with events, and the two are added up by
/// variant: no per-user rows leave ClickHouse and no join of all exposed users with their
/// events is needed.
/// The condition an exposure row meets to count, in every results statement: forced
/// users' exposures (flagged at assignment) never do.
macro_rules! counted_exposure {
    () => {
        "forced = 0"
    };
}

/// The exposure rows of the results and time series statements, bound by [`exposed`]:
/// the experiment's, in the window, counted, and of the segment (with `''` for the
/// attribute, everyone; else the users whose exposure carried attribute = value).
macro_rules! exposed_where {
    () => {
        concat!(
            "WHERE experiment_id = ? AND exposed_at >= toDateTime(?) AND exposed_at <= toDateTime(?) AND ",
            counted_exposure!(),
            " AND (? = '' OR attribute_values[indexOf(attribute_keys, ?)] = ?)"
        )
    };
}

pub const RESULTS_SQL: &str = concat!(
    "
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
        ",
    exposed_where!(),
    "
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
        ) AS ev
        ALL INNER JOIN
        (
            SELECT user_id, min(exposed_at) AS first_exposed, argMin(variant, exposed_at) AS assigned_variant
            FROM exposures
            ",
    exposed_where!(),
    "
            GROUP BY user_id
        ) AS ex USING user_id
        WHERE ts >= first_exposed - ?
        GROUP BY user_id
    )
    GROUP BY assigned_variant
)
GROUP BY variant"
);

/// What [`RESULTS_SQL`] is asked: times in Unix seconds.
pub struct StatsQuery<'a> {
    pub experiment_id: i64,
    pub event_type: &'a str,
    /// The numeric property summed per user; `""` for none (every value is then 0).
    pub value_property: &'a str,
    pub from: u32,
    pub to: u32,
    /// Length of the CUPED pre-exposure window.
    pub cuped_seconds: u32,
    /// `(attribute, value)`: only that segment's users; `("", "")` for everyone.
    pub segment: (&'a str, &'a str),
}

/// Binds the parameters of an exposure subquery ([`exposed_where`]): experiment, window,
/// segment.
fn exposed(query: Query, experiment_id: i64, from: u32, to: u32, segment: (&str, &str)) -> Query {
    query.bind(experiment_id).bind(from).bind(to).bind(segment.0).bind(segment.0).bind(segment.1)
}

pub async fn variant_stats(ch: &Client, q: &StatsQuery<'_>) -> Result<Vec<VariantStats>> {
    let query = exposed(ch.query(RESULTS_SQL), q.experiment_id, q.from, q.to, q.segment)
        .bind(q.value_property)
        .bind(q.event_type)
        .bind(q.from.saturating_sub(q.cuped_seconds))
        .bind(q.to);
    Ok(exposed(query, q.experiment_id, q.from, q.to, q.segment)
        .bind(q.cuped_seconds)
        .fetch_all::<VariantStats>()
        .await?)
}

/// Per variant and day: first exposures and first conversions, as [`TIMESERIES_SQL`]
/// returns them.
#[derive(Debug, Clone, Row, Deserialize)]
pub struct DayStats {
    pub variant: String,
    pub day: String,
    pub exposed_users: u64,
    pub converted_users: u64,
}

/// One pass: per user the earliest exposure (variant, time) and the first event of the
/// type at or after it (inside the window; a duplicate event cannot change a minimum);
/// each user then counts once on their exposure day and once on their conversion day.
pub const TIMESERIES_SQL: &str = concat!(
    "
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
        ",
    exposed_where!(),
    "
        GROUP BY user_id
    ) AS exposed
    ANY LEFT JOIN
    (
        SELECT user_id, min(ts) AS first_conversion
        FROM
        (
            SELECT user_id, timestamp AS ts
            FROM events
            WHERE type = ? AND timestamp >= toDateTime(?) AND timestamp <= toDateTime(?)
        ) AS ev
        ALL INNER JOIN
        (
            SELECT user_id, min(exposed_at) AS exposed_first
            FROM exposures
            ",
    exposed_where!(),
    "
            GROUP BY user_id
        ) AS ex USING user_id
        WHERE ts >= exposed_first
        GROUP BY user_id
    ) AS conv USING user_id
)
GROUP BY assigned_variant, day"
);

/// What [`TIMESERIES_SQL`] is asked: times in Unix seconds.
pub struct DaysQuery<'a> {
    pub experiment_id: i64,
    pub event_type: &'a str,
    pub from: u32,
    pub to: u32,
    /// `(attribute, value)`: only that segment's users; `("", "")` for everyone.
    pub segment: (&'a str, &'a str),
}

pub async fn day_stats(ch: &Client, q: &DaysQuery<'_>) -> Result<Vec<DayStats>> {
    let query = exposed(ch.query(TIMESERIES_SQL), q.experiment_id, q.from, q.to, q.segment)
        .bind(q.event_type)
        .bind(q.from)
        .bind(q.to);
    Ok(exposed(query, q.experiment_id, q.from, q.to, q.segment).fetch_all::<DayStats>().await?)
}

#[derive(Debug, Row, Deserialize)]
pub struct TypeCount {
    pub event_type: String,
    pub events: u64,
}

/// The 100 most frequent event types received in `from..=to` (two columns, the window's
/// partitions only).
pub async fn event_types(ch: &Client, from: u32, to: u32) -> Result<Vec<TypeCount>> {
    Ok(ch
        .query(
            "SELECT type AS event_type, toUInt64(count()) AS events FROM events
             WHERE timestamp >= toDateTime(?) AND timestamp <= toDateTime(?)
             GROUP BY type ORDER BY events DESC, event_type LIMIT 100",
        )
        .bind(from)
        .bind(to)
        .fetch_all::<TypeCount>()
        .await?)
}

#[derive(Row, Deserialize)]
struct ExposedUsers {
    experiment_id: u64,
    users: u64,
}

/// Distinct exposed users of the experiments with ids in `first..=last` (a page is a
/// contiguous id range, so this reads only those experiments' part of the primary key).
pub async fn exposed_users(ch: &Client, first: i64, last: i64) -> Result<HashMap<i64, u64>> {
    let rows = ch
        .query(concat!(
            "SELECT experiment_id, toUInt64(uniqExact(user_id)) AS users FROM exposures
                 WHERE experiment_id >= ? AND experiment_id <= ? AND ",
            counted_exposure!(),
            " GROUP BY experiment_id"
        ))
        .bind(first)
        .bind(last)
        .fetch_all::<ExposedUsers>()
        .await?;
    Ok(rows.into_iter().map(|r| (r.experiment_id as i64, r.users)).collect())
}

/// Readiness: does ClickHouse answer `SELECT 1`?
pub async fn ping(ch: &Client) -> bool {
    common::clickhouse::ping(ch).await
}
