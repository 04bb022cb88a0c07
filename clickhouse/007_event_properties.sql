-- Each event's properties as scalar leaves keyed by JSON Pointer (common/src/event/properties.rs),
-- written by the consumer beside the JSON: every leaf as text (prop_keys, prop_values) and
-- the numbers (num_keys, num_values). A value property is looked up by pointer
-- (num_values[indexOf(num_keys, pointer)]): only a JSON number at that place is a value.
-- props_v = 1 marks rows that carry the leaves; rows stored before this migration read 0
-- and are read with the old rule (visitParamExtractFloat: the first occurrence of the key
-- at any depth, anything not a number 0).
-- One column per statement (18.16 has no ADD COLUMN IF NOT EXISTS; the runner takes
-- "column already exists" as done). The consumers must not write while this runs
-- (scripts/up stops them): the view that copies events to events_recent is recreated with
-- the new columns, and rows inserted between its drop and its creation would miss
-- events_recent.
ALTER TABLE events ADD COLUMN prop_keys Array(String);
ALTER TABLE events ADD COLUMN prop_values Array(String);
ALTER TABLE events ADD COLUMN num_keys Array(String);
ALTER TABLE events ADD COLUMN num_values Array(Float64);
ALTER TABLE events ADD COLUMN props_v UInt8 DEFAULT 0;

ALTER TABLE events_recent ADD COLUMN prop_keys Array(String);
ALTER TABLE events_recent ADD COLUMN prop_values Array(String);
ALTER TABLE events_recent ADD COLUMN num_keys Array(String);
ALTER TABLE events_recent ADD COLUMN num_values Array(Float64);
ALTER TABLE events_recent ADD COLUMN props_v UInt8 DEFAULT 0;

DROP TABLE IF EXISTS events_recent_mv;

CREATE MATERIALIZED VIEW IF NOT EXISTS events_recent_mv TO events_recent AS
SELECT type, inserted_at, user_id, event_id, timestamp, properties, prop_keys, prop_values, num_keys, num_values, props_v
FROM events;
