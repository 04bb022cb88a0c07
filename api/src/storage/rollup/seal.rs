//! The seals: level 1 (a metric's events of `[S0, S1)` into `metric_log`) and level 2 (an
//! experiment's user states in `rollup`), and level 2's bootstrap for an experiment whose
//! metric is already sealed. Level 1 leaves the interval's events in the temporary table
//! `iv` of its session; each experiment's level 2 of the same interval reads it there.
//! Every INSERT is one part with its marker: all or nothing, and the caller re-runs a seal
//! whose marker is missing. The statements follow the measured prototype
//! (`notes/rollup/sql/30`, `31`), each explained where it is.

use std::time::Duration;

use clickhouse::Client;

use common::event::properties;

use super::{counted_exposure, event_value, named, Arg, Result};

/// One block, one part: the interval's rows and its marker commit together.
const ONE_PART: &str =
    "SETTINGS min_insert_block_size_rows = 1000000000000, min_insert_block_size_bytes = 1000000000000000";

/// A metric: an event type and the numeric property summed per user (`""` for none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric<'a> {
    pub event_type: &'a str,
    pub value_property: &'a str,
}

/// Where level 1 reads the interval's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSource {
    /// `events_recent`, in insertion order: the interval's rows only. Valid when it holds
    /// every row inserted since `S0 - K` (`recent_floor`).
    Recent,
    /// `events FINAL` (the first copy of each event), every row of the type before `S1`:
    /// for intervals older than `events_recent` (a new metric's history).
    Final,
}

/// Something that must still hold right before a seal is written: the sealer checks that
/// it still holds the sealers' lock, so that two processes never write the same seal.
pub trait Fence {
    fn check(&mut self) -> impl std::future::Future<Output = Result<()>> + Send;
}

/// For callers that are the only sealer by construction (the bench's database of its own;
/// the api's sealer checks its advisory lock instead).
pub struct NoFence;

impl Fence for NoFence {
    async fn check(&mut self) -> Result<()> {
        Ok(())
    }
}

/// A ClickHouse session of its own: the temporary tables of one metric's seals. The
/// session's current database is set with `USE`: on 18.16 a `CREATE TEMPORARY TABLE ... AS
/// SELECT` resolves unqualified tables in `default`, not in the request's `database`
/// (measured); `USE` fixes it for the session. The name is the server's own answer.
pub async fn session(ch: &Client) -> Result<Client> {
    // A session lives `session_timeout` seconds after its last statement (60 s by default):
    // a bootstrap or a compaction on another connection between two of its statements can
    // take longer at 100 M events (measured: the session was gone, and with it `USE` and the
    // temporary tables). An hour is the server's default maximum.
    let session = ch
        .clone()
        .with_option("session_id", uuid::Uuid::new_v4().simple().to_string())
        .with_option("session_timeout", "3600");
    let database: String = ch.query("SELECT currentDatabase()").fetch_one().await?;
    let quoted = database.replace('\\', "\\\\").replace('`', "\\`");
    run(&session, &format!("USE `{quoted}`"), &[]).await?;
    Ok(session)
}

/// Runs one statement of a session. 18.16 releases a session only after its previous
/// answer is sent, so the next statement can find it still locked (code 373, "Session is
/// locked by a concurrent client", seen under load): it is sent again after a short pause,
/// a few times.
async fn run(session: &Client, sql: &str, args: &[(&str, Arg<'_>)]) -> Result<()> {
    let mut pause = Duration::from_millis(10);
    let mut attempts = 0;
    loop {
        match named(session, sql, args)?.execute().await {
            Err(e) if common::clickhouse::error_code(&e) == Some(373) && attempts < 6 => {
                attempts += 1;
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            done => return Ok(done?),
        }
    }
}

const TEMPORARIES: [&str; 7] = ["iv_g", "iv", "cand", "cur", "chg", "fes", "st"];

/// Drops the temporary tables of a session (before and after seals: a session, and its
/// tables, outlives its seals by `session_timeout`).
pub async fn drop_temporaries(session: &Client) -> Result<()> {
    for table in TEMPORARIES {
        run(session, &format!("DROP TEMPORARY TABLE IF EXISTS {table}"), &[]).await?;
    }
    Ok(())
}

/// The interval's events, each once, with the availability of the first copy read. Copies
/// available before S0 have inserted_at >= S0 - K (timestamp <= inserted_at + K), so this
/// range holds every copy that matters; copies share user, timestamp and event id.
const IV_G_RECENT: &str = concat!(
    "
CREATE TEMPORARY TABLE iv_g ENGINE = Memory AS
SELECT user_id, event_id, argMin(timestamp, inserted_at) AS ts,
    argMin(",
    event_value!("{PTR}", "{PROP}"),
    ", inserted_at) AS v,
    min(greatest(inserted_at, timestamp)) AS avail
FROM events_recent
WHERE type = {TYPE} AND inserted_at >= toDateTime({S0_K}) AND inserted_at < toDateTime({S1})
  AND greatest(inserted_at, timestamp) < toDateTime({S1}) AND user_id != ''
GROUP BY user_id, event_id
HAVING avail >= toDateTime({S0})"
);

/// The same from `events FINAL`: each event's first copy (the surviving one), whose
/// availability falls in the interval. Filters on availability stay outside the FINAL read
/// (a filter applied before the merge would let a later copy survive).
const IV_G_FINAL: &str = concat!(
    "
CREATE TEMPORARY TABLE iv_g ENGINE = Memory AS
SELECT user_id, event_id, ts, ",
    event_value!("{PTR}", "{PROP}"),
    " AS v, avail
FROM
(
    SELECT user_id, event_id, timestamp AS ts, properties, num_keys, num_values, props_v,
        greatest(inserted_at, timestamp) AS avail
    FROM events FINAL
    WHERE type = {TYPE} AND timestamp < toDateTime({S1})
) AS f
WHERE avail >= toDateTime({S0}) AND avail < toDateTime({S1}) AND user_id != ''"
);

/// Less the events already sealed: an earlier copy available before S0 is in metric_log.
/// Only events with ts < S0 can have one (avail >= ts): late events, replays and the few at
/// the interval's edge, looked up by metric_log's primary key.
const IV: &str = "
CREATE TEMPORARY TABLE iv ENGINE = Memory AS
SELECT user_id, event_id, ts, v FROM iv_g
WHERE (user_id, ts, event_id) NOT IN
(
    SELECT user_id, ts, event_id FROM metric_log
    WHERE event_type = {TYPE} AND value_property = {PROP} AND sealed <= toDateTime({S0})
      AND user_id IN (SELECT user_id FROM iv_g WHERE ts < toDateTime({S0}))
      AND (user_id, ts, event_id) IN (SELECT user_id, ts, event_id FROM iv_g WHERE ts < toDateTime({S0}))
)";

/// The interval's rows and the marker (ts = S0), one part.
const LOG_INSERT: &str = "
INSERT INTO metric_log (event_type, value_property, user_id, ts, event_id, v, sealed)
SELECT {TYPE}, {PROP}, user_id, ts, event_id, v, toDateTime({S1}) FROM
(
    SELECT user_id, ts, event_id, v FROM iv
    UNION ALL
    SELECT '' AS user_id, toDateTime({S0}) AS ts, toUUID('00000000-0000-0000-0000-000000000000') AS event_id, 0. AS v
)
";

/// For a level 2 whose level 1 ran in another session (a seal interrupted in between):
/// the events that level 1 wrote for `(S0, S1]`.
const IV_FROM_LOG: &str = "
CREATE TEMPORARY TABLE iv ENGINE = Memory AS
SELECT user_id, event_id, ts, v FROM metric_log
WHERE event_type = {TYPE} AND value_property = {PROP} AND sealed > toDateTime({S0}) AND sealed <= toDateTime({S1})
  AND user_id != ''";

fn args<'a>(m: Metric<'a>, s0: u32, s1: u32) -> [(&'static str, Arg<'a>); 4] {
    [("TYPE", Arg::Str(m.event_type)), ("PROP", Arg::Str(m.value_property)), ("S0", Arg::U32(s0)), ("S1", Arg::U32(s1))]
}

/// Level 1 of `[s0, s1)`: writes the metric's events of the interval to `metric_log` and
/// leaves them in the session's `iv` for the experiments' level 2.
pub async fn level1(
    session: &Client,
    m: Metric<'_>,
    (s0, s1): (u32, u32),
    k: u32,
    source: EventSource,
    fence: &mut impl Fence,
) -> Result<()> {
    drop_temporaries(session).await?;
    let pointer = properties::pointer(m.value_property);
    let mut a = args(m, s0, s1).to_vec();
    a.push(("S0_K", Arg::U32(s0.saturating_sub(k))));
    a.push(("PTR", Arg::Str(&pointer)));
    let iv_g = match source {
        EventSource::Recent => IV_G_RECENT,
        EventSource::Final => IV_G_FINAL,
    };
    run(session, iv_g, &a).await?;
    run(session, IV, &a).await?;
    fence.check().await?;
    run(session, &format!("{LOG_INSERT}{ONE_PART}"), &a).await?;
    Ok(())
}

/// Fills the session's `iv` with what level 1 sealed in `(s0, s1]`.
pub async fn interval_from_log(session: &Client, m: Metric<'_>, (s0, s1): (u32, u32)) -> Result<()> {
    drop_temporaries(session).await?;
    run(session, IV_FROM_LOG, &args(m, s0, s1)).await?;
    Ok(())
}

/// Users with an exposure row inserted in the interval.
const CAND: &str = "
CREATE TEMPORARY TABLE cand ENGINE = Memory AS
SELECT DISTINCT user_id FROM exposures_recent
WHERE experiment_id = {E} AND inserted_at >= toDateTime({S0}) AND inserted_at < toDateTime({S1})";

/// The current (latest +1) state of the users this seal may touch.
const CUR: &str = "
CREATE TEMPORARY TABLE cur ENGINE = Memory AS
SELECT user_id, max(ver) AS ver_r, argMax(fe, ver) AS fe_r, argMax(variant, ver) AS var_r, argMax(n, ver) AS n_r,
    argMax(y, ver) AS y_r, argMax(pre_b, ver) AS b_r, argMax(pre_n, ver) AS k_r, argMax(pre_x, ver) AS x_r
FROM rollup
WHERE experiment_id = {E} AND event_type = {TYPE} AND value_property = {PROP} AND sign = 1
  AND (user_id IN (SELECT user_id FROM cand) OR user_id IN (SELECT user_id FROM iv))
GROUP BY user_id";

/// Changed users: no state yet, or a first exposure earlier than the sealed one.
const CHG: &str = concat!(
    "
CREATE TEMPORARY TABLE chg ENGINE = Memory AS
SELECT user_id, fe_new, var_new FROM
(
    SELECT user_id, min(exposed_at) AS fe_new, argMin(variant, exposed_at) AS var_new FROM exposures
    WHERE experiment_id = {E} AND inserted_at < toDateTime({S1}) AND user_id IN (SELECT user_id FROM cand) AND ",
    counted_exposure!(),
    "
    GROUP BY user_id
) AS nx ANY LEFT JOIN (SELECT user_id, fe_r, toUInt8(1) AS had FROM cur) AS cr USING user_id
WHERE had = 0 OR fe_new < fe_r"
);

/// The first exposure each of the interval's events is measured from.
const FES: &str = "
CREATE TEMPORARY TABLE fes ENGINE = Memory AS
SELECT user_id, fe_r AS fe, var_r AS variant FROM cur WHERE user_id NOT IN (SELECT user_id FROM chg)
UNION ALL
SELECT user_id, fe_new AS fe, var_new AS variant FROM chg";

/// New states: unchanged users' sealed state plus the interval's events; changed users'
/// history (sealed up to S0) plus the interval's events, relative to their new exposure.
/// Pre-exposure events are kept per whole day before it (0..364), summed by sumMap.
const ST: &str = "
CREATE TEMPORARY TABLE st ENGINE = Memory AS
SELECT user_id, any(fe0) AS fe, any(var0) AS variant, sum(n0) AS n, sum(y0) AS y, sumMap(b, k, x) AS m
FROM
(
    SELECT user_id, fe_r AS fe0, var_r AS var0, n_r AS n0, y_r AS y0, b_r AS b, k_r AS k, x_r AS x FROM cur
    WHERE user_id NOT IN (SELECT user_id FROM chg) AND user_id IN (SELECT user_id FROM iv)
    UNION ALL
    SELECT user_id, fe AS fe0, variant AS var0, toInt64(countIf(ts >= fe)) AS n0, sumIf(v, ts >= fe) AS y0,
        groupArrayIf(toUInt16(intDiv(toUInt32(fe) - toUInt32(ts) - 1, 86400)), ts < fe) AS b,
        groupArrayIf(toInt64(1), ts < fe) AS k, groupArrayIf(v, ts < fe) AS x
    FROM (SELECT user_id, ts, v FROM iv) AS ev ALL INNER JOIN fes AS f USING user_id
    WHERE toUInt32(ts) + 31536000 >= toUInt32(fe)
    GROUP BY user_id, fe, variant
    UNION ALL
    SELECT user_id, fe_new AS fe0, var_new AS var0, toInt64(0) AS n0, 0. AS y0,
        emptyArrayUInt16() AS b, emptyArrayInt64() AS k, emptyArrayFloat64() AS x
    FROM chg
    UNION ALL
    SELECT user_id, fe_new AS fe0, var_new AS var0, toInt64(countIf(ts >= fe_new)) AS n0, sumIf(v, ts >= fe_new) AS y0,
        groupArrayIf(toUInt16(intDiv(toUInt32(fe_new) - toUInt32(ts) - 1, 86400)), ts < fe_new) AS b,
        groupArrayIf(toInt64(1), ts < fe_new) AS k, groupArrayIf(v, ts < fe_new) AS x
    FROM
    (
        SELECT user_id, ts, v FROM metric_log
        WHERE event_type = {TYPE} AND value_property = {PROP} AND sealed <= toDateTime({S0})
          AND user_id IN (SELECT user_id FROM chg)
    ) AS h ALL INNER JOIN chg AS c USING user_id
    WHERE toUInt32(ts) + 31536000 >= toUInt32(fe_new)
    GROUP BY user_id, fe_new, var_new
)
GROUP BY user_id";

/// The replaced states (-1, exact copies with their own ver), the new ones (+1, ver = S1)
/// and the marker (ver = S1, fe = S0), one part.
const STATE_INSERT: &str = "
INSERT INTO rollup (experiment_id, event_type, value_property, user_id, ver, sign, fe, variant, n, y, pre_b, pre_n, pre_x)
SELECT {E}, {TYPE}, {PROP}, user_id, ver, sign, fe, variant, n, y, b, k, x FROM
(
    SELECT user_id, ver_r AS ver, toInt8(-1) AS sign, fe_r AS fe, var_r AS variant, n_r AS n, y_r AS y,
        b_r AS b, k_r AS k, x_r AS x
    FROM cur WHERE user_id IN (SELECT user_id FROM st)
    UNION ALL
    SELECT user_id, toUInt32({S1}) AS ver, toInt8(1) AS sign, fe, variant, n, y,
        tupleElement(m, 1) AS b, tupleElement(m, 2) AS k, tupleElement(m, 3) AS x
    FROM st
    UNION ALL
    SELECT '' AS user_id, toUInt32({S1}) AS ver, toInt8(1) AS sign, toDateTime({S0}) AS fe, '' AS variant,
        toInt64(0) AS n, 0. AS y, emptyArrayUInt16() AS b, emptyArrayInt64() AS k, emptyArrayFloat64() AS x
)
";

/// Level 2 of `[s0, s1)` for one experiment, from the session's `iv`.
pub async fn level2(
    session: &Client,
    experiment_id: u64,
    m: Metric<'_>,
    (s0, s1): (u32, u32),
    fence: &mut impl Fence,
) -> Result<()> {
    for table in ["cand", "cur", "chg", "fes", "st"] {
        run(session, &format!("DROP TEMPORARY TABLE IF EXISTS {table}"), &[]).await?;
    }
    let mut a = args(m, s0, s1).to_vec();
    a.push(("E", Arg::U64(experiment_id)));
    for statement in [CAND, CUR, CHG, FES, ST] {
        run(session, statement, &a).await?;
    }
    fence.check().await?;
    run(session, &format!("{STATE_INSERT}{ONE_PART}"), &a).await?;
    Ok(())
}

/// Each user's first exposure among the rows inserted before S1.
macro_rules! exposed {
    () => {
        concat!(
            "(SELECT user_id, min(exposed_at) AS fe, argMin(variant, exposed_at) AS first_variant FROM exposures
              WHERE experiment_id = {E} AND inserted_at < toDateTime({S1}) AND ",
            counted_exposure!(),
            " GROUP BY user_id)"
        )
    };
}

/// An experiment's first level 2, when its metric is sealed up to S1: every user exposed
/// before S1 with their whole sealed history, in one streaming pass (the history is joined
/// to the exposures, not the other way round), plus the marker (fe = 0), one part.
const BOOTSTRAP: &str = concat!(
    "
INSERT INTO rollup (experiment_id, event_type, value_property, user_id, ver, sign, fe, variant, n, y, pre_b, pre_n, pre_x)
SELECT {E}, {TYPE}, {PROP}, user_id, toUInt32({S1}), toInt8(1), fe, variant, n, y,
    tupleElement(m, 1), tupleElement(m, 2), tupleElement(m, 3)
FROM
(
    SELECT user_id, any(fe0) AS fe, any(first_variant) AS variant, sum(n0) AS n, sum(y0) AS y, sumMap(b, k, x) AS m
    FROM
    (
        SELECT user_id, fe AS fe0, first_variant, toInt64(0) AS n0, 0. AS y0,
            emptyArrayUInt16() AS b, emptyArrayInt64() AS k, emptyArrayFloat64() AS x
        FROM ",
    exposed!(),
    " AS ex0
        UNION ALL
        SELECT user_id, fe AS fe0, first_variant, toInt64(countIf(ts >= fe)) AS n0, sumIf(v, ts >= fe) AS y0,
            groupArrayIf(toUInt16(intDiv(toUInt32(fe) - toUInt32(ts) - 1, 86400)), ts < fe) AS b,
            groupArrayIf(toInt64(1), ts < fe) AS k, groupArrayIf(v, ts < fe) AS x
        FROM
        (
            SELECT user_id, ts, v FROM metric_log
            WHERE event_type = {TYPE} AND value_property = {PROP} AND sealed <= toDateTime({S1}) AND user_id != ''
        ) AS h ALL INNER JOIN ",
    exposed!(),
    " AS ex USING user_id
        WHERE toUInt32(ts) + 31536000 >= toUInt32(fe)
        GROUP BY user_id, fe, first_variant
    )
    GROUP BY user_id
    UNION ALL
    SELECT '' AS user_id, toDateTime(0) AS fe, '' AS variant, toInt64(0) AS n, 0. AS y,
        (emptyArrayUInt16(), emptyArrayInt64(), emptyArrayFloat64()) AS m
)
"
);

/// Level 2 from nothing: the experiment's states as of the metric's seal `s1`.
pub async fn bootstrap_level2(
    ch: &Client,
    experiment_id: u64,
    m: Metric<'_>,
    s1: u32,
    fence: &mut impl Fence,
) -> Result<()> {
    let mut a = args(m, 0, s1).to_vec();
    a.push(("E", Arg::U64(experiment_id)));
    fence.check().await?;
    named(ch, &format!("{BOOTSTRAP}{ONE_PART}"), &a)?.execute().await?;
    Ok(())
}
