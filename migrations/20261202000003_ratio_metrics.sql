-- Ratio metrics (docs/statistics.md "Metrics"): the sum of a numerator (event_type and
-- value_property) over the sum of a denominator, {"event_type": ..., "value_property": ...}.
ALTER TABLE metrics DROP CONSTRAINT metrics_kind_check;
ALTER TABLE metrics ADD CONSTRAINT metrics_kind_check CHECK (kind IN ('conversion', 'mean', 'ratio'));
ALTER TABLE metrics ADD COLUMN denominator JSONB;
ALTER TABLE metrics ADD CONSTRAINT ratio_has_denominator CHECK ((kind = 'ratio') = (denominator IS NOT NULL));
