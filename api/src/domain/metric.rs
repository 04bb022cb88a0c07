//! The metric catalog: metrics defined once (`POST /metrics`) and referenced by experiments
//! as primary, secondary or guardrail (docs/statistics.md "Metrics").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    experiment::{validate_description, validate_name, violation},
    Violation,
};

mod patch;
mod schema;
mod usage;

pub use crate::stats::bayesian::Prior;
pub use patch::MetricPatch;
use schema::{capping_or_null, filter_value_schema};
pub use usage::{ExperimentMetrics, Guardrail, Role, MAX_EXPERIMENT_METRICS};

/// What a metric measures per exposed user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum MetricKind {
    /// Share of exposed users with at least one counted event.
    Conversion,
    /// Per exposed user, the sum of `value_property` over counted events (without one: the
    /// number of counted events), averaged over all exposed users, zeros included.
    Mean,
    /// The sum over exposed users of the numerator (`event_type`, `value_property`: a
    /// property's sum, or the events counted) over the sum of the `denominator`'s (revenue
    /// per order, clicks per session); analysed with the delta method.
    Ratio,
    /// A quantile (`quantile`, e.g. 0.9) of `value_property` over the counted events of
    /// exposed users (page latency p90), with an order-statistic interval.
    Quantile,
}

/// A ratio's denominator: an event type, and the property summed (without one: the
/// events counted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Denominator {
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\u0000]+$")]
    pub event_type: String,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\u0000]+$")]
    pub value_property: Option<String>,
}

/// Which way is good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum Direction {
    #[default]
    Higher,
    Lower,
}

/// Winsorizing of each user's value from above (a `mean` metric): at an absolute value, or
/// at a quantile of the per-user values of all variants together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Capping {
    /// Values above this become this (greater than 0).
    Absolute(f64),
    /// Values above this quantile (between 0 and 1, e.g. 0.99) become it.
    Percentile(f64),
}

/// Only events whose property (a top-level key, or a JSON Pointer starting with `/`) has
/// this value: a string as is, a number or a boolean as JSON writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\u0000]+$", example = "country")]
    pub property: String,
    #[schema(schema_with = filter_value_schema)]
    pub value: Value,
}

/// A metric of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Metric {
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub kind: MetricKind,
    pub event_type: String,
    pub value_property: Option<String>,
    /// Ratios only.
    pub denominator: Option<Denominator>,
    /// Quantiles only: the level, between 0 and 1.
    pub quantile: Option<f64>,
    pub filters: Vec<Filter>,
    pub direction: Direction,
    #[schema(schema_with = capping_or_null)]
    pub capping: Option<Capping>,
    /// Only events within this many hours after the user's first exposure; null: until the
    /// analysis ends.
    pub window_hours: Option<f64>,
    /// A proper normal prior on the relative lift for the Bayesian view; null: flat.
    pub prior: Option<Prior>,
    /// Archived metrics stay on the experiments that use them and cannot be added to others.
    pub archived: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new metric.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "purchases", "name": "Purchases", "kind": "conversion", "event_type": "purchase"}))]
pub struct NewMetric {
    /// Unique, 1 to 64 of `A-Z a-z 0-9 _ . -`; never changes.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub key: String,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\u0000\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000]*$"
    )]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub description: Option<String>,
    pub kind: MetricKind,
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\u0000]+$")]
    pub event_type: String,
    /// `mean` only: the numeric property summed per user (a top-level key, or a JSON
    /// Pointer starting with `/`); without it a `mean` metric counts events per user.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\u0000]+$")]
    pub value_property: Option<String>,
    /// `ratio` only (and required there): what the numerator is divided by.
    #[serde(default)]
    pub denominator: Option<Denominator>,
    /// `quantile` only (and required there): the level, e.g. 0.9 for the p90.
    #[serde(default)]
    #[schema(exclusive_minimum = 0, exclusive_maximum = 1)]
    pub quantile: Option<f64>,
    #[serde(default)]
    #[schema(max_items = 10)]
    pub filters: Vec<Filter>,
    #[serde(default)]
    pub direction: Direction,
    /// `mean` only.
    #[serde(default)]
    #[schema(schema_with = capping_or_null)]
    pub capping: Option<Capping>,
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 87600)]
    pub window_hours: Option<f64>,
    /// The Bayesian view's prior on the relative lift (default: flat, none).
    #[serde(default)]
    pub prior: Option<Prior>,
}

const MAX_PROPERTY_CHARS: usize = 128;
const MAX_FILTERS: usize = 10;
const MAX_FILTER_VALUE_CHARS: usize = 1024;
const MAX_WINDOW_HOURS: f64 = 87_600.0;

pub fn check_key(key: &str) -> Result<(), Violation> {
    let ok = (1..=64).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(violation("key", "key must be 1 to 64 of A-Z a-z 0-9 _ . -"))
    }
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), Violation> {
    if value.is_empty() || value.chars().count() > max || value.contains('\0') {
        return Err(violation(field, format!("{field} must be 1 to {max} characters, no NUL")));
    }
    Ok(())
}

/// The text an event's leaf must have for `value` (see `common::event::properties`).
pub fn filter_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The fields that belong to one kind: a ratio's denominator, a quantile's level, a
/// conversion's absence of value and capping.
fn kind_fields(
    kind: MetricKind,
    value_property: Option<&str>,
    denominator: Option<&Denominator>,
    quantile: Option<f64>,
    capping: Option<Capping>,
) -> Result<(), Violation> {
    if kind == MetricKind::Conversion && value_property.is_some() {
        return Err(violation("value_property", "a conversion metric has no value_property (use kind `mean`)"));
    }
    if kind == MetricKind::Conversion && capping.is_some() {
        return Err(violation("capping", "a conversion metric is 0 or 1 per user: nothing to cap"));
    }
    match (kind, denominator) {
        (MetricKind::Ratio, None) => return Err(violation("denominator", "a ratio metric needs a denominator")),
        (MetricKind::Ratio, Some(d)) => {
            check_text("denominator", &d.event_type, MAX_PROPERTY_CHARS)?;
            if let Some(p) = &d.value_property {
                check_text("denominator", p, MAX_PROPERTY_CHARS)?;
            }
            if capping.is_some() {
                return Err(violation("capping", "a ratio metric has no capping (yet)"));
            }
        }
        (_, Some(_)) => return Err(violation("denominator", "only a ratio metric has a denominator")),
        (_, None) => {}
    }
    match (kind, quantile) {
        (MetricKind::Quantile, Some(q)) if q > 0.0 && q < 1.0 => {
            if value_property.is_none() {
                return Err(violation("value_property", "a quantile metric needs the numeric value_property"));
            }
            if capping.is_some() {
                return Err(violation("capping", "a quantile needs no capping"));
            }
        }
        (MetricKind::Quantile, _) => {
            return Err(violation("quantile", "a quantile metric needs quantile between 0 and 1, e.g. 0.9"))
        }
        (_, Some(_)) => return Err(violation("quantile", "only a quantile metric has a quantile")),
        (_, None) => {}
    }
    if kind == MetricKind::Conversion && value_property.is_some() {
        return Err(violation("value_property", "a conversion metric has no value_property (use kind `mean`)"));
    }
    if kind == MetricKind::Conversion && capping.is_some() {
        return Err(violation("capping", "a conversion metric is 0 or 1 per user: nothing to cap"));
    }
    Ok(())
}

pub(super) fn check_prior(prior: Option<Prior>) -> Result<(), Violation> {
    prior.map_or(Ok(()), |p| p.check().map_err(|m| violation("prior", m)))
}

/// The whole definition, as it would be stored: every rule that involves several fields.
#[allow(clippy::too_many_arguments)]
pub(super) fn check_definition(
    kind: MetricKind,
    event_type: &str,
    value_property: Option<&str>,
    denominator: Option<&Denominator>,
    quantile: Option<f64>,
    filters: &[Filter],
    capping: Option<Capping>,
    window_hours: Option<f64>,
) -> Result<(), Violation> {
    check_text("event_type", event_type, MAX_PROPERTY_CHARS)?;
    if let Some(p) = value_property {
        check_text("value_property", p, MAX_PROPERTY_CHARS)?;
    }
    kind_fields(kind, value_property, denominator, quantile, capping)?;
    if filters.len() > MAX_FILTERS {
        return Err(violation("filters", format!("at most {MAX_FILTERS} filters")));
    }
    for f in filters {
        check_text("filters", &f.property, MAX_PROPERTY_CHARS)?;
        match filter_text(&f.value) {
            Some(text) if text.chars().count() <= MAX_FILTER_VALUE_CHARS && !text.contains('\0') => {}
            _ => {
                return Err(violation(
                    "filters",
                    format!(
                    "a filter's value is a string, number or boolean of at most {MAX_FILTER_VALUE_CHARS} characters"
                ),
                ))
            }
        }
    }
    match capping {
        Some(Capping::Absolute(c)) if !(c.is_finite() && c > 0.0) => {
            return Err(violation("capping", "capping.absolute must be a number above 0"))
        }
        Some(Capping::Percentile(p)) if !(p > 0.0 && p < 1.0) => {
            return Err(violation("capping", "capping.percentile must be between 0 and 1, e.g. 0.99"))
        }
        _ => {}
    }
    if let Some(h) = window_hours {
        if !(h.is_finite() && h > 0.0 && h <= MAX_WINDOW_HOURS) {
            return Err(violation(
                "window_hours",
                format!("window_hours must be above 0 and at most {MAX_WINDOW_HOURS}"),
            ));
        }
    }
    Ok(())
}

impl NewMetric {
    pub fn check(&self) -> Result<(), Violation> {
        check_key(&self.key)?;
        validate_name(&self.name)?;
        validate_description(self.description.as_deref())?;
        check_definition(
            self.kind,
            &self.event_type,
            self.value_property.as_deref(),
            self.denominator.as_ref(),
            self.quantile,
            &self.filters,
            self.capping,
            self.window_hours,
        )?;
        check_prior(self.prior)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(kind: MetricKind) -> NewMetric {
        serde_json::from_value(serde_json::json!({"key": "k", "name": "n", "kind": kind, "event_type": "purchase"}))
            .expect("metric")
    }

    #[test]
    fn definitions_are_checked_as_a_whole() {
        assert!(new(MetricKind::Conversion).check().is_ok());
        let field = |m: NewMetric| m.check().expect_err("invalid").field;
        assert_eq!(field(NewMetric { key: "no spaces".into(), ..new(MetricKind::Mean) }), "key");
        let with_value = NewMetric { value_property: Some("amount".into()), ..new(MetricKind::Conversion) };
        assert_eq!(field(with_value), "value_property");
        let capped = NewMetric { capping: Some(Capping::Percentile(1.5)), ..new(MetricKind::Mean) };
        assert_eq!(field(capped), "capping");
        let windowed = NewMetric { window_hours: Some(0.0), ..new(MetricKind::Mean) };
        assert_eq!(field(windowed), "window_hours");
        let filtered = NewMetric {
            filters: vec![Filter { property: "country".into(), value: serde_json::json!({"a": 1}) }],
            ..new(MetricKind::Mean)
        };
        assert_eq!(field(filtered), "filters");
        assert_eq!(filter_text(&serde_json::json!(5)), Some("5".into()));
        assert_eq!(filter_text(&serde_json::json!(true)), Some("true".into()));
    }

    #[test]
    fn an_experiments_metrics_are_distinct_keys_with_sane_margins() {
        let m = |v: serde_json::Value| serde_json::from_value::<ExperimentMetrics>(v).expect("metrics");
        let ok =
            m(serde_json::json!({"primary": "a", "secondary": ["b"], "guardrails": [{"metric": "c", "margin": 0.01}]}));
        assert!(ok.check().is_ok());
        assert_eq!(
            ok.entries().iter().map(|e| e.1).collect::<Vec<_>>(),
            [Role::Primary, Role::Secondary, Role::Guardrail]
        );
        assert!(m(serde_json::json!({"primary": "a", "secondary": ["a"]})).check().is_err());
        assert!(m(serde_json::json!({"guardrails": [{"metric": "c", "margin": -1}]})).check().is_err());
        assert!(serde_json::from_value::<ExperimentMetrics>(serde_json::json!({"primry": "a"})).is_err());
    }
}
