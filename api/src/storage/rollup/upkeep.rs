//! What keeps the rollup cheap to read and the recent tables small: compaction, dropping
//! old partitions of `events_recent` and `exposures_recent` (after raising `recent_floor`),
//! and where a new metric's history starts.

use clickhouse::{Client, Row};
use serde::Deserialize;

use super::{named, Arg, Result};

/// Merges the rollup (cancelled +1/-1 pairs disappear) and this month's part of
/// `metric_log` into one part each: the results query reads every rollup row and probes
/// every `metric_log` part, so it slows down as seals pile parts up (README figures).
pub async fn compact(ch: &Client, month: u32) -> Result<()> {
    ch.query("OPTIMIZE TABLE rollup FINAL").execute().await?;
    named(ch, "OPTIMIZE TABLE metric_log PARTITION {MONTH} FINAL", &[("MONTH", Arg::U32(month))])?.execute().await?;
    Ok(())
}

/// From now on the recent tables may lack rows inserted before `since` (the floor only
/// rises: readers take the largest).
pub async fn raise_floor(ch: &Client, since: u32) -> Result<()> {
    named(ch, "INSERT INTO recent_floor SELECT toDateTime({SINCE})", &[("SINCE", Arg::U32(since))])?.execute().await?;
    Ok(())
}

/// The tables whose old partitions the sealer drops (partitioned by day of insertion).
pub const RECENT_TABLES: [&str; 2] = ["events_recent", "exposures_recent"];

#[derive(Debug, Clone, Row, Deserialize)]
pub struct Partition {
    pub table: String,
    /// `YYYYMMDD` of the insertion day.
    pub day: u32,
}

/// The partitions of the recent tables that hold data.
pub async fn recent_partitions(ch: &Client) -> Result<Vec<Partition>> {
    Ok(ch
        .query(
            "SELECT DISTINCT table, toUInt32(partition) AS day FROM system.parts
             WHERE database = currentDatabase() AND table IN ('events_recent', 'exposures_recent') AND active",
        )
        .fetch_all::<Partition>()
        .await?)
}

/// Drops one day of a recent table (`table` is one of [`RECENT_TABLES`]).
pub async fn drop_partition(ch: &Client, p: &Partition) -> Result<()> {
    let table = RECENT_TABLES
        .iter()
        .find(|t| **t == p.table)
        .ok_or_else(|| super::StorageError::Inconsistent(format!("not a recent table: {}", p.table)))?;
    named(ch, &format!("ALTER TABLE {table} DROP PARTITION {{DAY}}"), &[("DAY", Arg::U32(p.day))])?.execute().await?;
    Ok(())
}

#[derive(Row, Deserialize)]
struct First {
    first: u32,
    events: u64,
}

/// The earliest timestamp of an event type (where a new metric's first seal starts), or
/// `None` without events.
pub async fn first_event(ch: &Client, event_type: &str) -> Result<Option<u32>> {
    let sql = "SELECT toUInt32(min(timestamp)) AS first, toUInt64(count()) AS events FROM events WHERE type = {TYPE}";
    let f: First = named(ch, sql, &[("TYPE", Arg::Str(event_type))])?.fetch_one().await?;
    Ok((f.events > 0).then_some(f.first))
}
