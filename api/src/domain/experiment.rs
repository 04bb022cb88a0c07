//! Experiments and variants: what they are and the rules a new or changed one must follow.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    metric::{ExperimentMetrics, Metric},
    Phase,
};
pub use super::{patch::ExperimentPatch, rollout::Rollout};
use super::{
    rollout::{self, LayerAsk, Placement},
    rules::HashKind,
};
use crate::stats::{Significance, DEFAULT_SEQUENTIAL_TUNING};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_DESCRIPTION_CHARS: usize = 10_000;
pub const MAX_VARIANTS: usize = 20;
pub const MAX_VARIANT_NAME_CHARS: usize = 100;
/// Allocations are whole basis points (1/100 of a percent); they sum to this.
pub const TOTAL_BP: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum Status {
    /// Assigns new users.
    Running,
    /// Keeps existing assignments, assigns nobody new.
    Paused,
    /// Like paused, for good.
    Stopped,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Variant {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    pub allocation_percent: f64,
    /// Allocation in basis points (1/100 %); the bucketing uses these.
    #[serde(skip)]
    pub allocation_bp: u32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Experiment {
    pub id: i64,
    pub name: String,
    pub description: Option<String>,
    pub status: Status,
    /// Hashed with the user id for bucketing; see README "Assignment".
    pub salt: String,
    /// In order; the first is the control.
    pub variants: Vec<Variant>,
    /// Which test decides `significant` in the results (default `sequential`).
    pub significance: Significance,
    /// Sample size (both variants) around which the sequential intervals are tightest.
    pub sequential_tuning: f64,
    #[serde(flatten)]
    pub rollout: Rollout,
    /// Periods with one set of allocations, in order; the last is the current one (see
    /// `GET /experiments/{id}/results?phase=`).
    pub phases: Vec<Phase>,
    /// The metrics the experiment is decided on (`GET /experiments/{id}/results` without
    /// `event_type` answers for all of them).
    pub metrics: ExperimentMetrics,
    /// Their definitions, in the order of `metrics`: primary, secondaries, guardrails.
    #[serde(skip)]
    pub metric_definitions: Vec<Metric>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Names: at least one character that is not blank (Rust's `char::is_whitespace`, the
/// Unicode White_Space property, spelled out) and no NUL (Postgres text cannot hold it).
/// `name_pattern_is_the_rule` keeps it equal to [`validate_name`]'s rule.
pub const NAME_PATTERN: &str =
    r"^[^\u0000]*[^\u0000\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000]*$";
/// Free text: no NUL.
pub const TEXT_PATTERN: &str = r"^[^\u0000]*$";

/// A new experiment.
///
/// Rules the schema cannot express: variant names are unique within the experiment and
/// the allocations sum to exactly 100.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "name": "Button Color Test",
    "description": "Testing red vs blue for purchase button clicks.",
    "variants": [{"name": "red_button", "allocation_percent": 50.0}, {"name": "blue_button", "allocation_percent": 50.0}]
}))]
pub struct NewExperiment {
    /// 1 to 200 characters, not only blanks, no NUL; names need not be unique.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\u0000\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000]*$"
    )]
    pub name: String,
    /// At most 10 000 characters, no NUL.
    #[serde(default)]
    #[schema(max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub description: Option<String>,
    /// 2 to 20 variants with unique names; allocations sum to 100. The first is the control.
    #[schema(min_items = 2, max_items = 20)]
    pub variants: Vec<NewVariant>,
    /// `sequential` (default: safe to look at results any time) or `fixed_horizon`.
    #[serde(default)]
    pub significance: Option<Significance>,
    /// Default 5000.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 1e9)]
    pub sequential_tuning: Option<f64>,
    /// `sha256` (default) or `growthbook_v2` (GrowthBook's hash: users keep the variants
    /// GrowthBook gave them when `seed` is the GrowthBook experiment's seed).
    #[serde(default)]
    pub hash: Option<HashKind>,
    /// The GrowthBook hash's seed; default: the experiment's salt.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256, pattern = r"^[^\u0000]*$")]
    pub seed: Option<String>,
    /// Share of users who enter, 0 to 100 (default 100) with at most two decimals.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100, multiple_of = 0.01)]
    pub coverage_percent: Option<f64>,
    /// Targeting conditions (docs/assignment.md, "Conditions"); null: everyone.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub conditions: Option<Value>,
    #[serde(default)]
    pub start_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub stop_at: Option<DateTime<Utc>>,
    /// User id -> variant name, at most 1000.
    #[serde(default)]
    pub forced: Option<BTreeMap<String, String>>,
    /// A place in a layer: a share of it or an exact range.
    #[serde(default)]
    pub layer: Option<LayerAsk>,
    /// The catalog metrics (`POST /metrics`) the experiment is decided on.
    #[serde(default)]
    pub metrics: Option<ExperimentMetrics>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewVariant {
    /// 1 to 100 characters, not only blanks, no NUL, unique in the experiment.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^[^\u0000]*[^\u0000\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000]*$"
    )]
    pub name: String,
    /// A percentage in (0, 100] with at most two decimals.
    #[schema(exclusive_minimum = 0, maximum = 100, multiple_of = 0.01)]
    pub allocation_percent: f64,
}

/// A broken rule, naming the field (`variants[1].name`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

pub(crate) fn violation(field: impl Into<String>, message: impl Into<String>) -> Violation {
    Violation { field: field.into(), message: message.into() }
}

/// What to store for a new experiment, once its rules are checked.
pub struct ValidExperiment {
    pub name: String,
    pub description: Option<String>,
    /// Names and allocations in basis points, in order.
    pub variants: Vec<(String, u32)>,
    pub significance: Significance,
    pub sequential_tuning: f64,
    pub hash: HashKind,
    pub seed: Option<String>,
    pub coverage_bp: u32,
    pub conditions: Option<Value>,
    pub start_at: Option<DateTime<Utc>>,
    pub stop_at: Option<DateTime<Utc>>,
    pub forced: BTreeMap<String, String>,
    /// `Some(layer key)` for a holdout; `Some(None)` for a holdout of every experiment.
    pub holdout: Option<Option<String>>,
    pub layer: Option<(String, Placement)>,
    pub metrics: ExperimentMetrics,
}

impl NewExperiment {
    pub fn validate(self) -> Result<ValidExperiment, Violation> {
        validate_name(&self.name)?;
        validate_description(self.description.as_deref())?;
        validate_tuning(self.sequential_tuning)?;
        let bps = validate_variants(&self.variants)?;
        if self.seed.as_ref().is_some_and(|s| s.is_empty() || s.chars().count() > 256 || s.contains('\0')) {
            return Err(violation("seed", "seed must be 1 to 256 characters, no NUL"));
        }
        let coverage_bp = match self.coverage_percent {
            Some(p) => rollout::basis_points(p, "coverage_percent", true)?,
            None => TOTAL_BP,
        };
        rollout::check_conditions(self.conditions.as_ref())?;
        rollout::check_schedule(self.start_at, self.stop_at)?;
        let forced = self.forced.unwrap_or_default();
        rollout::check_forced(&forced, self.variants.iter().map(|v| v.name.as_str()))?;
        let layer = match &self.layer {
            Some(ask) => Some((ask.key.clone(), ask.check()?)),
            None => None,
        };
        let metrics = self.metrics.unwrap_or_default();
        metrics.check()?;
        Ok(ValidExperiment {
            name: self.name.trim().to_owned(),
            description: self.description,
            variants: self.variants.into_iter().map(|v| v.name).zip(bps).collect(),
            significance: self.significance.unwrap_or(Significance::Sequential),
            sequential_tuning: self.sequential_tuning.unwrap_or(DEFAULT_SEQUENTIAL_TUNING),
            hash: self.hash.unwrap_or_default(),
            seed: self.seed,
            coverage_bp,
            conditions: self.conditions.filter(|c| !c.is_null()),
            start_at: self.start_at,
            stop_at: self.stop_at,
            forced,
            holdout: None,
            layer,
            metrics,
        })
    }
}

/// Not only blanks, no NUL, at most `max` characters (see [`NAME_PATTERN`]).
fn name_ok(name: &str, max: usize) -> bool {
    !name.trim().is_empty() && !name.contains('\0') && name.chars().count() <= max
}

pub fn validate_name(name: &str) -> Result<(), Violation> {
    if !name_ok(name, MAX_NAME_CHARS) {
        return Err(violation(
            "name",
            format!("name must be 1 to {MAX_NAME_CHARS} characters, not only blanks, no NUL"),
        ));
    }
    Ok(())
}

pub(crate) fn validate_tuning(tuning: Option<f64>) -> Result<(), Violation> {
    match tuning {
        Some(t) if !(1.0..=1e9).contains(&t) => Err(violation(
            "sequential_tuning",
            "sequential_tuning must be a number from 1 to 1e9 (a sample size; default 5000)",
        )),
        _ => Ok(()),
    }
}

pub(crate) fn validate_description(description: Option<&str>) -> Result<(), Violation> {
    if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_CHARS || d.contains('\0')) {
        return Err(violation(
            "description",
            format!("description must be at most {MAX_DESCRIPTION_CHARS} characters, no NUL"),
        ));
    }
    Ok(())
}

/// Checks the variant rules and converts allocations to basis points.
pub fn validate_variants(variants: &[NewVariant]) -> Result<Vec<u32>, Violation> {
    if !(2..=MAX_VARIANTS).contains(&variants.len()) {
        return Err(violation("variants", format!("an experiment has 2 to {MAX_VARIANTS} variants")));
    }
    let mut seen = HashSet::new();
    let mut bps = Vec::with_capacity(variants.len());
    for (i, v) in variants.iter().enumerate() {
        if !name_ok(&v.name, MAX_VARIANT_NAME_CHARS) {
            let message =
                format!("variant names are 1 to {MAX_VARIANT_NAME_CHARS} characters, not only blanks, no NUL");
            return Err(violation(format!("variants[{i}].name"), message));
        }
        if !seen.insert(v.name.as_str()) {
            return Err(violation(format!("variants[{i}].name"), format!("duplicate variant name `{}`", v.name)));
        }
        bps.push(
            basis_points(v.allocation_percent)
                .map_err(|m| violation(format!("variants[{i}].allocation_percent"), m))?,
        );
    }
    let total: u32 = bps.iter().sum();
    if total != TOTAL_BP {
        return Err(violation(
            "variants",
            format!("allocations must sum to 100 (they sum to {})", f64::from(total) / 100.0),
        ));
    }
    Ok(bps)
}

/// A percentage in (0, 100] with at most two decimals, in basis points.
fn basis_points(pct: f64) -> Result<u32, &'static str> {
    if !pct.is_finite() || pct <= 0.0 || pct > 100.0 {
        return Err("allocation_percent must be in (0, 100]");
    }
    let bp = (pct * 100.0).round();
    if (pct * 100.0 - bp).abs() > 1e-6 || bp == 0.0 {
        return Err("allocation_percent has at most two decimals (0.01 at the least)");
    }
    Ok(bp as u32)
}

impl Variant {
    /// Variants `v0`, `v1`, ... with these allocations in basis points, for tests.
    #[cfg(test)]
    pub fn test_set(bps: &[u32]) -> Vec<Variant> {
        bps.iter()
            .enumerate()
            .map(|(i, &bp)| Variant {
                id: i as i64,
                name: format!("v{i}"),
                allocation_percent: f64::from(bp) / 100.0,
                allocation_bp: bp,
            })
            .collect()
    }
}

impl Experiment {
    /// A running experiment 1 with variants `v0`, `v1`, ... (see [`Variant::test_set`]) and
    /// fixed-horizon significance, for tests.
    #[cfg(test)]
    pub fn test(bps: &[u32]) -> Experiment {
        Experiment {
            id: 1,
            name: "e".into(),
            description: None,
            status: Status::Running,
            salt: "s".into(),
            variants: Variant::test_set(bps),
            significance: Significance::FixedHorizon,
            sequential_tuning: DEFAULT_SEQUENTIAL_TUNING,
            rollout: Rollout::default(),
            phases: Vec::new(),
            metrics: ExperimentMetrics::default(),
            metric_definitions: Vec::new(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(name: &str, pct: f64) -> NewVariant {
        NewVariant { name: name.into(), allocation_percent: pct }
    }

    fn field_of(e: Violation) -> String {
        e.field
    }

    #[test]
    fn allocations_become_basis_points() {
        assert_eq!(validate_variants(&[v("a", 50.0), v("b", 50.0)]).expect("ok"), vec![5000, 5000]);
        assert_eq!(
            validate_variants(&[v("a", 33.33), v("b", 33.33), v("c", 33.34)]).expect("ok"),
            vec![3333, 3333, 3334]
        );
    }

    #[test]
    fn variant_rules_name_the_field() {
        assert_eq!(field_of(validate_variants(&[v("a", 100.0)]).expect_err("one")), "variants");
        assert_eq!(field_of(validate_variants(&[v("a", 50.0), v("a", 50.0)]).expect_err("dup")), "variants[1].name");
        assert_eq!(
            field_of(validate_variants(&[v("a", 0.0), v("b", 100.0)]).expect_err("zero")),
            "variants[0].allocation_percent"
        );
        assert_eq!(
            field_of(validate_variants(&[v("a", 101.0), v("b", -1.0)]).expect_err("range")),
            "variants[0].allocation_percent"
        );
        assert_eq!(
            field_of(validate_variants(&[v("a", f64::NAN), v("b", 50.0)]).expect_err("nan")),
            "variants[0].allocation_percent"
        );
        assert_eq!(field_of(validate_variants(&[v("a", 40.0), v("b", 50.0)]).expect_err("sum")), "variants");
        assert_eq!(
            field_of(validate_variants(&[v("a", 33.333), v("b", 66.667)]).expect_err("decimals")),
            "variants[0].allocation_percent"
        );
        assert_eq!(
            field_of(validate_variants(&[v("a", 5e-324), v("b", 100.0)]).expect_err("0 basis points")),
            "variants[0].allocation_percent"
        );
        assert_eq!(field_of(validate_variants(&[v(" ", 50.0), v("b", 50.0)]).expect_err("blank")), "variants[0].name");
        assert_eq!(field_of(validate_name("").expect_err("empty")), "name");
        assert_eq!(field_of(validate_name(&"n".repeat(201)).expect_err("long")), "name");
        validate_name(&"n".repeat(200)).expect("200 chars is fine");
        assert_eq!(field_of(validate_name("a\0b").expect_err("NUL")), "name");
        assert_eq!(field_of(validate_name("\u{85}\u{3000}").expect_err("Unicode blanks")), "name");
        validate_name("\u{feff}").expect("U+FEFF is not White_Space");
    }

    /// The blank class of [`NAME_PATTERN`], as `char::is_whitespace` defines blanks.
    fn blank_class() -> String {
        let blanks: Vec<u32> =
            (0..=0x10FFFF).filter_map(char::from_u32).filter(|c| c.is_whitespace()).map(u32::from).collect();
        let mut class = String::new();
        let mut i = 0;
        while i < blanks.len() {
            let start = blanks[i];
            while i + 1 < blanks.len() && blanks[i + 1] == blanks[i] + 1 {
                i += 1;
            }
            class += &match blanks[i] - start {
                0 => format!("\\u{start:04X}"),
                1 => format!("\\u{start:04X}\\u{:04X}", blanks[i]),
                _ => format!("\\u{start:04X}-\\u{:04X}", blanks[i]),
            };
            i += 1;
        }
        class
    }

    #[test]
    fn name_pattern_is_the_rule() {
        let nul = "\\u0000";
        assert_eq!(NAME_PATTERN, format!("^[^{nul}]*[^{nul}{}][^{nul}]*$", blank_class()));
        assert_eq!(TEXT_PATTERN, format!("^[^{nul}]*$"));
        // utoipa takes patterns as literals only: the schemas must repeat the constants.
        let schema = |s: utoipa::openapi::RefOr<utoipa::openapi::Schema>| serde_json::to_value(s).expect("json");
        let new = schema(<NewExperiment as utoipa::PartialSchema>::schema());
        let patch = schema(<ExperimentPatch as utoipa::PartialSchema>::schema());
        let variant = schema(<NewVariant as utoipa::PartialSchema>::schema());
        let holdout = schema(<super::super::rollout::NewHoldout as utoipa::PartialSchema>::schema());
        for (pattern, expected) in [
            (&new["properties"]["name"]["pattern"], NAME_PATTERN),
            (&patch["properties"]["name"]["pattern"], NAME_PATTERN),
            (&variant["properties"]["name"]["pattern"], NAME_PATTERN),
            (&holdout["properties"]["name"]["pattern"], NAME_PATTERN),
            (&holdout["properties"]["description"]["pattern"], TEXT_PATTERN),
            (&new["properties"]["description"]["pattern"], TEXT_PATTERN),
            (&patch["properties"]["description"]["pattern"], TEXT_PATTERN),
        ] {
            assert_eq!(pattern.as_str(), Some(expected));
        }
    }
}
