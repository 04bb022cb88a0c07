-- Phases (docs/statistics.md "Phases"): a new phase starts when the allocations change or
-- a stopped experiment runs again; stopping ends the current phase. Results analyse one
-- phase (the current one by default): the users first exposed in it, against its
-- allocations, up to its end.
CREATE TABLE experiment_phases (
    experiment_id BIGINT      NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    phase         INT         NOT NULL CHECK (phase >= 1),
    started_at    TIMESTAMPTZ NOT NULL,
    -- null: the current phase, still open
    ended_at      TIMESTAMPTZ,
    -- {"variant name": allocation in basis points}
    allocations   JSONB       NOT NULL CHECK (jsonb_typeof(allocations) = 'object'),
    reason        TEXT        NOT NULL CHECK (reason IN ('created', 'allocations_changed', 'restarted')),
    PRIMARY KEY (experiment_id, phase),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);

-- Existing experiments: one phase since creation with today's allocations; a stopped one
-- ended at its last update (the stop time was not recorded before; an approximation).
INSERT INTO experiment_phases (experiment_id, phase, started_at, ended_at, allocations, reason)
SELECT e.id, 1, e.created_at, CASE WHEN e.status = 'stopped' THEN e.updated_at END,
       (SELECT jsonb_object_agg(v.name, v.allocation_bp) FROM variants v WHERE v.experiment_id = e.id),
       'created'
FROM experiments e;
