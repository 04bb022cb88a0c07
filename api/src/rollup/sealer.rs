//! The sealer: a background task of every api instance; one at a time seals (a Postgres
//! advisory lock held on a dedicated connection, checked again right before every write,
//! so two instances never write the same seal). About once a minute it looks at the clock
//! of ClickHouse, and for every registered metric seals what is due: level 1 of each
//! interval, then level 2 of each experiment of that metric; new experiments are
//! bootstrapped from the metric's log, new metrics from the raw events, in steps of at most
//! `rollup.max_step`. Then it drops the recent tables' days no seal needs any more, and
//! compacts every `rollup.compact_interval`. A failed round is retried at the next one:
//! every seal is atomic and what is sealed is read from the markers each time.

use std::time::{Duration, Instant};

use common::{
    config::RollupConfig,
    metrics::{self, IntCounter, IntGauge, Registry},
    shutdown::CancellationToken,
};
use sqlx::{Connection, PgConnection, PgPool};

use super::plan::{self, Plan};
use crate::storage::{
    postgres::{self as pg, RollupMetric},
    rollup::{
        self as store,
        seal::{self, Fence, Metric},
        upkeep,
    },
    StorageError,
};

type Result<T> = std::result::Result<T, StorageError>;

/// The key of the sealers' advisory lock ("rollup" in ASCII).
pub const LOCK_KEY: i64 = 0x726f_6c6c_7570;
/// How often a round runs (at most the seal interval).
const POLL: Duration = Duration::from_secs(60);

pub struct Sealer {
    db: PgPool,
    ch: clickhouse::Client,
    config: RollupConfig,
    plan: Plan,
    last_compaction: Option<Instant>,
    seals: IntCounter,
    failures: IntCounter,
    age: IntGauge,
}

/// The lock, on a connection of its own: dropping it closes the connection, which releases
/// the lock whatever happened.
struct Held(PgConnection);

impl Fence for Held {
    async fn check(&mut self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&mut self.0).await?;
        Ok(())
    }
}

/// What a round did (for the CLI and the tests).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    /// False when another instance held the lock.
    pub locked: bool,
    /// Seals written (level 1 and level 2, bootstraps included).
    pub seals: u64,
    /// Partitions of the recent tables dropped.
    pub dropped: usize,
}

impl Sealer {
    pub fn new(db: PgPool, ch: clickhouse::Client, config: &RollupConfig, r: &Registry) -> Self {
        Self {
            db,
            ch,
            config: config.clone(),
            plan: Plan::new(config),
            last_compaction: None,
            seals: metrics::counter(r, "abtest_rollup_seals_total", "Rollup seals written (both levels)"),
            failures: metrics::counter(r, "abtest_rollup_failures_total", "Rollup seal rounds or metrics that failed"),
            age: metrics::gauge(
                r,
                "abtest_rollup_sealed_age_seconds",
                "Age of the oldest last seal among registered metrics (0 without any)",
            ),
        }
    }

    /// Runs a round about every minute until `shutdown` (a round in progress is abandoned:
    /// its seals are atomic and the lock's connection closes).
    pub async fn run(mut self, shutdown: CancellationToken) {
        let poll = POLL.min(self.config.interval);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                done = self.round() => if let Err(e) = done {
                    self.failures.inc();
                    tracing::warn!(error = %server::error::Chain(&e), "rollup round failed; retried at the next");
                },
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// One round, if this instance gets the lock.
    pub async fn round(&mut self) -> Result<Round> {
        self.round_until(None).await
    }

    /// One round that seals no further than `limit` (when given): what the tests use to
    /// seal a timeline step by step.
    pub async fn round_until(&mut self, limit: Option<u32>) -> Result<Round> {
        let mut conn = PgConnection::connect_with(&self.db.connect_options()).await?;
        let locked: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(LOCK_KEY).fetch_one(&mut conn).await?;
        if !locked {
            return Ok(Round::default());
        }
        let mut held = Held(conn);
        let round = self.sealed_round(&mut held, limit).await;
        let _ = held.0.close().await;
        round
    }

    async fn sealed_round(&mut self, held: &mut Held, limit: Option<u32>) -> Result<Round> {
        let mut round = Round { locked: true, ..Round::default() };
        let clock = store::clock(&self.ch).await?;
        let target = self.plan.target(clock.now);
        let target = limit.map_or(target, |l| l.min(target));
        let registered = pg::rollup_metrics(&self.db).await?;
        let mut oldest: Option<u32> = None;
        for group in
            registered.chunk_by(|a, b| (&a.event_type, &a.value_property) == (&b.event_type, &b.value_property))
        {
            match self.seal_metric(group, target, clock.floor, held, &mut round).await {
                Ok(sealed) => oldest = oldest.into_iter().chain(sealed).min(),
                Err(e) => {
                    self.failures.inc();
                    let m = &group[0];
                    tracing::warn!(error = %server::error::Chain(&e), event_type = %m.event_type,
                        value_property = %m.value_property, "could not seal a metric");
                    oldest = Some(oldest.map_or(clock.floor, |o| o.min(clock.floor)));
                }
            }
        }
        self.age.set(oldest.map_or(0, |o| i64::from(clock.now.saturating_sub(o))));
        round.dropped = self.drop_old_days(oldest, clock, held).await?;
        if self.last_compaction.is_none_or(|t| t.elapsed() >= self.config.compact_interval) {
            held.check().await?;
            upkeep::compact(&self.ch, plan::yyyymm(clock.now)).await?;
            self.last_compaction = Some(Instant::now());
        }
        Ok(round)
    }

    /// Seals one metric (the experiments of `group`) up to `target`; the oldest seal of it
    /// and its experiments afterwards (`None` when it may not start yet).
    async fn seal_metric(
        &self,
        group: &[RollupMetric],
        target: u32,
        floor: u32,
        held: &mut Held,
        round: &mut Round,
    ) -> Result<Option<u32>> {
        let m = Metric { event_type: &group[0].event_type, value_property: &group[0].value_property };
        let session = seal::session(&self.ch).await?;
        let mut level1 = sealed_to(store::metric_seals(&self.ch, m.event_type, m.value_property).await?, "metric")?;
        if level1.is_none() && !self.plan.may_start(target, floor) {
            return Ok(None);
        }
        let mut experiments = Vec::new();
        for e in group {
            let id = u64::try_from(e.experiment_id).unwrap_or_default();
            let seals = store::experiment_seals(&self.ch, id, m.event_type, m.value_property).await?;
            experiments.push((id, sealed_to(seals, "experiment")?));
        }
        let first = match level1 {
            Some(_) => None,
            None => upkeep::first_event(&self.ch, m.event_type).await?,
        };
        self.catch_up(&session, m, level1, &mut experiments, floor, held, round).await?;
        while let Some((s0, s1)) = self.plan.next(level1, first, target) {
            seal::level1(&session, m, (s0, s1), self.plan.k, self.plan.source(s0, floor), held).await?;
            self.count(round);
            for (id, sealed) in experiments.iter_mut().filter(|(_, s)| *s == Some(s0)) {
                seal::level2(&session, *id, m, (s0, s1), held).await?;
                self.count(round);
                *sealed = Some(s1);
            }
            level1 = Some(s1);
        }
        self.catch_up(&session, m, level1, &mut experiments, floor, held, round).await?;
        seal::drop_temporaries(&session).await?;
        Ok(experiments.iter().filter_map(|(_, s)| *s).chain(level1).min())
    }

    /// Brings every experiment to the metric's last seal: bootstraps those without a seal,
    /// and seals level 2 of `(their last seal, the metric's]` for those behind (a round
    /// interrupted between the levels).
    #[allow(clippy::too_many_arguments)]
    async fn catch_up(
        &self,
        session: &clickhouse::Client,
        m: Metric<'_>,
        level1: Option<u32>,
        experiments: &mut [(u64, Option<u32>)],
        floor: u32,
        held: &mut Held,
        round: &mut Round,
    ) -> Result<()> {
        let Some(l1) = level1 else { return Ok(()) };
        for (id, sealed) in experiments.iter_mut() {
            match *sealed {
                None => seal::bootstrap_level2(&self.ch, *id, m, l1, held).await?,
                Some(l2) if l2 < l1 && l2 >= floor => {
                    seal::interval_from_log(session, m, (l2, l1)).await?;
                    seal::level2(session, *id, m, (l2, l1), held).await?;
                }
                Some(l2) if l2 < l1 => {
                    return Err(StorageError::Inconsistent(format!(
                        "experiment {id}'s rollup ends at {l2}, before the recent tables' floor {floor}: reset it \
                         (README \"How results are computed\")"
                    )))
                }
                Some(_) => continue,
            }
            self.count(round);
            *sealed = Some(l1);
        }
        Ok(())
    }

    fn count(&self, round: &mut Round) {
        self.seals.inc();
        round.seals += 1;
    }

    /// Raises the floor of the recent tables to a day before the oldest seal (less K), then
    /// drops the days before it.
    async fn drop_old_days(&self, oldest: Option<u32>, clock: store::Clock, held: &mut Held) -> Result<usize> {
        let floor = self.plan.floor(oldest, clock.now);
        if floor <= clock.floor {
            return Ok(0);
        }
        held.check().await?;
        upkeep::raise_floor(&self.ch, floor).await?;
        let old: Vec<_> =
            upkeep::recent_partitions(&self.ch).await?.into_iter().filter(|p| p.day < plan::yyyymmdd(floor)).collect();
        for p in &old {
            upkeep::drop_partition(&self.ch, p).await?;
        }
        Ok(old.len())
    }
}

/// The end of the last seal; an error when the markers do not chain (two writers sealed the
/// same interval, or a seal is missing): results then read the raw events, and the level
/// needs a reset (README).
fn sealed_to(seals: store::Seals, level: &str) -> Result<Option<u32>> {
    match (seals.seals, seals.sealed_to()) {
        (0, _) => Ok(None),
        (_, Some(last)) => Ok(Some(last)),
        (_, None) => Err(StorageError::Inconsistent(format!("the {level} seals do not chain"))),
    }
}
