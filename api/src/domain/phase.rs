//! Phases: periods of an experiment with one set of allocations (stored by
//! `storage::postgres::phases`, analysed by `GET /experiments/{id}/results?phase=`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::types::Json;

/// Why a phase started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum PhaseReason {
    Created,
    AllocationsChanged,
    Restarted,
}

/// A period with one set of allocations.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Phase {
    /// 1, 2, ... in order.
    pub phase: i32,
    pub started_at: DateTime<Utc>,
    /// Null while the phase is the current one and the experiment not stopped.
    pub ended_at: Option<DateTime<Utc>>,
    /// Allocation per variant name, in basis points (1/100 of a percent).
    #[schema(value_type = BTreeMap<String, u32>)]
    pub allocations: Json<BTreeMap<String, u32>>,
    pub reason: PhaseReason,
}
