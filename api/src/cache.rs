//! What one api process keeps in memory, each bounded (see README "Scaling out"):
//!
//! - [`ConfigCache`]: the rollout configuration of every experiment and layer (what
//!   `GET /sdk/config` serves and assignment decides with) for `api.experiment_cache_ttl`;
//!   reloaded at once after a local change or when an experiment it lacks is asked for;
//!   a stale copy keeps serving while Postgres is down.
//! - [`ExperimentCache`]: experiment definitions for `api.experiment_cache_ttl`, at most
//!   [`MAX_EXPERIMENTS`] of them; a stale copy keeps serving while Postgres is down.
//! - [`AssignmentCache`]: committed assignments, at most `api.assignment_cache_entries`
//!   (about 100 bytes each). A committed assignment never changes (the first one wins
//!   forever), so a cached copy is never stale and a repeat request skips Postgres.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::{
    domain::{
        rules::{Rules, SdkConfig},
        Experiment,
    },
    storage::{self, postgres::StoredAssignment, StorageError},
};

/// One load of the configuration: the rules to decide with, the experiments (with their
/// variants' ids) and the document as served, with its ETag.
pub struct Snapshot {
    pub rules: Rules,
    pub experiments: HashMap<i64, Experiment>,
    pub body: axum::body::Bytes,
    pub etag: String,
    /// When its load started: it holds every change committed before.
    loaded: Instant,
}

impl Snapshot {
    async fn load(db: &PgPool) -> Result<Snapshot, StorageError> {
        let loaded = Instant::now();
        let experiments = storage::postgres::all_experiments(db).await?;
        let layers = storage::postgres::layers(db).await?;
        let config = SdkConfig::of(&experiments, &layers);
        let body = axum::body::Bytes::from(serde_json::to_vec(&config).unwrap_or_default());
        let etag = format!("\"{}\"", hex(&Sha256::digest(&body)[..16]));
        Ok(Snapshot {
            rules: Rules::new(config),
            experiments: experiments.into_iter().map(|e| (e.id, e)).collect(),
            body,
            etag,
            loaded,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub struct ConfigCache {
    ttl: Duration,
    current: RwLock<Option<Arc<Snapshot>>>,
    /// One reload at a time; who waited for it uses its result.
    reloading: tokio::sync::Mutex<()>,
    /// The last local change: snapshots loaded before it are stale.
    changed: Mutex<Option<Instant>>,
}

impl ConfigCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, current: RwLock::default(), reloading: tokio::sync::Mutex::default(), changed: Mutex::default() }
    }

    fn current(&self) -> Option<Arc<Snapshot>> {
        self.current.read().ok().and_then(|c| c.clone())
    }

    /// The configuration, fresh within the TTL; a stale one while Postgres is unavailable.
    pub async fn get(&self, db: &PgPool) -> Result<Arc<Snapshot>, StorageError> {
        let changed = self.changed.lock().ok().and_then(|c| *c);
        match self.current() {
            Some(s) if s.loaded.elapsed() < self.ttl && changed.is_none_or(|c| s.loaded > c) => Ok(s),
            _ => self.reload(db, Instant::now()).await,
        }
    }

    /// The configuration holding experiment `id`: reloaded once when the current one lacks
    /// it but Postgres has it (created by another api instance); `None` when it does not exist.
    pub async fn with(&self, db: &PgPool, id: i64) -> Result<Option<Arc<Snapshot>>, StorageError> {
        let asked = Instant::now();
        let snapshot = self.get(db).await?;
        if snapshot.experiments.contains_key(&id) {
            return Ok(Some(snapshot));
        }
        if storage::postgres::experiment(db, id).await?.is_none() {
            return Ok(None);
        }
        let snapshot = self.reload(db, asked).await?;
        Ok(snapshot.experiments.contains_key(&id).then_some(snapshot))
    }

    /// Loads unless a load that started after `asked` already finished.
    async fn reload(&self, db: &PgPool, asked: Instant) -> Result<Arc<Snapshot>, StorageError> {
        let _one = self.reloading.lock().await;
        let stale = self.current();
        if let Some(s) = &stale {
            if s.loaded > asked {
                return Ok(s.clone());
            }
        }
        let loaded = match Snapshot::load(db).await {
            Err(e) if e.is_unavailable() && stale.is_some() => {
                tracing::warn!(error = %e, "configuration reload failed: serving the previous one");
                return Ok(stale.unwrap_or_else(|| unreachable!()));
            }
            other => Arc::new(other?),
        };
        if let Ok(mut current) = self.current.write() {
            *current = Some(loaded.clone());
        }
        Ok(loaded)
    }

    /// After a local change: the next request loads the configuration again.
    pub fn invalidate(&self) {
        if let Ok(mut changed) = self.changed.lock() {
            *changed = Some(Instant::now());
        }
    }
}

/// Most experiment definitions one process caches.
pub const MAX_EXPERIMENTS: usize = 10_000;

pub struct ExperimentCache {
    ttl: Duration,
    entries: RwLock<HashMap<i64, (Instant, Arc<Experiment>)>>,
}

impl ExperimentCache {
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, entries: RwLock::default() }
    }

    /// The experiment, from the cache while fresh. When Postgres is unavailable, a stale
    /// copy still serves (results and existing assignments keep working through an outage).
    pub async fn get(&self, db: &PgPool, id: i64) -> Result<Option<Arc<Experiment>>, StorageError> {
        let cached = self.entries.read().ok().and_then(|entries| entries.get(&id).cloned());
        if let Some((at, e)) = &cached {
            if at.elapsed() < self.ttl {
                return Ok(Some(e.clone()));
            }
        }
        let loaded = match storage::postgres::experiment(db, id).await {
            Err(e) if e.is_unavailable() && cached.is_some() => return Ok(cached.map(|(_, e)| e)),
            other => other?,
        };
        let Some(experiment) = loaded else { return Ok(None) };
        let experiment = Arc::new(experiment);
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= MAX_EXPERIMENTS {
                let ttl = self.ttl;
                entries.retain(|_, (at, _)| at.elapsed() < ttl);
                if entries.len() >= MAX_EXPERIMENTS {
                    entries.clear();
                }
            }
            entries.insert(id, (Instant::now(), experiment.clone()));
        }
        Ok(Some(experiment))
    }

    pub fn invalidate(&self, id: i64) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(&id);
        }
    }

    /// After a change that may touch any experiment (a metric's definition): every entry is
    /// loaded again on its next use, and still serves while Postgres is unavailable.
    pub fn expire_all(&self) {
        let expired = Instant::now().checked_sub(self.ttl).unwrap_or_else(Instant::now);
        if let Ok(mut entries) = self.entries.write() {
            entries.values_mut().for_each(|(at, _)| *at = expired);
        }
    }
}

type Key = (i64, String);

/// Two generations of at most half the capacity each: when the current one is full it
/// becomes the previous one (dropping the older), so the most recently stored entries stay
/// and memory stays bounded without per-entry bookkeeping.
pub struct AssignmentCache {
    half: usize,
    generations: Mutex<(HashMap<Key, StoredAssignment>, HashMap<Key, StoredAssignment>)>,
}

impl AssignmentCache {
    pub fn new(capacity: usize) -> Self {
        Self { half: (capacity / 2).max(1), generations: Mutex::default() }
    }

    pub fn get(&self, experiment_id: i64, user_id: &str) -> Option<StoredAssignment> {
        let generations = self.generations.lock().ok()?;
        let key = (experiment_id, user_id.to_owned());
        generations.0.get(&key).or_else(|| generations.1.get(&key)).copied()
    }

    pub fn remember(&self, experiment_id: i64, user_id: &str, stored: StoredAssignment) {
        let Ok(mut generations) = self.generations.lock() else { return };
        if generations.0.len() >= self.half {
            generations.1 = std::mem::take(&mut generations.0);
        }
        generations.0.insert((experiment_id, user_id.to_owned()), stored);
    }

    /// Entries held now (at most the capacity).
    pub fn len(&self) -> usize {
        self.generations.lock().map(|g| g.0.len() + g.1.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn the_assignment_cache_stays_within_its_capacity_and_keeps_recent_entries() {
        let cache = AssignmentCache::new(1000);
        let stored = StoredAssignment { variant_id: 7, assigned_at: Utc::now() };
        for i in 0..10_000 {
            cache.remember(1, &format!("u{i}"), stored);
            assert!(cache.len() <= 1000);
        }
        assert_eq!(cache.get(1, "u9999"), Some(stored));
        assert_eq!(cache.get(1, "u9500"), Some(stored));
        assert_eq!(cache.get(1, "u0"), None);
        assert_eq!(cache.get(2, "u9999"), None);
    }
}
