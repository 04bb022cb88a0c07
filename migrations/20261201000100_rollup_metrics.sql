-- The metrics whose results the api keeps rolled up (api/src/rollup/sealer.rs seals them): an
-- experiment with an event type and a value property ('' for none). Registered when
-- results are first asked for them with the default window.
CREATE TABLE rollup_metrics (
    experiment_id  BIGINT      NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    event_type     TEXT        NOT NULL,
    value_property TEXT        NOT NULL DEFAULT '',
    registered_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (experiment_id, event_type, value_property)
);
