-- Quantile metrics (docs/statistics.md "Metrics"): a quantile (0 < q < 1) of a numeric
-- property over the events of exposed users, e.g. the p90 of page latency.
ALTER TABLE metrics DROP CONSTRAINT metrics_kind_check;
ALTER TABLE metrics ADD CONSTRAINT metrics_kind_check CHECK (kind IN ('conversion', 'mean', 'ratio', 'quantile'));
ALTER TABLE metrics ADD COLUMN quantile DOUBLE PRECISION CHECK (quantile > 0 AND quantile < 1);
ALTER TABLE metrics ADD CONSTRAINT quantile_has_level CHECK ((kind = 'quantile') = (quantile IS NOT NULL));
