-- Which test decides `significant` in the results, and the tuning parameter of the
-- sequential test (see docs/statistics.md).
ALTER TABLE experiments
    ADD COLUMN significance TEXT NOT NULL DEFAULT 'sequential'
        CHECK (significance IN ('sequential', 'fixed_horizon')),
    ADD COLUMN sequential_tuning DOUBLE PRECISION NOT NULL DEFAULT 5000
        CHECK (sequential_tuning >= 1 AND sequential_tuning <= 1e9);
