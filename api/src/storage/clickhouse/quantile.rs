//! Quantile metrics' statement: per variant, a quantile of a numeric property over the
//! counted events of exposed users, and the sorted values around it, from which
//! `stats::quantile::ranks` reads its distribution-free (order statistic) interval.

use clickhouse::{Client, Row};
use common::event::properties;
use serde::Deserialize;

use super::{exposed, trace, Result, StatsQuery};
use crate::{stats::quantile, storage::StorageError};

/// Per variant: `n` valued events (each event id once, at or after the user's first
/// exposure, within the window; events without a number at the property left out), the
/// value at rank `ceil(n·q)` of the sorted values, a rank `first_rank` and the sorted values
/// `around` the quantile from it (`stats::quantile::window`: ranks `floor(n·q − t) − 3` to
/// `ceil(n·q + t) + 4`, clamped to 1..n, `t = L/3 + √(L²/9 + 2·L·n·q·(1−q))` with
/// `{L} = ln(2/α)`), which hold every rank the exact interval can take. ClickHouse has no
/// binomial quantile function (18.16 none at all) and only the statement knows `n`, so the
/// interval's ranks are chosen in Rust ([`QuantileWindow::read`]).
pub const QUANTILE_SQL: &str = concat!(
    "
SELECT
    variant,
    toUInt64(length(sorted)) AS n,
    sorted[toUInt64(greatest(1., ceil(length(sorted) * {Q})))] AS value,
    toUInt64(greatest(1., floor(length(sorted) * {Q} - ({L} / 3 + sqrt({L} * {L} / 9 + 2 * {L} * length(sorted) * {Q} * (1 - {Q})))) - 3)) AS first_rank,
    arraySlice(sorted, first_rank,
        toUInt64(least(toFloat64(length(sorted)), ceil(length(sorted) * {Q} + ({L} / 3 + sqrt({L} * {L} / 9 + 2 * {L} * length(sorted) * {Q} * (1 - {Q})))) + 4)) - first_rank + 1) AS around
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

/// One variant's quantile with the ends of its interval at the exact ranks.
#[derive(Debug, Clone, Default)]
pub struct QuantileRow {
    pub variant: String,
    pub n: u64,
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// What the statement returns: the sorted values `around` the quantile, from rank `first`.
#[derive(Debug, Row, Deserialize)]
struct QuantileWindow {
    variant: String,
    n: u64,
    value: f64,
    first: u64,
    around: Vec<f64>,
}

impl QuantileWindow {
    /// The interval's ends at [`quantile::ranks`] for `level` and `alpha`, read from the window.
    fn read(self, level: f64, alpha: f64) -> Result<QuantileRow> {
        let [_, lo, hi] = quantile::ranks(self.n, level, alpha).unwrap_or([1; 3]);
        let at = |rank: u64| {
            rank.checked_sub(self.first).and_then(|i| self.around.get(i as usize)).copied().ok_or_else(|| {
                let (first, len) = (self.first, self.around.len());
                StorageError::Inconsistent(format!("quantile rank {rank} of {} outside {first}+{len}", self.n))
            })
        };
        Ok(QuantileRow { lo: at(lo)?, hi: at(hi)?, variant: self.variant, n: self.n, value: self.value })
    }
}

/// The quantile `level` of `q.value_property` per variant, with intervals at level
/// `1 − alpha`.
pub async fn quantile_stats(ch: &Client, q: &StatsQuery<'_>, level: f64, alpha: f64) -> Result<Vec<QuantileRow>> {
    let filters = q.refine.leaf_filters();
    let horizon = q.refine.horizon();
    let sql = QUANTILE_SQL
        .replace("{Q}", &format!("{level:?}"))
        .replace("{L}", &format!("{:?}", (2.0 / alpha).ln()))
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
    let rows = trace::record(query).fetch_all::<QuantileWindow>().await?;
    rows.into_iter().map(|r| r.read(level, alpha)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window the statement returns is read at the exact ranks; a rank outside it is
    /// an error, not a panic.
    #[test]
    fn the_interval_is_read_from_the_window_at_the_exact_ranks() {
        let (n, level, alpha) = (1000u64, 0.9, 0.05);
        let [first, last] = quantile::window(n, level, alpha);
        let around: Vec<f64> = (first..=last).map(|r| r as f64).collect();
        let w = |first, around| QuantileWindow { variant: "a".into(), n, value: 900.0, first, around };
        let row = w(first, around.clone()).read(level, alpha).expect("inside");
        assert_eq!((row.n, row.value, row.lo, row.hi), (1000, 900.0, 882.0, 919.0));
        let err = w(first + 30, around).read(level, alpha).expect_err("outside");
        assert!(err.to_string().contains("quantile rank 882"), "{err}");
    }
}
