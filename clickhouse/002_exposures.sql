-- A user's first assignment to an experiment, written once by the API through Kafka.
-- Keyed on (experiment_id, user_id): replays collapse, and queries take each user's
-- earliest exposure (min/argMin), so duplicates never count twice.
CREATE TABLE IF NOT EXISTS exposures
(
    experiment_id UInt64,
    user_id String,
    variant String,
    exposed_at DateTime
)
ENGINE = ReplacingMergeTree()
ORDER BY (experiment_id, user_id);
