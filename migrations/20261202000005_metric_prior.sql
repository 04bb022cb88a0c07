-- A catalog metric's optional proper prior for the Bayesian view (docs/statistics.md
-- "Bayesian view"): {"mean": m, "sd": s} on the relative lift; null is the flat default.
ALTER TABLE metrics ADD COLUMN prior JSONB;
