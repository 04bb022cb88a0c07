-- Experiments, their variants and the sticky assignments of users.

CREATE TABLE experiments (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description TEXT,
    status      TEXT        NOT NULL DEFAULT 'running'
                            CHECK (status IN ('running', 'paused', 'stopped')),
    -- Random per experiment; bucketing hashes (salt, user_id), see README "Assignment".
    salt        TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE variants (
    id            BIGSERIAL PRIMARY KEY,
    experiment_id BIGINT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    -- 0 is the control.
    position      INT    NOT NULL CHECK (position >= 0),
    name          TEXT   NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    -- Allocation in basis points (1/100 of a percent); they sum to 10000 per experiment.
    allocation_bp INT    NOT NULL CHECK (allocation_bp > 0 AND allocation_bp <= 10000),
    UNIQUE (experiment_id, name),
    UNIQUE (experiment_id, position)
);

-- The first assignment wins forever: the primary key makes concurrent first requests
-- for one user collapse onto one row.
CREATE TABLE assignments (
    experiment_id BIGINT      NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    user_id       TEXT        NOT NULL,
    variant_id    BIGINT      NOT NULL REFERENCES variants (id),
    assigned_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment_id, user_id)
);
