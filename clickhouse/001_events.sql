-- Every accepted event, one row per event_id once merges have run.
-- A replay after a consumer crash inserts the same event_id again; ReplacingMergeTree
-- collapses the copies in the background and every query counts uniq event_ids, so the
-- copies never show up in results even before a merge.
-- Runs on ClickHouse 18.16 (local stack) and current releases (docker compose): no
-- DateTime64, JSON types or Map; properties are the client's JSON object as text.
CREATE TABLE IF NOT EXISTS events
(
    event_id UUID,
    user_id String,
    type String,
    timestamp DateTime,
    received_at DateTime,
    properties String
)
ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (type, user_id, event_id);
