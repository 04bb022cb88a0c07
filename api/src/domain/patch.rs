//! A change to an experiment, and the rules it must follow against the stored one.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::metric::ExperimentMetrics;
use super::{
    experiment::{validate_description, validate_name, validate_tuning, validate_variants, violation, NewVariant},
    rollout, Experiment, Status, Violation,
};
use crate::stats::Significance;

/// A change: any of the fields, the others stay as they are.
///
/// A rule the schema cannot express: `variants` names exactly the experiment's variants.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"status": "paused"}))]
pub struct ExperimentPatch {
    #[serde(default)]
    pub status: Option<Status>,
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\u0000\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000]*$"
    )]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub description: Option<String>,
    /// New allocations (summing to 100) for exactly the existing variant names. Assigned
    /// users never move.
    #[serde(default)]
    #[schema(min_items = 2, max_items = 20)]
    pub variants: Option<Vec<NewVariant>>,
    #[serde(default)]
    pub significance: Option<Significance>,
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1e9)]
    pub sequential_tuning: Option<f64>,
    /// New share of users who enter; included users stay included and keep their variant.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100, multiple_of = 0.01)]
    pub coverage_percent: Option<f64>,
    /// New targeting conditions (null: everyone); assigned users keep their variant.
    #[serde(default, deserialize_with = "rollout::present")]
    #[schema(value_type = Option<Object>)]
    pub conditions: Option<Option<Value>>,
    /// null removes the start time.
    #[serde(default, deserialize_with = "rollout::present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub start_at: Option<Option<DateTime<Utc>>>,
    /// null removes the stop time.
    #[serde(default, deserialize_with = "rollout::present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub stop_at: Option<Option<DateTime<Utc>>>,
    /// The whole new list of forced users (user id -> variant name, at most 1000).
    #[serde(default)]
    pub forced: Option<BTreeMap<String, String>>,
    /// The experiment's metrics, replaced as a whole.
    #[serde(default)]
    pub metrics: Option<ExperimentMetrics>,
}

impl ExperimentPatch {
    /// Checks what needs no stored state (names, lengths, settings).
    pub fn check(&self) -> Result<(), Violation> {
        if let Some(name) = &self.name {
            validate_name(name)?;
        }
        validate_description(self.description.as_deref())?;
        validate_tuning(self.sequential_tuning)?;
        if let Some(p) = self.coverage_percent {
            rollout::basis_points(p, "coverage_percent", true)?;
        }
        rollout::check_conditions(self.conditions.as_ref().and_then(Option::as_ref))?;
        if let Some(metrics) = &self.metrics {
            metrics.check()?;
        }
        match &self.variants {
            Some(variants) => validate_variants(variants).map(|_| ()),
            None => Ok(()),
        }
    }

    /// Checks the rules that depend on `current` (schedule order, forced users' variants,
    /// a holdout's fixed shares) and returns the new allocations, if any.
    pub fn against(&self, current: &Experiment) -> Result<Option<Vec<(String, u32)>>, Violation> {
        let r = &current.rollout;
        rollout::check_schedule(self.start_at.unwrap_or(r.start_at), self.stop_at.unwrap_or(r.stop_at))?;
        if let Some(forced) = &self.forced {
            rollout::check_forced(forced, current.variants.iter().map(|v| v.name.as_str()))?;
        }
        if r.holdout && (self.variants.is_some() || self.coverage_percent.is_some() || self.conditions.is_some()) {
            return Err(violation("variants", "a holdout's shares, coverage and conditions cannot change"));
        }
        self.allocations(current)
    }

    /// The new allocations by variant name, which must be exactly `current`'s variants.
    fn allocations(&self, current: &Experiment) -> Result<Option<Vec<(String, u32)>>, Violation> {
        let Some(variants) = &self.variants else { return Ok(None) };
        let bps = validate_variants(variants)?;
        let current_names: HashSet<&str> = current.variants.iter().map(|v| v.name.as_str()).collect();
        let new_names: HashSet<&str> = variants.iter().map(|v| v.name.as_str()).collect();
        if current_names != new_names {
            return Err(violation(
                "variants",
                "allocations can change, variants cannot: name exactly the existing variants",
            ));
        }
        Ok(Some(variants.iter().map(|v| v.name.clone()).zip(bps).collect()))
    }
}
