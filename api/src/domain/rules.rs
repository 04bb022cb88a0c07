//! The evaluation rules of `docs/assignment.md`: the configuration document of
//! `GET /sdk/config` and the function that decides a user's variant from it. The api
//! decides new assignments with the very same function, so local evaluators and the api
//! agree by construction; the shared vectors (`clients/vectors.json`) check all three.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    assignment::{bucket, coverage_bucket, gb_v2},
    experiment::{Experiment, Status},
    rollout::Layer,
    targeting::{Attributes, Condition},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum HashKind {
    /// `bucket(salt, id)`, see docs/assignment.md.
    #[default]
    Sha256,
    /// GrowthBook's version 2 hash and bucket ranges, for teams coming from GrowthBook.
    GrowthbookV2,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SdkConfig {
    pub version: u32,
    pub layers: Vec<SdkLayer>,
    pub holdouts: Vec<SdkHoldout>,
    pub experiments: Vec<SdkExperiment>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SdkLayer {
    pub key: String,
    pub salt: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SdkHoldout {
    pub experiment_id: i64,
    /// The layer whose experiments it holds users out of; null: every experiment.
    pub layer: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SdkVariant {
    pub name: String,
    pub allocation_percent: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LayerRange {
    pub key: String,
    /// `[start, end)` in basis points of the layer's bucket.
    pub range: [u32; 2],
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SdkExperiment {
    pub id: i64,
    pub status: Status,
    pub salt: String,
    pub hash: HashKind,
    pub seed: String,
    pub variants: Vec<SdkVariant>,
    pub coverage_percent: f64,
    pub conditions: Option<Value>,
    pub layer: Option<LayerRange>,
    pub start_at: Option<DateTime<Utc>>,
    pub stop_at: Option<DateTime<Utc>>,
    pub forced: BTreeMap<String, String>,
    pub holdout: bool,
}

/// Why a user has, or has not, a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Assigned,
    Forced,
    NotRunning,
    NotStarted,
    Ended,
    Holdout,
    NotInLayer,
    NotTargeted,
    NotInTraffic,
    UnknownExperiment,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub variant: Option<String>,
    pub reason: Reason,
}

impl Decision {
    fn none(reason: Reason) -> Self {
        Decision { variant: None, reason }
    }
}

/// A configuration ready to decide: conditions compiled once, experiments indexed.
pub struct Rules {
    config: SdkConfig,
    conditions: HashMap<i64, Condition>,
    index: HashMap<i64, usize>,
}

impl Rules {
    /// Compiles every experiment's conditions; a condition that does not compile makes its
    /// experiment target nobody (the api refuses such conditions when they are set).
    pub fn new(config: SdkConfig) -> Self {
        let index = config.experiments.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
        let conditions = config
            .experiments
            .iter()
            .filter_map(|e| {
                Some((e.id, Condition::parse(e.conditions.as_ref()?, "conditions").unwrap_or_else(|_| nobody())))
            })
            .collect();
        Self { config, conditions, index }
    }

    pub fn config(&self) -> &SdkConfig {
        &self.config
    }

    pub fn experiment(&self, id: i64) -> Option<&SdkExperiment> {
        self.index.get(&id).map(|&i| &self.config.experiments[i])
    }

    pub fn decide(&self, experiment_id: i64, id: &str, attrs: &Attributes, now: DateTime<Utc>) -> Decision {
        match self.experiment(experiment_id) {
            Some(e) => self.decide_for(e, id, attrs, now),
            None => Decision::none(Reason::UnknownExperiment),
        }
    }

    /// The holdouts that cover experiment `e` (global ones and those of its layer).
    pub fn holdouts_of<'s>(&'s self, e: &'s SdkExperiment) -> impl Iterator<Item = i64> + 's {
        let layer = e.layer.as_ref().map(|l| l.key.as_str());
        self.config
            .holdouts
            .iter()
            .filter(move |h| !e.holdout && (h.layer.is_none() || h.layer.as_deref() == layer))
            .map(|h| h.experiment_id)
    }

    fn decide_for(&self, e: &SdkExperiment, id: &str, attrs: &Attributes, now: DateTime<Utc>) -> Decision {
        if let Some(variant) = e.forced.get(id).filter(|_| e.status != Status::Stopped) {
            return Decision { variant: Some(variant.clone()), reason: Reason::Forced };
        }
        if e.status != Status::Running {
            return Decision::none(Reason::NotRunning);
        }
        if e.start_at.is_some_and(|t| now < t) {
            return Decision::none(Reason::NotStarted);
        }
        if e.stop_at.is_some_and(|t| now >= t) {
            return Decision::none(Reason::Ended);
        }
        if !e.holdout && self.held_out(e, id, attrs, now) {
            return Decision::none(Reason::Holdout);
        }
        if let Some(layer) = &e.layer {
            let salt = self.config.layers.iter().find(|l| l.key == layer.key).map(|l| l.salt.as_str());
            if !salt.is_some_and(|s| (layer.range[0]..layer.range[1]).contains(&bucket(s, id))) {
                return Decision::none(Reason::NotInLayer);
            }
        }
        if self.conditions.get(&e.id).is_some_and(|c| !c.matches(attrs)) {
            return Decision::none(Reason::NotTargeted);
        }
        match pick(e, id) {
            Some(v) => Decision { variant: Some(v.to_owned()), reason: Reason::Assigned },
            None => Decision::none(Reason::NotInTraffic),
        }
    }

    /// Does a holdout that applies to `e` hold `id` out?
    fn held_out(&self, e: &SdkExperiment, id: &str, attrs: &Attributes, now: DateTime<Utc>) -> bool {
        self.holdouts_of(e).any(|h| self.decide(h, id, attrs, now).variant.as_deref() == Some(HOLDOUT_VARIANT))
    }
}

/// The variant of a holdout whose users get no experiment.
pub const HOLDOUT_VARIANT: &str = "holdout";
/// The other variant of a holdout (the control).
pub const GENERAL_VARIANT: &str = "general";

impl SdkConfig {
    /// The document `GET /sdk/config` serves, from the stored experiments and layers.
    pub fn of(experiments: &[Experiment], layers: &[Layer]) -> SdkConfig {
        SdkConfig {
            version: 1,
            layers: layers.iter().map(|l| SdkLayer { key: l.key.clone(), salt: l.salt.clone() }).collect(),
            holdouts: experiments
                .iter()
                .filter(|e| e.rollout.holdout)
                .map(|e| SdkHoldout { experiment_id: e.id, layer: e.rollout.holdout_layer.clone() })
                .collect(),
            experiments: experiments.iter().map(SdkExperiment::of).collect(),
        }
    }
}

impl SdkExperiment {
    fn of(e: &Experiment) -> SdkExperiment {
        let r = &e.rollout;
        SdkExperiment {
            id: e.id,
            status: e.status,
            salt: e.salt.clone(),
            hash: r.hash,
            seed: r.seed.clone(),
            variants: e
                .variants
                .iter()
                .map(|v| SdkVariant { name: v.name.clone(), allocation_percent: v.allocation_percent })
                .collect(),
            coverage_percent: r.coverage_percent,
            conditions: r.conditions.clone(),
            layer: r.layer.clone(),
            start_at: r.start_at,
            stop_at: r.stop_at,
            forced: r.forced.clone(),
            holdout: r.holdout,
        }
    }
}

fn nobody() -> Condition {
    Condition::parse(&serde_json::json!({"$or": []}), "conditions").unwrap_or_else(|_| unreachable!())
}

fn basis_points(percent: f64) -> u32 {
    (percent * 100.0).round().clamp(0.0, 10_000.0) as u32
}

/// Rule 7 of docs/assignment.md: traffic, then the variant.
fn pick<'e>(e: &'e SdkExperiment, id: &str) -> Option<&'e str> {
    match e.hash {
        HashKind::Sha256 => {
            if coverage_bucket(&e.salt, id) >= basis_points(e.coverage_percent) {
                return None;
            }
            let b = bucket(&e.salt, id);
            let mut upper = 0;
            e.variants.iter().find(|v| {
                upper += basis_points(v.allocation_percent);
                b < upper
            })
        }
        HashKind::GrowthbookV2 => {
            let (n, c) = (gb_v2(&e.seed, id), e.coverage_percent / 100.0);
            let mut start = 0.0;
            e.variants.iter().find(|v| {
                let w = v.allocation_percent / 100.0;
                let hit = start <= n && n < start + c * w;
                start += w;
                hit
            })
        }
    }
    .map(|v| v.name.as_str())
}
