//! `PATCH /metrics/{key}`: a change, checked against the whole metric it makes.

use serde::Deserialize;

use super::{
    check_definition, check_prior, schema::capping_or_null, Capping, Denominator, Direction, Filter, Metric, Prior,
};
use crate::domain::{
    experiment::{validate_description, validate_name},
    rollout, Violation,
};

/// A change to a metric: any of the fields; `null` clears `description`,
/// `value_property`, `capping`, `window_hours` and `prior`. Its kind and key never change.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricPatch {
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\u0000\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000]*$"
    )]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "rollout::present")]
    #[schema(value_type = Option<String>, max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub description: Option<Option<String>>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\u0000]+$")]
    pub event_type: Option<String>,
    #[serde(default, deserialize_with = "rollout::present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 128, pattern = r"^[^\u0000]+$")]
    pub value_property: Option<Option<String>>,
    /// A ratio's new denominator.
    #[serde(default)]
    pub denominator: Option<Denominator>,
    /// A quantile metric's new level.
    #[serde(default)]
    #[schema(exclusive_minimum = 0, exclusive_maximum = 1)]
    pub quantile: Option<f64>,
    #[serde(default)]
    #[schema(max_items = 10)]
    pub filters: Option<Vec<Filter>>,
    #[serde(default)]
    pub direction: Option<Direction>,
    #[serde(default, deserialize_with = "rollout::present")]
    #[schema(schema_with = capping_or_null)]
    pub capping: Option<Option<Capping>>,
    #[serde(default, deserialize_with = "rollout::present")]
    #[schema(value_type = Option<f64>, exclusive_minimum = 0, maximum = 87600)]
    pub window_hours: Option<Option<f64>>,
    #[serde(default, deserialize_with = "rollout::present")]
    #[schema(value_type = Option<Prior>)]
    pub prior: Option<Option<Prior>>,
    #[serde(default)]
    pub archived: Option<bool>,
}

impl MetricPatch {
    /// The metric `current` becomes, checked as a whole.
    pub fn apply(&self, current: &Metric) -> Result<Metric, Violation> {
        let mut m = current.clone();
        if let Some(name) = &self.name {
            validate_name(name)?;
            m.name = name.trim().to_owned();
        }
        if let Some(description) = &self.description {
            validate_description(description.as_deref())?;
            m.description = description.clone();
        }
        if let Some(t) = &self.event_type {
            m.event_type = t.clone();
        }
        if let Some(p) = &self.value_property {
            m.value_property = p.clone();
        }
        if let Some(d) = &self.denominator {
            m.denominator = Some(d.clone());
        }
        if let Some(q) = self.quantile {
            m.quantile = Some(q);
        }
        if let Some(f) = &self.filters {
            m.filters = f.clone();
        }
        if let Some(d) = self.direction {
            m.direction = d;
        }
        if let Some(c) = self.capping {
            m.capping = c;
        }
        if let Some(w) = self.window_hours {
            m.window_hours = w;
        }
        if let Some(p) = self.prior {
            m.prior = p;
        }
        if let Some(a) = self.archived {
            m.archived = a;
        }
        check_definition(
            m.kind,
            &m.event_type,
            m.value_property.as_deref(),
            m.denominator.as_ref(),
            m.quantile,
            &m.filters,
            m.capping,
            m.window_hours,
        )?;
        check_prior(m.prior)?;
        Ok(m)
    }
}
