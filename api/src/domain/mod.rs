//! What the api is about, free of HTTP and of storage: experiments and their rules,
//! bucketing users into variants.

pub mod assignment;
pub mod experiment;
pub mod metric;
pub mod patch;
pub mod phase;
pub mod rollout;
pub mod rules;
pub mod targeting;

pub use assignment::{bucket, pick, Assignment};
pub use experiment::{Experiment, ExperimentPatch, NewExperiment, NewVariant, Status, Variant, Violation};
pub use phase::{Phase, PhaseReason};
