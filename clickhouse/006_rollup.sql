-- The results rollup (README "How results are computed"; api/src/rollup/sealer.rs seals it,
-- api/src/storage/rollup/ reads it). Every step can run again after an interruption.
--
-- Exposures already there read `inserted_at` as now() (a column added by ALTER is
-- computed on read for old parts): give them their exposure time, once and for all.
ALTER TABLE exposures UPDATE inserted_at = exposed_at WHERE 1;

-- events gets `inserted_at` (the server's clock at the insert) and, of several copies of
-- one event, the FIRST inserted now survives merges and FINAL (the version falls as
-- inserted_at grows), which is also the copy the rollup counts. The table is copied:
-- the consumers must not write while this runs (scripts/up stops them first; rows they
-- wrote to the old table during the copy would be lost). The old rows' inserted_at is
-- their received_at (the ingest's clock at acceptance; the insert came later).
DROP TABLE IF EXISTS events_replaced;

CREATE TABLE IF NOT EXISTS events_first
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
ENGINE = ReplacingMergeTree(first_ver)
PARTITION BY toYYYYMM(timestamp)
ORDER BY (type, user_id, event_id);

INSERT INTO events_first (event_id, user_id, type, timestamp, received_at, properties, inserted_at)
SELECT event_id, user_id, type, timestamp, received_at, properties, received_at FROM events;

RENAME TABLE events TO events_replaced, events_first TO events;

DROP TABLE events_replaced;

-- The same rows in insertion order (a materialized view writes them on every insert into
-- events): a seal reads the events inserted in its interval, and the results the events
-- inserted since the last seal, without reading all events. Partitions older than every
-- seal (less the future bound K and a day) are dropped by the sealer.
CREATE TABLE IF NOT EXISTS events_recent
(
    type String,
    inserted_at DateTime,
    user_id String,
    event_id UUID,
    timestamp DateTime,
    properties String
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(inserted_at)
ORDER BY (type, inserted_at);

CREATE MATERIALIZED VIEW IF NOT EXISTS events_recent_mv TO events_recent AS
SELECT type, inserted_at, user_id, event_id, timestamp, properties FROM events;

-- The exposures' counterpart: which users got an exposure row since a point in time.
CREATE TABLE IF NOT EXISTS exposures_recent
(
    experiment_id UInt64,
    inserted_at DateTime,
    user_id String
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(inserted_at)
ORDER BY (experiment_id, inserted_at);

CREATE MATERIALIZED VIEW IF NOT EXISTS exposures_recent_mv TO exposures_recent AS
SELECT experiment_id, inserted_at, user_id FROM exposures;

-- From when on events_recent and exposures_recent hold every row inserted: max(since).
-- Rows inserted before the views existed are only in events and exposures (seals read
-- those there); the sealer raises it before it drops old partitions.
CREATE TABLE IF NOT EXISTS recent_floor (since DateTime) ENGINE = TinyLog;

INSERT INTO recent_floor SELECT now();

-- Level 1, per metric (event type, value property): every event once (its first copy),
-- the value parsed, narrow, ordered by user for the history of newly exposed users and
-- for the duplicate check of late copies (copies share user_id, ts and event_id).
-- `sealed` is the end of the seal interval that wrote the row. Rows with user_id = ''
-- are seal markers (ts = the interval's start, sealed = its end), written in the same
-- single-part INSERT as the interval's rows: a seal is all or nothing and can run again.
CREATE TABLE IF NOT EXISTS metric_log
(
    event_type String,
    value_property String,
    user_id String,
    ts DateTime,
    event_id UUID,
    v Float64,
    sealed DateTime
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(sealed)
ORDER BY (event_type, value_property, user_id, ts, event_id)
SETTINGS index_granularity = 1024;

-- Level 2, per experiment and metric: each exposed user's state relative to their first
-- exposure fe: n, y = events at or after fe and their value sum; pre_* = per whole day
-- before fe (pre_b = intDiv(fe - ts - 1, 86400), 0..364), count and value sum. A seal that
-- changes a user's state writes the new state (sign +1, ver = the seal's end) and an exact
-- copy of the old one (sign -1, its own ver), so a sum of sign * f(row) over all rows is
-- the sum over current states: results need no per-user GROUP BY. VersionedCollapsing
-- drops cancelled pairs in merges whatever the order of the rows. Rows with user_id = ''
-- are seal markers (ver = the interval's end, fe = its start).
CREATE TABLE IF NOT EXISTS rollup
(
    experiment_id UInt64,
    event_type String,
    value_property String,
    user_id String,
    ver UInt32,
    sign Int8,
    fe DateTime,
    variant String,
    n Int64,
    y Float64,
    pre_b Array(UInt16),
    pre_n Array(Int64),
    pre_x Array(Float64)
)
ENGINE = VersionedCollapsingMergeTree(sign, ver)
ORDER BY (experiment_id, event_type, value_property, user_id);
