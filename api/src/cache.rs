//! What one api process keeps in memory, each bounded (see README "Scaling out"):
//!
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

use sqlx::PgPool;

use crate::{
    domain::Experiment,
    storage::{self, postgres::StoredAssignment, StorageError},
};

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
