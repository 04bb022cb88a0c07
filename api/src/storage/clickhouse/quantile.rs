//! Quantile metrics' statement: per variant, a quantile of a numeric property over the
//! counted events of exposed users, with its distribution-free (order statistic) interval.

use clickhouse::{Client, Row};
use common::event::properties;
use serde::Deserialize;

use super::{exposed, trace, Result, StatsQuery};

/// Per variant: `n` valued events (each event id once, at or after the user's first
/// exposure, within the window; events without a number at the property left out), the
/// value at rank `ceil(n·q)` of the sorted values, and the values at the ranks
/// `floor(n·q − z·√(n·q·(1−q)))` and `ceil(n·q + z·√(n·q·(1−q))) + 1` (clamped to 1..n).
pub const QUANTILE_SQL: &str = concat!(
    "
SELECT
    variant,
    toUInt64(length(sorted)) AS n,
    sorted[toUInt64(greatest(1., ceil(length(sorted) * {Q})))] AS value,
    sorted[toUInt64(greatest(1., floor(length(sorted) * {Q} - {Z} * sqrt(length(sorted) * {Q} * (1 - {Q})))))] AS lo,
    sorted[toUInt64(least(toFloat64(length(sorted)), ceil(length(sorted) * {Q} + {Z} * sqrt(length(sorted) * {Q} * (1 - {Q}))) + 1))] AS hi
FROM
(
    SELECT variant, arraySort(groupArray(w)) AS sorted
    FROM
    (
        SELECT
            argMinIf(ex_variant, exposed_at, src = 0) AS variant,
            minIf(exposed_at, src = 0) AS fe,
            groupArrayIf(event_id, src = 1) AS ids,
            groupArrayIf(ts, src = 1) AS tss,
            groupArrayIf(v, src = 1) AS vs,
            arrayEnumerateUniq(ids) AS firsts,
            arrayFilter((x, t, f) -> f = 1 AND t >= fe AND toUInt64(t) <= toUInt64(fe) + {H} AND NOT isNaN(x), vs, tss, firsts) AS kept
        FROM
        (
            SELECT toUInt8(0) AS src, user_id, exposed_at, variant AS ex_variant,
                toUUID('00000000-0000-0000-0000-000000000000') AS event_id, toDateTime(0) AS ts, 0. AS v
            FROM exposures
            ",
    exposed_where!(),
    "
            UNION ALL
            SELECT toUInt8(1) AS src, user_id, toDateTime(0) AS exposed_at, '' AS ex_variant, event_id, timestamp AS ts,
                if(props_v = 1, if(indexOf(num_keys, {PTR}) > 0, num_values[indexOf(num_keys, {PTR})], nan),
                   if(visitParamHas(properties, {PROP}), visitParamExtractFloat(properties, {PROP}), nan)) AS v
            FROM events
            WHERE type = {TYPE} AND timestamp >= toDateTime({FROM}) AND timestamp <= toDateTime({TO})
              AND ",
    matches_filters!("{FILTERS}"),
    "
        ) AS rows
        GROUP BY user_id
        HAVING countIf(src = 0) > 0 AND fe >= toDateTime({FROM})
    ) AS users
    ARRAY JOIN kept AS w
    GROUP BY variant
) AS per_variant"
);

#[derive(Debug, Clone, Default, Row, Deserialize)]
pub struct QuantileRow {
    pub variant: String,
    pub n: u64,
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// The quantile `level` of `q.value_property` per variant, with intervals at `z`.
pub async fn quantile_stats(ch: &Client, q: &StatsQuery<'_>, level: f64, z: f64) -> Result<Vec<QuantileRow>> {
    let filters = q.refine.leaf_filters();
    let horizon = q.refine.horizon();
    let sql = QUANTILE_SQL
        .replace("{Q}", &format!("{level:?}"))
        .replace("{Z}", &format!("{z:?}"))
        .replace("{H}", &horizon.to_string());
    // the exposure rows' placeholders come first, then the events'
    let (before, after) = sql.split_once("UNION ALL").unwrap_or((&sql, ""));
    let text = format!(
        "{before}UNION ALL{}",
        after
            .replace("{PTR}", "?")
            .replace("{PROP}", "?")
            .replace("{TYPE}", "?")
            .replace("{FROM}", "?")
            .replace("{TO}", "?")
            .replace("{FILTERS}", "?")
    );
    let pointer = properties::pointer(q.value_property);
    let query = exposed(ch.query(&text), q.experiment_id, q.to, q.segment, q.rest)
        .bind(&pointer)
        .bind(&pointer)
        .bind(q.value_property)
        .bind(q.value_property)
        .bind(q.event_type)
        .bind(q.from)
        .bind(q.to)
        .bind(filters)
        .bind(q.from);
    Ok(trace::record(query).fetch_all::<QuantileRow>().await?)
}
