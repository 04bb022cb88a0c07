//! The metrics an experiment is decided on: primary, secondaries, guardrails.

use serde::{Deserialize, Serialize};

use super::check_key;
use crate::domain::{experiment::violation, Violation};

/// A guardrail: a metric that must not get worse by more than `margin` (relative: 0.01 is
/// 1 % of the control's mean).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Guardrail {
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub metric: String,
    #[schema(minimum = 0, maximum = 10)]
    pub margin: f64,
}

/// The metrics an experiment is decided on, by key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"primary": "purchases", "secondary": ["revenue"], "guardrails": [{"metric": "refunds", "margin": 0.01}]}))]
pub struct ExperimentMetrics {
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub primary: Option<String>,
    #[serde(default)]
    #[schema(inline, max_items = 20, value_type = Vec<MetricKey>)]
    pub secondary: Vec<String>,
    #[serde(default)]
    #[schema(max_items = 20)]
    pub guardrails: Vec<Guardrail>,
}

/// A metric's key.
#[derive(utoipa::ToSchema)]
#[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
#[allow(dead_code)]
struct MetricKey(String);

/// Most metrics one experiment references.
pub const MAX_EXPERIMENT_METRICS: usize = 20;

/// How an experiment uses a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Role {
    Primary,
    Secondary,
    Guardrail,
}

impl ExperimentMetrics {
    pub fn is_empty(&self) -> bool {
        self.primary.is_none() && self.secondary.is_empty() && self.guardrails.is_empty()
    }

    /// Every referenced key with its role and margin, in order: primary, secondaries,
    /// guardrails.
    pub fn entries(&self) -> Vec<(&str, Role, Option<f64>)> {
        let primary = self.primary.iter().map(|k| (k.as_str(), Role::Primary, None));
        let secondary = self.secondary.iter().map(|k| (k.as_str(), Role::Secondary, None));
        let guardrails = self.guardrails.iter().map(|g| (g.metric.as_str(), Role::Guardrail, Some(g.margin)));
        primary.chain(secondary).chain(guardrails).collect()
    }

    pub fn check(&self) -> Result<(), Violation> {
        let entries = self.entries();
        if entries.len() > MAX_EXPERIMENT_METRICS {
            return Err(violation("metrics", format!("at most {MAX_EXPERIMENT_METRICS} metrics")));
        }
        let mut seen = std::collections::HashSet::new();
        for (key, _, margin) in &entries {
            check_key(key).map_err(|_| violation("metrics", format!("`{key}` is not a metric key")))?;
            if !seen.insert(*key) {
                return Err(violation("metrics", format!("metric `{key}` is listed twice")));
            }
            if margin.is_some_and(|m| !(m.is_finite() && (0.0..=10.0).contains(&m))) {
                return Err(violation("metrics", format!("the margin of guardrail `{key}` must be 0 to 10")));
            }
        }
        Ok(())
    }
}
