-- What an exposure carries since local evaluation and targeting: whether the user was a
-- forced (QA) user, the user's attributes at assignment (two arrays of the same length,
-- names in order: 18.16 has no Map type) and the client's exposure id (`POST /exposures`).
-- Rows written before this migration read the defaults: not forced, no attributes, no id.
-- The table keeps each user's earliest exposure per experiment (003), these columns with it.
-- ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS: one column per statement, and the
-- migration runner takes "column already exists" from an ADD COLUMN as done, so an
-- interrupted run completes when run again.
ALTER TABLE exposures ADD COLUMN forced UInt8 DEFAULT 0;
ALTER TABLE exposures ADD COLUMN attribute_keys Array(String);
ALTER TABLE exposures ADD COLUMN attribute_values Array(String);
ALTER TABLE exposures ADD COLUMN exposure_id String DEFAULT '';
