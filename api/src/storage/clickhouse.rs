//! Every ClickHouse statement of the api. Each runs on ClickHouse 18.16 (the local stack)
//! and on current releases (checked by the tests on both): joined subqueries carry aliases
//! (the new analyzer requires them), joins are `ALL INNER` / `ANY LEFT ... USING`, no alias
//! shadows a column. Every parameter is bound (escaped by the client), never spliced.

use std::collections::HashMap;

use clickhouse::{query::Query, Client, Row};
use common::event::properties;
use serde::Deserialize;

use super::{trace, StorageError};

type Result<T> = std::result::Result<T, StorageError>;

/// Per-variant sufficient statistics of one metric, as [`RESULTS_SQL`] returns them.
/// `pre_*`: the same metric for the same users in the CUPED window before their exposure.
#[derive(Debug, Clone, Default, Row, Deserialize)]
pub struct VariantStats {
    pub variant: String,
    pub users: u64,
    pub converted_users: u64,
    pub events: u64,
    /// Sum over users of their events squared (the per-user event count's variance).
    pub events_sum_sq: f64,
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

/// The condition an exposure row meets to count, in every results statement (this raw
/// query, the rollup's seals and its tail): forced users' exposures (flagged at
/// assignment) never do.
macro_rules! counted_exposure {
    () => {
        "forced = 0"
    };
}
pub(crate) use counted_exposure;

/// An event's value for a value property, in every statement that reads one: the JSON
/// number at the property's pointer (`$ptr`, see `common::event::properties`), 0 when
/// there is none; rows stored before `clickhouse/007` (`props_v = 0`) by the old rule,
/// `visitParamExtractFloat` of the key (`$prop`, bound as a literal: the function needs a
/// constant), the first occurrence at any depth.
macro_rules! event_value {
    ($ptr:literal, $prop:literal) => {
        concat!(
            "if(props_v = 1, num_values[indexOf(num_keys, ",
            $ptr,
            ")], visitParamExtractFloat(properties, ",
            $prop,
            "))"
        )
    };
}
pub(crate) use event_value;

/// An event matches every filter of [`Refine::leaf_filters`] (bound at `$filters`): each
/// `pointer NUL text` is one of its leaves.
macro_rules! matches_filters {
    ($filters:literal) => {
        concat!(
            "hasAll(arrayMap((k, x) -> concat(k, '\\0', x), prop_keys, prop_values), CAST(",
            $filters,
            " AS Array(String)))"
        )
    };
}

/// The exposure rows of the results and time series statements, bound by [`exposed`]:
/// the experiment's, up to the window's end, counted, and of the segment (with `''` for the
/// attribute, everyone; else the users whose exposure carried attribute = value, or, for a
/// breakdown's `other` slice, a value none of `rest`). Each
/// statement keeps the users whose FIRST such exposure is in the window (a user first
/// exposed in an earlier phase is analysed there, though a later exposure row may exist
/// until the table merges it away).
macro_rules! exposed_where {
    () => {
        concat!(
            "WHERE experiment_id = ? AND exposed_at <= toDateTime(?) AND ",
            counted_exposure!(),
            " AND (? = '' OR if(? = 1, NOT has(CAST(? AS Array(String)), attribute_values[indexOf(attribute_keys, ?)]),
                attribute_values[indexOf(attribute_keys, ?)] = ?))"
        )
    };
}

/// Per exposed user of the window: variant, events counted (`n`) and their value sum
/// (`y0`), and the same before exposure for CUPED (`npre`, `x0`). Bound by
/// [`bind_users`].
macro_rules! users_sql {
    () => {
        concat!(
            "
    SELECT
        user_id,
        minIf(exposed_at, src = 0) AS fe,
        argMinIf(ex_variant, exposed_at, src = 0) AS variant,
        groupArrayIf(event_id, src = 1) AS ids,
        groupArrayIf(ts, src = 1) AS tss,
        groupArrayIf(v, src = 1) AS vs,
        arrayEnumerateUniq(ids) AS firsts,
        arrayMap(t -> t >= fe AND toUInt64(t) <= toUInt64(fe) + ?, tss) AS counted,
        arrayCount((c, f) -> f = 1 AND c, counted, firsts) AS n,
        arraySum(arrayMap((c, w, f) -> if(f = 1 AND c, w, 0.), counted, vs, firsts)) AS y0,
        arrayCount((t, f) -> f = 1 AND t < fe AND toUInt32(t) + ? >= toUInt32(fe), tss, firsts) AS npre,
        arraySum(arrayMap((t, w, f) -> if(f = 1 AND t < fe AND toUInt32(t) + ? >= toUInt32(fe), w, 0.), tss, vs, firsts)) AS x0
    FROM
    (
        SELECT toUInt8(0) AS src, user_id, exposed_at, variant AS ex_variant,
            toUUID('00000000-0000-0000-0000-000000000000') AS event_id, toDateTime(0) AS ts, 0. AS v
        FROM exposures
        ",
            exposed_where!(),
            "
        UNION ALL
        SELECT toUInt8(1) AS src, user_id, toDateTime(0) AS exposed_at, '' AS ex_variant, event_id,
            timestamp AS ts, ",
            event_value!("?", "?"),
            " AS v
        FROM events
        WHERE type = ? AND timestamp >= toDateTime(?) AND timestamp <= toDateTime(?)
          AND ",
            matches_filters!("?"),
            "
    ) AS rows
    GROUP BY user_id
    HAVING countIf(src = 0) > 0 AND fe >= toDateTime(?)
"
        )
    };
}

/// The raw-events query: the fallback when the rollup cannot answer (`storage::rollup`),
/// and the reference the rollup is tested against (`api/tests/rollup.rs`). The fastest
/// exact SQL on raw events measured on 18.16 (`bench/RESULTS.md`: about 2x the previous
/// `FINAL` + `JOIN` query at 10 M events): no JOIN and no FINAL. The experiment's exposure
/// rows and the type's event rows go through ONE `GROUP BY user_id`; per user the first
/// exposure (time and variant) comes from the exposure rows, the events are collected as
/// arrays and each event id counted once (`arrayEnumerateUniq`: copies of an event share
/// user, timestamp and properties, as `FINAL` assumed too), then split at the exposure:
/// events at or after it count, those in the `cuped_days` before it are the CUPED
/// covariate. Users without an exposure in the window are dropped by `HAVING`.
pub const RESULTS_SQL: &str = concat!(
    "
SELECT
    variant,
    toUInt64(count()) AS users,
    toUInt64(countIf(n > 0)) AS converted_users,
    toUInt64(sum(n)) AS events,
    toFloat64(sum(n * n)) AS events_sum_sq,
    toFloat64(sum(y)) AS value_sum,
    toFloat64(sum(y * y)) AS value_sum_sq,
    toUInt64(countIf(npre > 0)) AS pre_converted_users,
    toUInt64(countIf(npre > 0 AND n > 0)) AS converted_both,
    toFloat64(sum(x)) AS pre_value_sum,
    toFloat64(sum(x * x)) AS pre_value_sum_sq,
    toFloat64(sum(x * y)) AS value_pre_value
FROM
(
    SELECT variant, n, npre, if(? = 1, least(y0, ?), y0) AS y, if(? = 1, least(x0, ?), x0) AS x
    FROM
    (",
    users_sql!(),
    ") AS users
) AS capped
GROUP BY variant"
);

/// The pooled per-user value at a quantile (percentile capping of a catalog metric), over
/// the same users and events as [`RESULTS_SQL`] before capping.
pub const CAP_SQL: &str = concat!("SELECT toFloat64(quantileExact(?)(y0)) AS cap FROM (", users_sql!(), ") AS users");

/// What [`RESULTS_SQL`] is asked: times in Unix seconds.
#[derive(Debug, Clone, Default)]
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
    /// When not empty: instead of `segment`'s value, the users whose value of its attribute
    /// is none of these (a breakdown's `other`).
    pub rest: &'a [String],
    /// What a catalog metric adds (none for the `event_type` question).
    pub refine: Refine<'a>,
}

/// Binds the parameters of an exposure subquery ([`exposed_where`]): experiment, window,
/// segment.
fn exposed(query: Query, experiment_id: i64, to: u32, segment: (&str, &str), rest: &[String]) -> Query {
    let (attribute, value) = segment;
    query
        .bind(experiment_id)
        .bind(to)
        .bind(attribute)
        .bind(u8::from(!rest.is_empty()))
        .bind(rest)
        .bind(attribute)
        .bind(attribute)
        .bind(value)
}

pub async fn variant_stats(ch: &Client, q: &StatsQuery<'_>) -> Result<Vec<VariantStats>> {
    let cap = match q.refine.cap {
        None => None,
        Some(Cap::Absolute(c)) => Some(c),
        Some(Cap::Percentile(p)) => {
            let cap = trace::record(bind_users(ch.query(CAP_SQL).bind(p), q)).fetch_one::<f64>().await?;
            cap.is_finite().then_some(cap)
        }
    };
    let flag = u8::from(cap.is_some());
    let query = ch.query(RESULTS_SQL).bind(flag).bind(cap.unwrap_or(0.0)).bind(flag).bind(cap.unwrap_or(0.0));
    Ok(trace::record(bind_users(query, q)).fetch_all::<VariantStats>().await?)
}

/// Binds [`users_sql`]'s parameters.
fn bind_users(query: Query, q: &StatsQuery<'_>) -> Query {
    let (horizon, filters) = (q.refine.horizon(), q.refine.leaf_filters());
    let query = query.bind(horizon).bind(q.cuped_seconds).bind(q.cuped_seconds);
    exposed(query, q.experiment_id, q.to, q.segment, q.rest)
        .bind(properties::pointer(q.value_property))
        .bind(q.value_property)
        .bind(q.event_type)
        .bind(q.from.saturating_sub(q.cuped_seconds))
        .bind(q.to)
        .bind(filters)
        .bind(q.from)
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
        HAVING first_exposed >= toDateTime(?)
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
            HAVING exposed_first >= toDateTime(?)
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
    let query = exposed(ch.query(TIMESERIES_SQL), q.experiment_id, q.to, q.segment, &[])
        .bind(q.from)
        .bind(q.event_type)
        .bind(q.from)
        .bind(q.to);
    Ok(exposed(query, q.experiment_id, q.to, q.segment, &[]).bind(q.from).fetch_all::<DayStats>().await?)
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

mod quantile;
mod ratio;
mod refine;
mod slices;
pub use quantile::{quantile_stats, QuantileRow, QUANTILE_SQL};
pub use ratio::{ratio_stats, Part, RatioRow, RATIO_SQL};
pub use refine::{Cap, Refine};
pub use slices::{top_values, ValueCount, TOP_VALUES_SQL};
