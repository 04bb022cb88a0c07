//! The results of an experiment's metric from the rollup sealed up to `SL` plus the
//! unsealed tail: the same columns and meaning as the raw query
//! ([`crate::storage::clickhouse::RESULTS_SQL`]), for a window that starts at or before the
//! experiment's first exposure and ends after `SL` (the dispatch checks both).
//!
//! Part 1 sums every rollup row with its sign: the sum over the users' sealed states, no
//! per-user GROUP BY. Part 2 regroups only the users the tail touches: users with events
//! first available at or after `SL` (each event once, less those already sealed: late
//! copies) and users with an exposure inserted after `SL`; for each it emits +(state with
//! the tail) and -(sealed state). A user whose first exposure is new (or earlier than the
//! sealed one) has their state rebuilt from the sealed history and the tail. The tail is
//! read up to `Q` (the server's clock when the state was read: rows inserted while the
//! query runs do not count). A seal committed after `SL` was read makes the query fail
//! (`throwIf`, code 395) and the caller retries. The `throwIf` repeats the row's filter:
//! ClickHouse evaluates it on every row of the blocks read, other metrics' and
//! experiments' too (`AND` does not short-circuit across a block), and those are sealed
//! at their own pace (measured: without it, results fell back to raw while another metric
//! was mid-round).

use clickhouse::Client;
use common::event::properties;

use super::{counted_exposure, event_value, named, Arg, Result};
use crate::storage::clickhouse::{StatsQuery, VariantStats};
use crate::storage::StorageError;

/// Users with events first available in the tail.
macro_rules! tail_event_users {
    () => {
        "SELECT user_id FROM events_recent WHERE type = {TYPE} AND inserted_at >= toDateTime({SLK})
           AND inserted_at < toDateTime({Q}) AND greatest(inserted_at, timestamp) >= toDateTime({SL})"
    };
}

/// Users with an exposure row inserted in the tail.
macro_rules! tail_exposed_users {
    () => {
        "SELECT user_id FROM exposures_recent WHERE experiment_id = {E} AND inserted_at >= toDateTime({SL})
           AND inserted_at < toDateTime({Q})"
    };
}

/// Copies inserted in the tail of events that happened before SL (late events, replays).
macro_rules! late_copies {
    () => {
        "FROM events_recent WHERE type = {TYPE} AND inserted_at >= toDateTime({SL}) AND inserted_at < toDateTime({Q})
           AND timestamp < toDateTime({SL})"
    };
}

pub const ROLLUP_RESULTS_SQL: &str = concat!(
    "
SELECT
    variant,
    toInt64(sum(s)) AS users,
    toInt64(sum(s * (n > 0))) AS converted_users,
    toInt64(sum(s * n)) AS events,
    toFloat64(sum(s * n * n)) AS events_sum_sq,
    sum(s * y) AS value_sum,
    sum(s * y * y) AS value_sum_sq,
    toInt64(sum(s * (npre > 0))) AS pre_converted_users,
    toInt64(sum(s * (npre > 0 AND n > 0))) AS converted_both,
    sum(s * x) AS pre_value_sum,
    sum(s * x * x) AS pre_value_sum_sq,
    sum(s * x * y) AS value_pre_value
FROM
(
    SELECT sign AS s, user_id, variant, fe, n, y,
        arraySum(arrayMap((bb, kk) -> if(bb < {CD}, kk, 0), pre_b, pre_n)) AS npre,
        arraySum(arrayMap((bb, xx) -> if(bb < {CD}, xx, 0.), pre_b, pre_x)) AS x
    FROM rollup
    WHERE throwIf(ver > {SL} AND experiment_id = {E} AND event_type = {TYPE} AND value_property = {PROP}) = 0
              AND experiment_id = {E} AND event_type = {TYPE} AND value_property = {PROP}
    UNION ALL
    SELECT tupleElement(r, 1) AS s, user_id, tupleElement(r, 2) AS variant, tupleElement(r, 3) AS fe,
        tupleElement(r, 4) AS n, tupleElement(r, 5) AS y, tupleElement(r, 6) AS npre, tupleElement(r, 7) AS x
    FROM
    (
        SELECT
            user_id,
            countIf(src = 0 AND sign = 1) > 0 AS had,
            argMaxIf(fe, ver, src = 0 AND sign = 1) AS o_fe,
            argMaxIf(variant, ver, src = 0 AND sign = 1) AS o_var,
            argMaxIf(n, ver, src = 0 AND sign = 1) AS o_n,
            argMaxIf(y, ver, src = 0 AND sign = 1) AS o_y,
            argMaxIf(pre_b, ver, src = 0 AND sign = 1) AS o_b,
            argMaxIf(pre_n, ver, src = 0 AND sign = 1) AS o_k,
            argMaxIf(pre_x, ver, src = 0 AND sign = 1) AS o_x,
            arraySum(arrayMap((bb, kk) -> if(bb < {CD}, kk, 0), o_b, o_k)) AS o_npre,
            arraySum(arrayMap((bb, xx) -> if(bb < {CD}, xx, 0.), o_b, o_x)) AS o_xs,
            countIf(src = 2) > 0 AS cand,
            minIf(fe, src = 2) AS c_fe,
            argMinIf(variant, fe, src = 2) AS c_var,
            cand AND (NOT had OR c_fe < o_fe) AS reset,
            if(reset, c_fe, o_fe) AS ufe,
            if(reset, c_var, o_var) AS uvar,
            groupArrayIf(ts, src = 1) AS t1,
            groupArrayIf(v, src = 1) AS v1,
            groupArrayIf(ts, src = 2 AND h = 1) AS t2,
            groupArrayIf(v, src = 2 AND h = 1) AS v2,
            if(reset, arrayConcat(t1, t2), t1) AS tss,
            if(reset, arrayConcat(v1, v2), v1) AS vs,
            if(reset, 0, o_n) + arrayCount(t -> t >= ufe AND t <= toDateTime({TO}), tss) AS nn,
            if(reset, 0., o_y) + arraySum(arrayMap((t, w) -> if(t >= ufe AND t <= toDateTime({TO}), w, 0.), tss, vs)) AS ny,
            if(reset, 0, o_npre) + arrayCount(t -> t < ufe AND toUInt32(t) + {CS} >= toUInt32(ufe), tss) AS nnpre,
            if(reset, 0., o_xs)
                + arraySum(arrayMap((t, w) -> if(t < ufe AND toUInt32(t) + {CS} >= toUInt32(ufe), w, 0.), tss, vs)) AS nx,
            arrayJoin(arrayFilter(q -> tupleElement(q, 1) != 0, [
                (toInt8(if(had OR reset, 1, 0)), uvar, ufe, toInt64(nn), ny, toInt64(nnpre), nx),
                (toInt8(if(had, -1, 0)), o_var, o_fe, toInt64(o_n), o_y, toInt64(o_npre), o_xs)])) AS r
        FROM
        (
            SELECT 0 AS src, user_id, ver, sign, fe, variant, n, y, pre_b, pre_n, pre_x,
                toDateTime(0) AS ts, 0. AS v, toUInt8(0) AS h
            FROM rollup
            WHERE throwIf(ver > {SL} AND experiment_id = {E} AND event_type = {TYPE} AND value_property = {PROP}) = 0
              AND experiment_id = {E} AND event_type = {TYPE} AND value_property = {PROP}
              AND (user_id IN (",
    tail_event_users!(),
    ") OR user_id IN (",
    tail_exposed_users!(),
    "))
            UNION ALL
            SELECT 1 AS src, user_id, toUInt32(0) AS ver, toInt8(0) AS sign, toDateTime(0) AS fe, '' AS variant,
                toInt64(0) AS n, 0. AS y, emptyArrayUInt16() AS pre_b, emptyArrayInt64() AS pre_n,
                emptyArrayFloat64() AS pre_x, ts, v, toUInt8(0) AS h
            FROM
            (
                SELECT user_id, event_id, argMin(timestamp, inserted_at) AS ts,
                    argMin(",
    event_value!("{PTR}", "{PROP}"),
    ", inserted_at) AS v
                FROM events_recent
                WHERE type = {TYPE} AND inserted_at >= toDateTime({SLK}) AND inserted_at < toDateTime({Q})
                  AND greatest(inserted_at, timestamp) >= toDateTime({SL}) AND user_id != ''
                GROUP BY user_id, event_id
            ) AS te
            WHERE (user_id, ts, event_id) NOT IN
            (
                SELECT user_id, ts, event_id FROM
                (
                    SELECT user_id, ts, event_id FROM metric_log
                    PREWHERE user_id IN (SELECT user_id ",
    late_copies!(),
    ")
                    WHERE event_type = {TYPE} AND value_property = {PROP} AND sealed <= toDateTime({SL})
                ) AS ml
                WHERE (user_id, ts, event_id) IN (SELECT user_id, timestamp, event_id ",
    late_copies!(),
    ")
            )
            UNION ALL
            SELECT 2 AS src, user_id, toUInt32(0) AS ver, toInt8(0) AS sign, fe_c AS fe, var_c AS variant,
                toInt64(0) AS n, 0. AS y, emptyArrayUInt16() AS pre_b, emptyArrayInt64() AS pre_n,
                emptyArrayFloat64() AS pre_x, ts, v, h
            FROM
            (
                SELECT user_id, min(exposed_at) AS fe_c, argMin(variant, exposed_at) AS var_c FROM exposures
                WHERE experiment_id = {E} AND inserted_at < toDateTime({Q}) AND ",
    counted_exposure!(),
    "
                  AND user_id IN (",
    tail_exposed_users!(),
    ")
                GROUP BY user_id
            ) AS cx ALL LEFT JOIN
            (
                SELECT user_id, ts, v, toUInt8(1) AS h FROM metric_log
                WHERE event_type = {TYPE} AND value_property = {PROP} AND sealed <= toDateTime({SL})
                  AND user_id IN (",
    tail_exposed_users!(),
    ")
            ) AS hist USING user_id
        ) AS u
        GROUP BY user_id
    ) AS tail
)
WHERE variant != '' AND fe >= toDateTime({FROM}) AND fe <= toDateTime({TO})
GROUP BY variant
HAVING sum(s) > 0"
);

/// The rollup's answer to `q`, sealed up to `sealed_to`, the tail read up to `now` (the
/// server's clock); `k` is the future bound K in seconds.
pub async fn variant_stats(
    ch: &Client,
    q: &StatsQuery<'_>,
    sealed_to: u32,
    now: u32,
    k: u32,
) -> Result<Vec<VariantStats>> {
    let pointer = properties::pointer(q.value_property);
    let args = [
        ("E", Arg::U64(u64::try_from(q.experiment_id).unwrap_or_default())),
        ("TYPE", Arg::Str(q.event_type)),
        ("PROP", Arg::Str(q.value_property)),
        ("PTR", Arg::Str(&pointer)),
        ("SL", Arg::U32(sealed_to)),
        ("SLK", Arg::U32(sealed_to.saturating_sub(k))),
        ("Q", Arg::U32(now)),
        ("FROM", Arg::U32(q.from)),
        ("TO", Arg::U32(q.to)),
        ("CD", Arg::U32(q.cuped_seconds / 86_400)),
        ("CS", Arg::U32(q.cuped_seconds)),
    ];
    let rows = named(ch, ROLLUP_RESULTS_SQL, &args)?.fetch_all::<SignedStats>().await?;
    rows.into_iter().map(VariantStats::try_from).collect()
}

/// A variant's row as the signed sums give it: a count below 0 means a sealed state's
/// +1/-1 pair is broken (read unsigned it would wrap to ~1.8e19).
#[derive(Debug, Clone, Default, clickhouse::Row, serde::Deserialize)]
pub struct SignedStats {
    pub variant: String,
    pub users: i64,
    pub converted_users: i64,
    pub events: i64,
    pub events_sum_sq: f64,
    pub value_sum: f64,
    pub value_sum_sq: f64,
    pub pre_converted_users: i64,
    pub converted_both: i64,
    pub pre_value_sum: f64,
    pub pre_value_sum_sq: f64,
    pub value_pre_value: f64,
}

impl TryFrom<SignedStats> for VariantStats {
    type Error = StorageError;

    fn try_from(s: SignedStats) -> Result<Self> {
        let count = |name: &str, n: i64| {
            u64::try_from(n).map_err(|_| {
                StorageError::Inconsistent(format!("the rollup's {name} of variant `{}` sums to {n}", s.variant))
            })
        };
        Ok(VariantStats {
            users: count("users", s.users)?,
            converted_users: count("converted users", s.converted_users)?,
            events: count("events", s.events)?,
            events_sum_sq: s.events_sum_sq,
            pre_converted_users: count("pre-exposure converted users", s.pre_converted_users)?,
            converted_both: count("users converted in both periods", s.converted_both)?,
            value_sum: s.value_sum,
            value_sum_sq: s.value_sum_sq,
            pre_value_sum: s.pre_value_sum,
            pre_value_sum_sq: s.pre_value_sum_sq,
            value_pre_value: s.value_pre_value,
            variant: s.variant,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_signed_count_is_inconsistent() {
        let ok = SignedStats { variant: "a".into(), users: 3, converted_users: 1, events: 2, ..Default::default() };
        let stats = VariantStats::try_from(ok.clone()).expect("consistent");
        assert_eq!((stats.users, stats.converted_users, stats.events), (3, 1, 2));
        let broken = SignedStats { converted_both: -1, ..ok };
        match VariantStats::try_from(broken) {
            Err(StorageError::Inconsistent(m)) => assert!(m.contains("variant `a`") && m.contains("-1"), "{m}"),
            other => panic!("a negative count must not read as a number: {other:?}"),
        }
    }
}
