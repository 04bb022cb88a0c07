//! ClickHouse rows, converted from the envelopes of `common::event`.

use clickhouse::Row;
use common::event::{compact_json, EventEnvelope, ExposureEnvelope};
use serde::Serialize;
use uuid::Uuid;

/// A row of `events` (see `clickhouse/001_events.sql`); field order is column order.
#[derive(Debug, Clone, Row, Serialize)]
pub struct EventRow {
    #[serde(with = "clickhouse::serde::uuid")]
    pub event_id: Uuid,
    pub user_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// `DateTime`: seconds since the epoch.
    pub timestamp: u32,
    pub received_at: u32,
    /// The client's JSON object, compact (see `compact_json`).
    pub properties: String,
}

/// A row of `exposures` (see `clickhouse/002_exposures.sql`).
#[derive(Debug, Clone, Row, Serialize)]
pub struct ExposureRow {
    pub experiment_id: u64,
    pub user_id: String,
    pub variant: String,
    pub exposed_at: u32,
}

/// Milliseconds to `DateTime` seconds; decode already checked the range.
fn seconds(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1000)).unwrap_or(u32::MAX)
}

impl From<EventEnvelope<'_>> for EventRow {
    fn from(e: EventEnvelope<'_>) -> Self {
        Self {
            event_id: e.event_id,
            user_id: e.user_id.into_owned(),
            event_type: e.event_type.into_owned(),
            timestamp: seconds(e.timestamp_ms),
            received_at: seconds(e.received_at_ms),
            properties: compact_json(e.properties.get()),
        }
    }
}

impl From<ExposureEnvelope<'_>> for ExposureRow {
    fn from(e: ExposureEnvelope<'_>) -> Self {
        Self {
            experiment_id: u64::try_from(e.experiment_id).unwrap_or_default(),
            user_id: e.user_id.into_owned(),
            variant: e.variant.into_owned(),
            exposed_at: seconds(e.exposed_at_ms),
        }
    }
}
