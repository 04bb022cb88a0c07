//! The shared test vectors of `clients/vectors.json` (docs/assignment.md), checked against
//! the api's own functions: the hashes, the conditions (matching and the 400 paths of
//! invalid ones) and whole evaluations through `Rules`, the function that also decides the
//! api's new assignments. The Python and JavaScript evaluators check the same file
//! (`clients/check`).

use std::{collections::BTreeMap, path::Path};

use api::domain::{
    assignment::{bucket, coverage_bucket, gb_v2},
    rules::{Rules, SdkConfig},
    targeting::{Attr, Attributes, Condition},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Vectors {
    hash: Vec<HashVector>,
    conditions: Vec<ConditionVector>,
    evaluations: Vec<Evaluation>,
    validations: Vec<Validation>,
}

#[derive(Deserialize)]
struct HashVector {
    kind: String,
    #[serde(default)]
    salt: String,
    #[serde(default)]
    seed: String,
    id: String,
    expected: f64,
}

#[derive(Deserialize)]
struct ConditionVector {
    name: String,
    condition: Value,
    attributes: BTreeMap<String, Value>,
    expected: bool,
}

#[derive(Deserialize)]
struct Evaluation {
    name: String,
    config: SdkConfig,
    experiment_id: i64,
    user_id: String,
    attributes: BTreeMap<String, Value>,
    now: DateTime<Utc>,
    expected: Value,
}

#[derive(Deserialize)]
struct Validation {
    name: String,
    condition: Value,
    expected: Vec<String>,
}

fn vectors() -> Vectors {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../clients/vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("clients/vectors.json")
}

fn attributes(values: &BTreeMap<String, Value>) -> Attributes {
    values.iter().filter_map(|(k, v)| Some((k.clone(), Attr::from_json(v)?))).collect()
}

#[test]
fn every_hash_vector() {
    let v = vectors();
    assert!(v.hash.len() >= 60, "{} hash vectors", v.hash.len());
    for h in &v.hash {
        let got = match h.kind.as_str() {
            "bucket" => f64::from(bucket(&h.salt, &h.id)),
            "coverage_bucket" => f64::from(coverage_bucket(&h.salt, &h.id)),
            "gb_v2" => gb_v2(&h.seed, &h.id),
            other => panic!("unknown hash kind {other}"),
        };
        assert_eq!(got, h.expected, "{}({:?}, {:?})", h.kind, if h.salt.is_empty() { &h.seed } else { &h.salt }, h.id);
    }
}

#[test]
fn every_condition_vector() {
    let v = vectors();
    assert!(v.conditions.len() >= 100, "{} condition vectors", v.conditions.len());
    let failures: Vec<String> = v
        .conditions
        .iter()
        .filter_map(|c| {
            let parsed = Condition::parse(&c.condition, "conditions")
                .map_err(|e| format!("{}: refused: {} {}", c.name, e.field, e.message))
                .ok()?;
            let got = parsed.matches(&attributes(&c.attributes));
            (got != c.expected).then(|| format!("{}: expected {}, got {got}", c.name, c.expected))
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} failed:\n{}", failures.len(), v.conditions.len(), failures.join("\n"));
}

#[test]
fn every_validation_vector_names_the_part() {
    let v = vectors();
    let failures: Vec<String> = v
        .validations
        .iter()
        .filter_map(|c| match (Condition::parse(&c.condition, "conditions"), c.expected.is_empty()) {
            (Ok(_), true) => None,
            (Ok(_), false) => Some(format!("{}: accepted, expected {:?}", c.name, c.expected)),
            (Err(e), true) => Some(format!("{}: refused {} ({}), expected valid", c.name, e.field, e.message)),
            (Err(e), false) if c.expected.contains(&e.field) => None,
            (Err(e), false) => Some(format!("{}: named {}, expected one of {:?}", c.name, e.field, c.expected)),
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} failed:\n{}", failures.len(), v.validations.len(), failures.join("\n"));
}

#[test]
fn every_evaluation_vector() {
    let v = vectors();
    assert!(v.evaluations.len() >= 200, "{} evaluation vectors", v.evaluations.len());
    let failures: Vec<String> = v
        .evaluations
        .iter()
        .filter_map(|e| {
            let decision =
                Rules::new(e.config.clone()).decide(e.experiment_id, &e.user_id, &attributes(&e.attributes), e.now);
            let got = serde_json::json!({"variant": decision.variant, "reason": decision.reason});
            (got != e.expected).then(|| format!("{}: expected {}, got {got}", e.name, e.expected))
        })
        .collect();
    assert!(failures.is_empty(), "{} of {} failed:\n{}", failures.len(), v.evaluations.len(), failures.join("\n"));
}
