-- The metric catalog (docs/statistics.md "Metrics") and the metrics each experiment is
-- decided on. Metrics are archived, never deleted: experiments keep referencing them.
CREATE TABLE metrics (
    id             BIGSERIAL   PRIMARY KEY,
    key            TEXT        NOT NULL UNIQUE CHECK (key ~ '^[A-Za-z0-9_.-]{1,64}$'),
    name           TEXT        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description    TEXT,
    kind           TEXT        NOT NULL CHECK (kind IN ('conversion', 'mean')),
    event_type     TEXT        NOT NULL CHECK (char_length(event_type) BETWEEN 1 AND 128),
    value_property TEXT,
    -- [{"property": ..., "value": ...}]
    filters        JSONB       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(filters) = 'array'),
    direction      TEXT        NOT NULL DEFAULT 'higher' CHECK (direction IN ('higher', 'lower')),
    -- {"absolute": x} or {"percentile": p}
    capping        JSONB,
    window_hours   DOUBLE PRECISION CHECK (window_hours > 0),
    archived       BOOLEAN     NOT NULL DEFAULT false,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE experiment_metrics (
    experiment_id BIGINT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    metric_id     BIGINT NOT NULL REFERENCES metrics (id),
    role          TEXT   NOT NULL CHECK (role IN ('primary', 'secondary', 'guardrail')),
    -- order within the experiment: primary, secondaries, guardrails as given
    position      INT    NOT NULL,
    -- guardrails only: the relative worsening tolerated
    margin        DOUBLE PRECISION CHECK (margin >= 0),
    PRIMARY KEY (experiment_id, metric_id),
    CHECK ((role = 'guardrail') = (margin IS NOT NULL))
);

CREATE UNIQUE INDEX experiment_metrics_one_primary ON experiment_metrics (experiment_id) WHERE role = 'primary';
