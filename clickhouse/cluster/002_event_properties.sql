-- clickhouse/007_event_properties.sql on a cluster: the leaves of each event's properties on
-- the replicated tables (ALTER ... ON CLUSTER runs once per shard and replicates), and the
-- Distributed table in front of them recreated with the new columns (18.16 refuses an
-- ALTER ON CLUSTER of a table that is not replicated when the shards are; a Distributed
-- table holds no rows: inserts are synchronous, `insert_distributed_sync = 1`). The
-- consumers must not write while this runs (scripts/up stops them). The cluster has no
-- rollup, so no events_recent.
ALTER TABLE ${database}.events_local ON CLUSTER ${cluster} ADD COLUMN prop_keys Array(String);
ALTER TABLE ${database}.events_local ON CLUSTER ${cluster} ADD COLUMN prop_values Array(String);
ALTER TABLE ${database}.events_local ON CLUSTER ${cluster} ADD COLUMN num_keys Array(String);
ALTER TABLE ${database}.events_local ON CLUSTER ${cluster} ADD COLUMN num_values Array(Float64);
ALTER TABLE ${database}.events_local ON CLUSTER ${cluster} ADD COLUMN props_v UInt8 DEFAULT 0;

DROP TABLE IF EXISTS ${database}.events ON CLUSTER ${cluster};

CREATE TABLE IF NOT EXISTS ${database}.events ON CLUSTER ${cluster}
(
    event_id UUID,
    user_id String,
    type String,
    timestamp DateTime,
    received_at DateTime,
    properties String,
    inserted_at DateTime DEFAULT now(),
    prop_keys Array(String),
    prop_values Array(String),
    num_keys Array(String),
    num_values Array(Float64),
    props_v UInt8 DEFAULT 0
)
ENGINE = Distributed(${cluster}, ${database}, events_local, cityHash64(user_id));
