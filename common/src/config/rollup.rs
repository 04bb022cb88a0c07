//! The `rollup` section: how the api seals results in the background.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The results rollup the api seals in the background (README "How results are computed").
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RollupConfig {
    /// Seal and answer results from the rollup; when false every results call reads the
    /// raw events (the tables are still written).
    pub enabled: bool,
    /// Seals end on multiples of this duration (the seal cadence).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// A seal ending at S runs once the clock is past S + lag: every row inserted before S
    /// must be visible by then (an insert longer than this would be missed by the seal).
    #[serde(with = "humantime_serde")]
    pub lag: Duration,
    /// K: no event's timestamp is more than this after its insertion into ClickHouse. Must
    /// exceed `ingest.max_future_skew` (ingest refuses later timestamps) with room for
    /// clock differences and consumer delays.
    #[serde(with = "humantime_serde")]
    pub future_bound: Duration,
    /// Longest interval one seal covers (catching up after downtime, or a new metric's
    /// history, goes in steps of at most this).
    #[serde(with = "humantime_serde")]
    pub max_step: Duration,
    /// How often the rollup and the current month of the per-metric log are compacted
    /// (OPTIMIZE ... FINAL); the results query slows down as parts pile up.
    #[serde(with = "humantime_serde")]
    pub compact_interval: Duration,
}

impl Default for RollupConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval: Duration::from_secs(600),
            lag: Duration::from_secs(300),
            future_bound: Duration::from_secs(7200),
            max_step: Duration::from_secs(86_400),
            compact_interval: Duration::from_secs(3600),
        }
    }
}
