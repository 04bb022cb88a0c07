-- Rollout control (docs/assignment.md): traffic share, targeting, schedule, forced users,
-- layers with disjoint bucket ranges, holdouts, and the GrowthBook hash. Every existing
-- experiment keeps behaving as before: sha256, 100 % coverage, no conditions, no layer.

CREATE TABLE layers (
    id          BIGSERIAL   PRIMARY KEY,
    key         TEXT        NOT NULL UNIQUE CHECK (key ~ '^[A-Za-z0-9_.-]{1,64}$'),
    description TEXT,
    -- Random per layer: a user's bucket in the layer is bucket(salt, user_id).
    salt        TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

ALTER TABLE experiments
    ADD COLUMN hash        TEXT    NOT NULL DEFAULT 'sha256' CHECK (hash IN ('sha256', 'growthbook_v2')),
    -- The GrowthBook hash's seed; null means the salt.
    ADD COLUMN seed        TEXT,
    ADD COLUMN coverage_bp INT     NOT NULL DEFAULT 10000 CHECK (coverage_bp BETWEEN 0 AND 10000),
    ADD COLUMN conditions  JSONB,
    ADD COLUMN start_at    TIMESTAMPTZ,
    ADD COLUMN stop_at     TIMESTAMPTZ,
    -- {"user id": "variant name"}: QA users pinned to a variant, never stored as assignments.
    ADD COLUMN forced      JSONB   NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(forced) = 'object'),
    -- A holdout: variants `general` and `holdout`; users drawn into `holdout` get no
    -- variant of any experiment it covers (those of holdout_layer_id, or all when null).
    ADD COLUMN holdout          BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN holdout_layer_id BIGINT  REFERENCES layers (id),
    ADD COLUMN layer_id    BIGINT  REFERENCES layers (id),
    ADD COLUMN layer_start INT,
    ADD COLUMN layer_end   INT,
    ADD CONSTRAINT schedule_in_order CHECK (start_at IS NULL OR stop_at IS NULL OR start_at < stop_at),
    ADD CONSTRAINT layer_range_valid CHECK (
        (layer_id IS NULL AND layer_start IS NULL AND layer_end IS NULL)
        OR (layer_id IS NOT NULL AND 0 <= layer_start AND layer_start < layer_end AND layer_end <= 10000)),
    -- Experiments of one layer own disjoint bucket ranges, so a user is in at most one of
    -- them. A stopped experiment frees its range (it assigns nobody any more).
    ADD CONSTRAINT layer_ranges_disjoint EXCLUDE USING gist (
        int8range(layer_id * 10000 + layer_start, layer_id * 10000 + layer_end) WITH &&
    ) WHERE (layer_id IS NOT NULL AND status <> 'stopped');

ALTER TABLE exposure_outbox
    -- The attributes the assignment request carried (text values), stored with the exposure.
    ADD COLUMN attributes JSONB,
    -- A forced user's exposure: flagged, excluded from analysis.
    ADD COLUMN forced     BOOLEAN NOT NULL DEFAULT false;
