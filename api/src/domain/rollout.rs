//! Rollout settings of an experiment (docs/assignment.md): traffic share, targeting,
//! schedule, forced users, its place in a layer; layers and holdouts; the attributes an
//! assignment request carries. Each checked here, naming the field it breaks.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use common::event::{length_ok, MAX_USER_ID_CHARS};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

pub use super::experiment::Violation;

use super::{
    experiment::{violation, TOTAL_BP},
    rules::{HashKind, LayerRange},
    targeting::{Attr, Attributes, Condition},
};

/// Most forced users per experiment.
pub const MAX_FORCED: usize = 1000;
/// Attributes per assignment request, and their names' and values' lengths: as the
/// exposure they are stored with allows.
pub use common::event::{MAX_ATTRIBUTES, MAX_ATTRIBUTE_NAME_CHARS, MAX_ATTRIBUTE_VALUE_CHARS};
/// A layer's key: what `layers.key` accepts.
pub const LAYER_KEY_PATTERN: &str = "^[A-Za-z0-9_.-]{1,64}$";

/// Where a new experiment goes in a layer: a share (the first free range that fits) or an
/// exact range of the layer's buckets.
///
/// Rule the schema cannot express: exactly one of `percent` and `range`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"key": "checkout", "percent": 25}))]
pub struct LayerAsk {
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub key: String,
    /// Share of the layer's users, in (0, 100] with at most two decimals.
    #[serde(default)]
    #[schema(exclusive_minimum = 0, maximum = 100, multiple_of = 0.01)]
    pub percent: Option<f64>,
    /// `[start, end)` in basis points of the layer's bucket, 0 <= start < end <= 10000.
    #[serde(default)]
    pub range: Option<[u32; 2]>,
}

/// How a new experiment enters its layer, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// The first free range of this many basis points.
    Share(u32),
    Range([u32; 2]),
}

impl LayerAsk {
    pub fn check(&self) -> Result<Placement, Violation> {
        check_layer_key(&self.key, "layer.key")?;
        match (self.percent, self.range) {
            (Some(p), None) => Ok(Placement::Share(basis_points(p, "layer.percent", false)?)),
            (None, Some([s, e])) if s < e && e <= TOTAL_BP => Ok(Placement::Range([s, e])),
            (None, Some(_)) => Err(violation("layer.range", "a range is [start, end) with 0 <= start < end <= 10000")),
            _ => Err(violation("layer", "give exactly one of `percent` and `range`")),
        }
    }
}

pub fn check_layer_key(key: &str, field: &str) -> Result<(), Violation> {
    let ok = (1..=64).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(violation(field, "a layer key is 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.` and `-`"))
    }
}

/// A percentage with at most two decimals, in basis points: in [0, 100] when `zero_ok`,
/// else in (0, 100].
pub fn basis_points(pct: f64, field: &str, zero_ok: bool) -> Result<u32, Violation> {
    let in_range = pct.is_finite() && pct <= 100.0 && (pct > 0.0 || (zero_ok && pct == 0.0));
    if !in_range {
        let lower = if zero_ok { "[0" } else { "(0" };
        return Err(violation(field, format!("{field} must be a percentage in {lower}, 100]")));
    }
    let bp = (pct * 100.0).round();
    // 5e-324 is above 0 and "has two decimals" within the tolerance, yet 0 basis points.
    if (pct * 100.0 - bp).abs() > 1e-6 || (bp == 0.0 && !zero_ok) {
        return Err(violation(field, format!("{field} has at most two decimals (0.01 at the least)")));
    }
    Ok(bp as u32)
}

pub fn check_conditions(conditions: Option<&Value>) -> Result<(), Violation> {
    match conditions {
        Some(c) if !c.is_null() => Condition::parse(c, "conditions").map(|_| ()),
        _ => Ok(()),
    }
}

pub fn check_schedule(start_at: Option<DateTime<Utc>>, stop_at: Option<DateTime<Utc>>) -> Result<(), Violation> {
    match (start_at, stop_at) {
        (Some(start), Some(stop)) if start >= stop => Err(violation("stop_at", "stop_at must be after start_at")),
        _ => Ok(()),
    }
}

/// Forced users: at most [`MAX_FORCED`], valid user ids, each pinned to one of `variants`.
pub fn check_forced<'a>(
    forced: &BTreeMap<String, String>,
    variants: impl Iterator<Item = &'a str> + Clone,
) -> Result<(), Violation> {
    if forced.len() > MAX_FORCED {
        return Err(violation("forced", format!("at most {MAX_FORCED} forced users")));
    }
    for (user, variant) in forced {
        if !length_ok(user, MAX_USER_ID_CHARS) || user.contains('\0') {
            let message = format!("forced user ids are 1 to {MAX_USER_ID_CHARS} characters, without NUL");
            return Err(violation("forced", message));
        }
        if !variants.clone().any(|v| v == variant) {
            return Err(violation(
                format!("forced.{user}"),
                format!("`{variant}` is not a variant of this experiment"),
            ));
        }
    }
    Ok(())
}

/// The attributes of an assignment request: at most [`MAX_ATTRIBUTES`], names of 1 to
/// [`MAX_ATTRIBUTE_NAME_CHARS`] characters without NUL, text values of at most
/// [`MAX_ATTRIBUTE_VALUE_CHARS`]; numbers and booleans as they are. A violation names
/// `attributes.<name>`.
pub fn attributes(raw: impl IntoIterator<Item = (String, Value)>) -> Result<Attributes, Violation> {
    let mut out = Attributes::new();
    for (name, value) in raw {
        let field = format!("attributes.{name}");
        if !length_ok(&name, MAX_ATTRIBUTE_NAME_CHARS) || name.contains('\0') {
            let message = format!("attribute names are 1 to {MAX_ATTRIBUTE_NAME_CHARS} characters, without NUL");
            return Err(violation(field, message));
        }
        let attr = Attr::from_json(&value)
            .ok_or_else(|| violation(&field, "an attribute is a string, a number or a boolean"))?;
        if matches!(&attr, Attr::Text(t) if t.chars().count() > MAX_ATTRIBUTE_VALUE_CHARS) {
            return Err(violation(
                field,
                format!("attribute values are at most {MAX_ATTRIBUTE_VALUE_CHARS} characters"),
            ));
        }
        out.insert(name, attr);
        if out.len() > MAX_ATTRIBUTES {
            return Err(violation("attributes", format!("at most {MAX_ATTRIBUTES} attributes")));
        }
    }
    Ok(out)
}

/// Attributes as the text stored with the exposure.
pub fn attribute_texts(attrs: &Attributes) -> BTreeMap<String, String> {
    attrs.iter().map(|(k, v)| (k.clone(), v.text())).collect()
}

/// A layer: experiments in it own disjoint ranges of its bucket.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Layer {
    pub key: String,
    pub description: Option<String>,
    /// Hashed with the user id for the layer's bucket (docs/assignment.md).
    pub salt: String,
    pub created_at: DateTime<Utc>,
}

/// An experiment holding a range of a layer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LayerMember {
    pub id: i64,
    pub name: String,
    pub status: super::Status,
    pub range: [u32; 2],
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"key": "checkout", "description": "Checkout page experiments"}))]
pub struct NewLayer {
    /// 1 to 64 characters of A-Z, a-z, 0-9, `_`, `.` and `-`; unique.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub key: String,
    #[serde(default)]
    #[schema(max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub description: Option<String>,
}

/// A new holdout: `percent` of users get no variant of the experiments it covers.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"name": "Q4 holdout", "percent": 10}))]
pub struct NewHoldout {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000]*[^\u0000\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000]*$"
    )]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub description: Option<String>,
    /// Share held out, in (0, 100) with at most two decimals.
    #[schema(exclusive_minimum = 0, exclusive_maximum = 100, multiple_of = 0.01)]
    pub percent: f64,
    /// Hold users out of this layer's experiments only; absent: out of every experiment.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub layer: Option<String>,
}

/// `Some(value)` for a field that is present, `null` included: tells "set to null" from
/// "leave as it is" in a patch.
pub fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// Who an experiment assigns, and how (docs/assignment.md).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rollout {
    /// `sha256` (default) or `growthbook_v2`.
    pub hash: HashKind,
    /// The GrowthBook hash's seed (the salt unless set at creation).
    pub seed: String,
    /// Share of users who enter the experiment, 0 to 100.
    pub coverage_percent: f64,
    /// Targeting conditions on the request's attributes; null: everyone.
    #[schema(value_type = Option<Object>)]
    pub conditions: Option<Value>,
    /// No new assignments before this time.
    pub start_at: Option<DateTime<Utc>>,
    /// No new assignments from this time on.
    pub stop_at: Option<DateTime<Utc>>,
    /// User id -> variant name: QA users pinned to a variant, excluded from analysis.
    pub forced: BTreeMap<String, String>,
    /// A holdout: its `holdout` variant's users get no variant of the experiments it covers.
    pub holdout: bool,
    /// The layer whose experiments a holdout covers; null: every experiment.
    pub holdout_layer: Option<String>,
    /// The experiment's range in its layer; null when in no layer.
    pub layer: Option<LayerRange>,
}

impl Default for Rollout {
    fn default() -> Self {
        Rollout {
            hash: HashKind::Sha256,
            seed: String::new(),
            coverage_percent: 100.0,
            conditions: None,
            start_at: None,
            stop_at: None,
            forced: BTreeMap::new(),
            holdout: false,
            holdout_layer: None,
            layer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn layer_asks_take_a_share_or_a_range() {
        let ask = |v: Value| serde_json::from_value::<LayerAsk>(v).expect("json").check();
        assert_eq!(ask(json!({"key": "k", "percent": 25})), Ok(Placement::Share(2500)));
        assert_eq!(ask(json!({"key": "k", "range": [0, 10000]})), Ok(Placement::Range([0, 10000])));
        for (bad, field) in [
            (json!({"key": "k"}), "layer"),
            (json!({"key": "k", "percent": 10, "range": [0, 5]}), "layer"),
            (json!({"key": "k", "range": [5, 5]}), "layer.range"),
            (json!({"key": "k", "range": [0, 10001]}), "layer.range"),
            (json!({"key": "k", "percent": 0}), "layer.percent"),
            (json!({"key": "k", "percent": 10.001}), "layer.percent"),
            (json!({"key": "k", "percent": 5e-324}), "layer.percent"),
            (json!({"key": "a b", "percent": 10}), "layer.key"),
        ] {
            assert_eq!(ask(bad.clone()).expect_err("refused").field, field, "{bad}");
        }
    }

    #[test]
    fn attributes_are_bounded_and_name_the_culprit() {
        let attrs = attributes([("country".to_owned(), json!("DE")), ("age".to_owned(), json!(30))]).expect("ok");
        assert_eq!(attrs.get("age"), Some(&Attr::Number(30.0)));
        let err = |raw: Vec<(String, Value)>| attributes(raw).expect_err("refused").field;
        assert_eq!(err(vec![("x".into(), json!([1]))]), "attributes.x");
        assert_eq!(err(vec![("x".into(), json!("v".repeat(1025)))]), "attributes.x");
        assert_eq!(err(vec![("".into(), json!("v"))]), "attributes.");
        assert_eq!(err((0..51).map(|i| (format!("a{i}"), json!(i))).collect()), "attributes");
        assert_eq!(attribute_texts(&attrs).get("age").map(String::as_str), Some("30"));
    }

    #[test]
    fn forced_users_name_existing_variants() {
        let forced = BTreeMap::from([("qa-1".to_owned(), "b".to_owned())]);
        check_forced(&forced, ["a", "b"].into_iter()).expect("ok");
        assert_eq!(check_forced(&forced, ["a", "c"].into_iter()).expect_err("unknown").field, "forced.qa-1");
        let many: BTreeMap<_, _> = (0..=MAX_FORCED).map(|i| (format!("u{i}"), "a".to_owned())).collect();
        assert_eq!(check_forced(&many, ["a"].into_iter()).expect_err("too many").field, "forced");
    }
}
