//! Ratio metrics' statement: per user a numerator and a denominator, summed per variant
//! with their squares and products for the delta method.

use clickhouse::{Client, Row};
use common::event::properties;
use serde::Deserialize;

use super::{exposed, trace, Result, StatsQuery};
use crate::stats::RatioMoments;

/// A ratio metric per variant: users and, per user, the numerator `y` (events of one type,
/// a property's sum or their count) and the denominator `d` (the same of another type, or
/// of the same), summed with squares and products for the delta method. Each event id
/// counts once, at or after the user's first exposure, within the window.
pub const RATIO_SQL: &str = concat!(
    "
SELECT
    variant,
    toUInt64(count()) AS users,
    toFloat64(sum(y)) AS num_sum,
    toFloat64(sum(y * y)) AS num_sum_sq,
    toFloat64(sum(d)) AS den_sum,
    toFloat64(sum(d * d)) AS den_sum_sq,
    toFloat64(sum(y * d)) AS num_den
FROM
(
    SELECT
        user_id,
        minIf(exposed_at, src = 0) AS fe,
        argMinIf(ex_variant, exposed_at, src = 0) AS variant,
        groupArrayIf(event_id, src = 1) AS ids,
        groupArrayIf(ts, src = 1) AS tss,
        groupArrayIf(v, src = 1) AS vs,
        groupArrayIf(w, src = 1) AS ws,
        arrayEnumerateUniq(ids) AS firsts,
        arrayMap(t -> t >= fe AND toUInt64(t) <= toUInt64(fe) + ?, tss) AS counted,
        arraySum(arrayMap((c, x, f) -> if(f = 1 AND c, x, 0.), counted, vs, firsts)) AS y,
        arraySum(arrayMap((c, x, f) -> if(f = 1 AND c, x, 0.), counted, ws, firsts)) AS d
    FROM
    (
        SELECT toUInt8(0) AS src, user_id, exposed_at, variant AS ex_variant,
            toUUID('00000000-0000-0000-0000-000000000000') AS event_id, toDateTime(0) AS ts, 0. AS v, 0. AS w
        FROM exposures
        ",
    exposed_where!(),
    "
        UNION ALL
        SELECT toUInt8(1) AS src, user_id, toDateTime(0) AS exposed_at, '' AS ex_variant, event_id, timestamp AS ts,
            if(type = ?, if(? = 1, 1., ",
    event_value!("?", "?"),
    "), 0.) AS v,
            if(type = ?, if(? = 1, 1., ",
    event_value!("?", "?"),
    "), 0.) AS w
        FROM events
        WHERE type IN (?, ?) AND timestamp >= toDateTime(?) AND timestamp <= toDateTime(?)
          AND ",
    matches_filters!("?"),
    "
    ) AS rows
    GROUP BY user_id
    HAVING countIf(src = 0) > 0 AND fe >= toDateTime(?)
) AS users
GROUP BY variant"
);

/// Per-variant sums of a ratio metric, as [`RATIO_SQL`] returns them.
#[derive(Debug, Clone, Default, Row, Deserialize)]
pub struct RatioRow {
    pub variant: String,
    pub users: u64,
    pub num_sum: f64,
    pub num_sum_sq: f64,
    pub den_sum: f64,
    pub den_sum_sq: f64,
    pub num_den: f64,
}

impl RatioRow {
    pub fn moments(&self) -> RatioMoments {
        let Self { variant: _, users, num_sum, num_sum_sq, den_sum, den_sum_sq, num_den } = *self;
        RatioMoments { n: users, num_sum, num_sum_sq, den_sum, den_sum_sq, num_den }
    }
}

/// One side of a ratio: an event type and the property summed (`None`: events counted).
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    pub event_type: &'a str,
    pub value_property: Option<&'a str>,
}

/// A ratio metric's sums per variant over the window of `q` (its event type and value
/// property are ignored: `numerator` and `denominator` say what is summed).
pub async fn ratio_stats(
    ch: &Client,
    q: &StatsQuery<'_>,
    numerator: Part<'_>,
    denominator: Part<'_>,
) -> Result<Vec<RatioRow>> {
    let horizon = q.refine.horizon();
    let filters = q.refine.leaf_filters();
    let mut query = exposed(ch.query(RATIO_SQL).bind(horizon), q.experiment_id, q.to, q.segment, q.rest);
    for part in [numerator, denominator] {
        let property = part.value_property.unwrap_or("");
        query = query
            .bind(part.event_type)
            .bind(u8::from(part.value_property.is_none()))
            .bind(properties::pointer(property))
            .bind(property);
    }
    let query = query
        .bind(numerator.event_type)
        .bind(denominator.event_type)
        .bind(q.from)
        .bind(q.to)
        .bind(filters)
        .bind(q.from);
    Ok(trace::record(query).fetch_all::<RatioRow>().await?)
}
