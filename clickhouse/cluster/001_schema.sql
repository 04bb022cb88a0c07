-- The schema on a ClickHouse cluster (`clickhouse.cluster`): events and exposures as
-- clickhouse/001..006 leave them (006's rollup tables excepted: the rollup runs on one
-- server only, README "Scaling out") as
-- replicated tables per shard (`*_local`), behind `Distributed` tables with the names the
-- queries use. Both are sharded by cityHash64(user_id): a user's exposures and events share
-- a shard, so every per-user GROUP BY and every copy of an event (same user) meet on one
-- shard. The migration runner replaces ${cluster} and ${database} (validated identifiers);
-- {shard} and {replica} are each server's macros. Every statement runs ON CLUSTER and can
-- run again after an interruption.

CREATE TABLE IF NOT EXISTS ${database}.events_local ON CLUSTER ${cluster}
(
    event_id UUID,
    user_id String,
    type String,
    timestamp DateTime,
    received_at DateTime,
    properties String,
    inserted_at DateTime DEFAULT now(),
    first_ver UInt32 MATERIALIZED 4294967295 - toUInt32(inserted_at)
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/${database}/events_local', '{replica}', first_ver)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (type, user_id, event_id);

-- The Distributed tables list the columns without the MATERIALIZED version (a Distributed
-- table that has it sends it along, and the shards refuse the insert); inserted_at is
-- filled where the insert arrives. FINAL does not work through them (the version column
-- is unknown there): queries count each event id once instead (RESULTS_SQL).
CREATE TABLE IF NOT EXISTS ${database}.events ON CLUSTER ${cluster}
(
    event_id UUID,
    user_id String,
    type String,
    timestamp DateTime,
    received_at DateTime,
    properties String,
    inserted_at DateTime DEFAULT now()
)
ENGINE = Distributed(${cluster}, ${database}, events_local, cityHash64(user_id));

CREATE TABLE IF NOT EXISTS ${database}.exposures_local ON CLUSTER ${cluster}
(
    experiment_id UInt64,
    user_id String,
    variant String,
    exposed_at DateTime,
    earliness UInt32 MATERIALIZED 4294967295 - toUInt32(exposed_at),
    forced UInt8 DEFAULT 0,
    attribute_keys Array(String),
    attribute_values Array(String),
    exposure_id String DEFAULT '',
    inserted_at DateTime DEFAULT now()
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/${database}/exposures_local', '{replica}', earliness)
ORDER BY (experiment_id, user_id);

CREATE TABLE IF NOT EXISTS ${database}.exposures ON CLUSTER ${cluster}
(
    experiment_id UInt64,
    user_id String,
    variant String,
    exposed_at DateTime,
    forced UInt8 DEFAULT 0,
    attribute_keys Array(String),
    attribute_values Array(String),
    exposure_id String DEFAULT '',
    inserted_at DateTime DEFAULT now()
)
ENGINE = Distributed(${cluster}, ${database}, exposures_local, cityHash64(user_id));
