-- Of several exposures of one user (a retried assignment, a replayed batch), the earliest
-- must survive merges: ReplacingMergeTree keeps the row with the highest version, and the
-- version here falls as exposed_at grows. Existing rows are copied into the new table;
-- every step can run again after an interruption.
DROP TABLE IF EXISTS exposures_replaced;

CREATE TABLE IF NOT EXISTS exposures_earliest
(
    experiment_id UInt64,
    user_id String,
    variant String,
    exposed_at DateTime,
    earliness UInt32 MATERIALIZED 4294967295 - toUInt32(exposed_at)
)
ENGINE = ReplacingMergeTree(earliness)
ORDER BY (experiment_id, user_id);

INSERT INTO exposures_earliest (experiment_id, user_id, variant, exposed_at)
SELECT experiment_id, user_id, variant, exposed_at FROM exposures;

RENAME TABLE exposures TO exposures_replaced, exposures_earliest TO exposures;

DROP TABLE exposures_replaced;
