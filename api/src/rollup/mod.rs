//! The results rollup, the api's side: which results calls read it (and register their
//! metric for sealing), and the background sealer ([`sealer`]). The SQL is in
//! [`crate::storage::rollup`]; README "How results are computed" has the whole picture.

pub mod plan;
pub mod sealer;

use std::{collections::HashSet, sync::Mutex};

use common::{
    config::RollupConfig,
    metrics::{self, IntCounterVec, Registry},
};
use sqlx::PgPool;

use crate::{
    domain::Experiment,
    results::Window,
    storage::{
        clickhouse::{StatsQuery, VariantStats},
        postgres::{self as pg, RollupMetric},
        rollup::{self as store, Source},
        StorageError,
    },
};

/// Most registrations remembered per process (beyond it the memory is cleared; a repeated
/// registration is harmless).
const REMEMBERED: usize = 10_000;

/// What the results route needs of the rollup; one per process, shared.
pub struct Rollup {
    config: RollupConfig,
    registered: Mutex<HashSet<RollupMetric>>,
    answers: IntCounterVec,
}

impl Rollup {
    pub fn new(config: &RollupConfig, r: &Registry) -> Self {
        Self {
            config: config.clone(),
            registered: Mutex::new(HashSet::new()),
            answers: metrics::counter_vec(
                r,
                "abtest_results_total",
                "Results answered, by source: rollup, or raw (raw_not_sealed: the metric awaits its first \
                 seal; raw_unusable/raw_failed: the rollup could not answer)",
                &["source"],
            ),
        }
    }

    /// The results of `q`: from the rollup when it is on, the window covers the whole
    /// experiment (the rollup keeps each user's first exposure ever; the raw query takes
    /// the first one inside the window, which differs only for windows starting later), no
    /// segment is asked (the rollup keeps no exposure attributes) and the metric is sealed;
    /// from the raw events otherwise. The metric is registered for sealing on the way (best
    /// effort: Postgres down does not stop results).
    pub async fn variant_stats(
        &self,
        ch: &clickhouse::Client,
        db: &PgPool,
        experiment: &Experiment,
        window: &Window,
        q: &StatsQuery<'_>,
    ) -> Result<Vec<VariantStats>, StorageError> {
        let asked =
            self.config.enabled && window.from <= experiment.created_at && q.segment.0.is_empty() && q.refine.is_none();
        if asked {
            self.register(db, q).await;
        }
        let k = asked.then(|| plan::Plan::new(&self.config).k);
        let (rows, source) = store::variant_stats(ch, q, k).await?;
        self.answers.with_label_values(&[source.label()]).inc();
        if let Source::Rollup { sealed_to } = source {
            tracing::debug!(experiment = q.experiment_id, sealed_to, "results from the rollup");
        }
        Ok(rows)
    }

    async fn register(&self, db: &PgPool, q: &StatsQuery<'_>) {
        let metric = RollupMetric {
            experiment_id: q.experiment_id,
            event_type: q.event_type.to_owned(),
            value_property: q.value_property.to_owned(),
        };
        if self.registered.lock().is_ok_and(|set| set.contains(&metric)) {
            return;
        }
        match pg::register_rollup_metric(db, &metric).await {
            Ok(()) => {
                if let Ok(mut set) = self.registered.lock() {
                    if set.len() >= REMEMBERED {
                        set.clear();
                    }
                    set.insert(metric);
                }
            }
            Err(e) => tracing::warn!(error = %server::error::Chain(&e), "could not register the metric for the rollup"),
        }
    }
}
