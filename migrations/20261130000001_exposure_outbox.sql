-- Exposures waiting to be relayed to Kafka (the transactional outbox): an assignment and
-- its exposure commit together, in one statement, so a 200 means the exposure cannot be
-- lost; the api's relay sends them to the `exposures` topic in batches and deletes what
-- Kafka acknowledged (see api/src/outbox.rs).
CREATE TABLE exposure_outbox (
    id            BIGSERIAL   PRIMARY KEY,
    experiment_id BIGINT      NOT NULL,
    user_id       TEXT        NOT NULL,
    variant       TEXT        NOT NULL,
    exposed_at    TIMESTAMPTZ NOT NULL,
    -- The assignment request's id, passed on to the Kafka message's headers.
    request_id    TEXT
);
