//! Every ClickHouse statement of the results rollup (README "How results are computed"):
//! seals ([`seal`]), the results query on the rollup plus the unsealed tail ([`read`]), and
//! the one place that chooses between it and the raw-events query ([`variant_stats`]).
//!
//! The design in one paragraph. Each event becomes available at `avail = greatest(inserted_at,
//! timestamp)` of its first copy. A seal for `[S0, S1)`, run once every row inserted before
//! `S1` is visible, (1) appends the interval's events of a metric (event type, value
//! property), each once and not sealed before, to `metric_log` (level 1), and (2) per
//! experiment updates each touched user's state in `rollup` (level 2): users already exposed
//! get the interval's events added; users whose first exposure is new (or earlier than the
//! sealed one) get their state rebuilt from their history. States are written as +1 (new)
//! and -1 (exact copy of the old), so the results sum `sign * f(row)` over every row and
//! regroup only the users the tail (what came after the last seal) touches. Markers
//! (`user_id = ''`) commit with each seal's rows in one part: a seal is all or nothing, and
//! the markers say what is sealed. Seals rely on `timestamp <= inserted_at + K`
//! (`rollup.future_bound`; ingest refuses timestamps more than `ingest.max_future_skew` ahead).
//!
//! Same rules as [`super::clickhouse`], every parameter bound. Every statement is tested on
//! ClickHouse 18.16 (`api/tests/rollup.rs`), and on 18.16 and a current release (26.x via
//! the chdb shim, whose sessions are chdb connections of their own) with the same data and
//! answers (`api/tests/engines_rollup.rs`): the same SQL runs on both. Statements name
//! their parameters (`{E}`, `{TYPE}`, ...); [`named`] binds them in order of appearance.

pub mod read;
pub mod seal;
pub mod upkeep;

use clickhouse::{query::Query, Client, Row};
use serde::{Deserialize, Serialize};

use super::{
    clickhouse::{self as raw, StatsQuery, VariantStats},
    StorageError,
};

type Result<T> = std::result::Result<T, StorageError>;

/// The condition an exposure row meets to count: the raw query's, one definition.
pub(crate) use super::clickhouse::{counted_exposure, event_value};

/// A bound value of a named parameter.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(untagged)]
pub enum Arg<'a> {
    U32(u32),
    U64(u64),
    Str(&'a str),
}

/// `sql` with each `{NAME}` replaced by a bound `?` (in order of appearance) holding the
/// value of that name in `args`. A name missing from `args` is a bug: an error, never SQL.
pub fn named(ch: &Client, sql: &str, args: &[(&str, Arg<'_>)]) -> Result<Query> {
    let (text, names) = placeholders(sql);
    let mut query = ch.query(&text);
    for name in names {
        let (_, value) = args
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| StorageError::Inconsistent(format!("no value for {{{name}}}")))?;
        query = query.bind(*value);
    }
    Ok(super::trace::record(query))
}

/// The SQL with `?` for every `{NAME}` (`NAME` in `[A-Z0-9_]`), literal `?` doubled (the
/// client's escape), and the names in order.
fn placeholders(sql: &str) -> (String, Vec<&str>) {
    let mut text = String::with_capacity(sql.len());
    let mut names = Vec::new();
    let mut rest = sql;
    while let Some(open) = rest.find(['{', '?']) {
        text.push_str(&rest[..open]);
        let tail = &rest[open..];
        if let Some(after) = tail.strip_prefix('?') {
            text.push_str("??");
            rest = after;
            continue;
        }
        let name_len =
            tail[1..].bytes().take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_').count();
        if name_len > 0 && tail[1 + name_len..].starts_with('}') {
            names.push(&tail[1..1 + name_len]);
            text.push('?');
            rest = &tail[name_len + 2..];
        } else {
            text.push('{');
            rest = &tail[1..];
        }
    }
    text.push_str(rest);
    (text, names)
}

/// What the markers of one level say: how many seals, where the last one ends, and whether
/// they form one chain from the beginning (each seal starts where the previous ended; the
/// first at 0). Anything else (two seals of one interval, a gap) means the rollup cannot be
/// trusted: results then come from the raw events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Row, Deserialize)]
pub struct Seals {
    pub seals: u64,
    pub last: u32,
    pub chained: u8,
}

impl Seals {
    /// The end of the last seal, when there is a sound chain of seals.
    pub fn sealed_to(&self) -> Option<u32> {
        (self.seals > 0 && self.chained == 1).then_some(self.last)
    }
}

const CHAIN: &str = "
SELECT toUInt64(length(p)) AS seals, if(empty(p), toUInt32(0), tupleElement(p[length(p)], 2)) AS last,
    toUInt8(arrayAll((a, b) -> tupleElement(a, 2) = tupleElement(b, 1), arrayPopBack(p), arrayPopFront(p))
        AND (empty(p) OR tupleElement(p[1], 1) = 0)) AS chained
FROM
";

/// Level 1: the seals of a metric, from its markers in `metric_log`.
pub async fn metric_seals(ch: &Client, event_type: &str, value_property: &str) -> Result<Seals> {
    let sql = format!(
        "{CHAIN} (SELECT arraySort(groupArray((toUInt32(ts), toUInt32(sealed)))) AS p FROM metric_log
           WHERE event_type = {{TYPE}} AND value_property = {{PROP}} AND user_id = '')"
    );
    let args = [("TYPE", Arg::Str(event_type)), ("PROP", Arg::Str(value_property))];
    Ok(named(ch, &sql, &args)?.fetch_one::<Seals>().await?)
}

/// Level 2: the seals of an experiment's metric, from its markers in `rollup`.
pub async fn experiment_seals(
    ch: &Client,
    experiment_id: u64,
    event_type: &str,
    value_property: &str,
) -> Result<Seals> {
    let sql = format!(
        "{CHAIN} (SELECT arraySort(groupArray((toUInt32(fe), ver))) AS p FROM rollup
           WHERE experiment_id = {{E}} AND event_type = {{TYPE}} AND value_property = {{PROP}} AND user_id = '')"
    );
    let args = [("E", Arg::U64(experiment_id)), ("TYPE", Arg::Str(event_type)), ("PROP", Arg::Str(value_property))];
    Ok(named(ch, &sql, &args)?.fetch_one::<Seals>().await?)
}

/// The server's clock and the floor of the `*_recent` tables: they hold every row inserted
/// at or after `floor` (seconds since the epoch).
#[derive(Debug, Clone, Copy, Row, Deserialize)]
pub struct Clock {
    pub now: u32,
    pub floor: u32,
}

pub async fn clock(ch: &Client) -> Result<Clock> {
    let query = ch.query("SELECT toUInt32(now()) AS now, toUInt32(max(since)) AS floor FROM recent_floor");
    Ok(super::trace::record(query).fetch_one::<Clock>().await?)
}

/// Where one results answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Sealed states up to this time plus the tail after it.
    Rollup { sealed_to: u32 },
    /// The raw events, and why.
    Raw(RawReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawReason {
    /// The rollup is off, the window starts after the experiment's start, or a segment
    /// is asked.
    NotAsked,
    /// No seal of this experiment's metric yet (it was just registered).
    NotSealed,
    /// The markers do not chain, or the tail's source no longer reaches back to the seal.
    Unusable,
    /// A seal kept landing while the query ran, or the rollup query failed.
    Failed,
}

impl Source {
    /// The `source` label of `abtest_results_total`.
    pub fn label(self) -> &'static str {
        match self {
            Source::Rollup { .. } => "rollup",
            Source::Raw(RawReason::NotAsked) => "raw",
            Source::Raw(RawReason::NotSealed) => "raw_not_sealed",
            Source::Raw(RawReason::Unusable) => "raw_unusable",
            Source::Raw(RawReason::Failed) => "raw_failed",
        }
    }
}

/// How many times a results query is tried again when a seal lands while it runs.
const RETRIES: usize = 3;

/// The one dispatch point of the results: from the rollup when `future_bound` is given
/// (the rollup is on and the window covers the whole experiment, see the route) and the
/// experiment's metric is sealed, else from the raw events. A seal committed while the
/// rollup query runs makes it fail (`throwIf`, code 395): read the seal state again and
/// retry. Same rows either way (`api/tests/rollup.rs`).
pub async fn variant_stats(
    ch: &Client,
    q: &StatsQuery<'_>,
    future_bound: Option<u32>,
) -> Result<(Vec<VariantStats>, Source)> {
    let reason = match future_bound {
        None => RawReason::NotAsked,
        Some(k) => match from_rollup(ch, q, k).await {
            Ok(done) => return Ok(done),
            Err(reason) => reason,
        },
    };
    Ok((raw::variant_stats(ch, q).await?, Source::Raw(reason)))
}

async fn from_rollup(
    ch: &Client,
    q: &StatsQuery<'_>,
    k: u32,
) -> std::result::Result<(Vec<VariantStats>, Source), RawReason> {
    let experiment = u64::try_from(q.experiment_id).map_err(|_| RawReason::Unusable)?;
    for _ in 0..RETRIES {
        let (level1, level2, clock) = tokio::try_join!(
            metric_seals(ch, q.event_type, q.value_property),
            experiment_seals(ch, experiment, q.event_type, q.value_property),
            clock(ch),
        )
        .map_err(|e| {
            tracing::warn!(error = %server::error::Chain(&e), "rollup state unreadable; raw results");
            RawReason::Failed
        })?;
        let sealed_to = usable(level1, level2, clock, k, q.to)?;
        match read::variant_stats(ch, q, sealed_to, clock.now, k).await {
            Ok(rows) => return Ok((rows, Source::Rollup { sealed_to })),
            Err(StorageError::ClickHouse(e)) if common::clickhouse::error_code(&e) == Some(395) => continue,
            Err(e @ StorageError::Inconsistent(_)) => {
                tracing::error!(error = %e, "rollup inconsistent; raw results");
                return Err(RawReason::Unusable);
            }
            Err(e) => {
                tracing::warn!(error = %server::error::Chain(&e), "rollup results failed; raw results");
                return Err(RawReason::Failed);
            }
        }
    }
    Err(RawReason::Failed)
}

/// The seal to read up to, if the rollup can answer: both levels chain, the experiment's
/// seals do not run ahead of the metric's, the window ends after them, and the tail's
/// tables still reach back to the last seal (less K).
pub fn usable(level1: Seals, level2: Seals, clock: Clock, k: u32, to: u32) -> std::result::Result<u32, RawReason> {
    let (Some(l1), Some(l2)) = (level1.sealed_to(), level2.sealed_to()) else {
        return Err(if level2.seals == 0 { RawReason::NotSealed } else { RawReason::Unusable });
    };
    if l2 > l1 || l2 > to || l2.saturating_sub(k) < clock.floor {
        return Err(RawReason::Unusable);
    }
    Ok(l2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_bound_parameters_in_order() {
        let (text, names) = placeholders("a = {E} AND b IN ({TYPE}, {E}) AND c = '{x}' AND d = ?");
        assert_eq!(text, "a = ? AND b IN (?, ?) AND c = '{x}' AND d = ??");
        assert_eq!(names, ["E", "TYPE", "E"]);
    }

    #[test]
    fn a_missing_value_is_an_error_not_sql() {
        let ch = Client::default();
        assert!(named(&ch, "SELECT {E}", &[("E", Arg::U32(1))]).is_ok());
        assert!(matches!(named(&ch, "SELECT {E}, {F}", &[("E", Arg::U32(1))]), Err(StorageError::Inconsistent(_))));
    }

    #[test]
    fn the_rollup_answers_only_from_a_sound_chain_that_the_tail_can_reach() {
        let sealed = |seals, last| Seals { seals, last, chained: 1 };
        let clock = Clock { now: 10_000, floor: 1_000 };
        assert_eq!(usable(sealed(3, 9_000), sealed(2, 8_000), clock, 600, 10_000), Ok(8_000));
        assert_eq!(usable(sealed(3, 9_000), sealed(0, 0), clock, 600, 10_000), Err(RawReason::NotSealed));
        let broken = Seals { chained: 0, ..sealed(3, 9_000) };
        assert_eq!(usable(broken, sealed(2, 8_000), clock, 600, 10_000), Err(RawReason::Unusable));
        assert_eq!(usable(sealed(3, 9_000), broken, clock, 600, 10_000), Err(RawReason::Unusable));
        assert_eq!(usable(sealed(3, 7_000), sealed(2, 8_000), clock, 600, 10_000), Err(RawReason::Unusable));
        assert_eq!(usable(sealed(3, 9_000), sealed(2, 8_000), clock, 600, 7_999), Err(RawReason::Unusable));
        let late_floor = Clock { now: 10_000, floor: 7_500 };
        assert_eq!(usable(sealed(3, 9_000), sealed(2, 8_000), late_floor, 600, 10_000), Err(RawReason::Unusable));
    }
}
