//! What the results and time series answer, and how they are put together from the
//! per-variant statistics ClickHouse returns (pure functions, unit-tested).

mod assemble;
pub mod breakdown;
pub mod explain;
pub mod multi;
pub mod timeseries;
mod warnings;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::Phase;

use crate::stats::{Comparison, Correction, Significance};

pub(crate) use assemble::analysis_of;
pub use assemble::assemble;
pub use warnings::{Warning, WarningCode};

/// What the analyst asked, validated (see `routes::params::ResultsParams`).
#[derive(Debug, Clone)]
pub struct Question {
    pub event_type: String,
    pub value_property: Option<String>,
    pub alpha: f64,
    pub correction: Correction,
    /// Days before exposure used as the CUPED covariate (0: CUPED off).
    pub cuped_days: u32,
    pub target_lift: Option<f64>,
    pub segment: Option<Segment>,
    /// A catalog metric's proper prior for the Bayesian view (`None`: flat).
    pub prior: Option<crate::stats::bayesian::Prior>,
}

impl Question {
    /// The same question about one slice of a breakdown: the users with `attribute` = `value`.
    pub fn sliced(&self, attribute: &str, value: &str) -> Question {
        let segment = Some(Segment { attribute: attribute.to_owned(), value: value.to_owned() });
        Question { segment, ..self.clone() }
    }
}

/// The users of one segment: those whose exposure carried `attribute` = `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Segment {
    pub attribute: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    /// Seconds since the epoch as ClickHouse 18.16's `DateTime` takes them.
    pub fn secs(t: DateTime<Utc>) -> u32 {
        u32::try_from(t.timestamp().max(0)).unwrap_or(u32::MAX)
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Srm {
    /// Chi-square goodness-of-fit p-value of users against allocations; null without users.
    pub p_value: Option<f64>,
    /// True when `p_value` < 0.001.
    pub mismatch: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ValueSummary {
    /// Null only when the sum overflows f64 (values beyond 1e308).
    pub sum: Option<f64>,
    pub mean: Option<f64>,
    pub std_dev: Option<f64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VariantComparison {
    pub conversion: Comparison,
    pub value: Option<Comparison>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VariantResult {
    pub name: String,
    pub allocation_percent: f64,
    /// Exposed users in the window.
    pub users: u64,
    /// Exposed users with at least one `event_type` event at or after their exposure.
    pub converted_users: u64,
    pub conversion_rate: Option<f64>,
    /// Those users' `event_type` events (each event id once).
    pub events: u64,
    /// Per-user sums of `value_property` (0 for users without events); null without it.
    pub value: Option<ValueSummary>,
    /// Against the control; null for the control itself.
    pub comparison: Option<VariantComparison>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ExperimentResults {
    pub experiment_id: i64,
    pub event_type: String,
    pub value_property: Option<String>,
    pub window: Window,
    /// The phase analysed (`?phase=`, default the current one): its users are those first
    /// exposed in it, `srm` and `allocation_percent` are its allocations.
    pub phase: Phase,
    /// Name of the control (the first variant).
    pub control: String,
    pub alpha: f64,
    /// How `adjusted_p_value` (and so `significant`) accounts for several treatments.
    pub correction: Correction,
    /// The experiment's setting: which test's adjusted p-value decides `significant`.
    pub significance: Significance,
    /// The experiment's tuning parameter of the sequential intervals.
    pub sequential_tuning: f64,
    /// Days before exposure used as the CUPED covariate (0: CUPED off).
    pub cuped_days: u32,
    /// The lift `power.days_to_target` is about, when asked.
    pub target_lift: Option<f64>,
    /// Only this segment's users; null: everyone (forced users are always left out).
    pub segment: Option<Segment>,
    pub srm: Srm,
    pub warnings: Vec<Warning>,
    pub variants: Vec<VariantResult>,
    /// With `explain=true`: the statements run, the sufficient statistics and a Python
    /// program that recomputes every p-value and interval; null otherwise.
    pub explain: Option<explain::Explain>,
    /// With `dimension=<attribute>`: the same results per value of the attribute.
    pub breakdown: Option<breakdown::Breakdown>,
}
