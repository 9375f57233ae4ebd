-- Alerts as Alertmanager reports them through its webhook (read model: POST /alerts/webhook).
-- One row per alert fingerprint, updated as it fires and resolves.
CREATE TABLE alerts (
    fingerprint text PRIMARY KEY,
    name        text        NOT NULL,
    severity    text        NOT NULL DEFAULT '',
    state       text        NOT NULL CHECK (state IN ('firing', 'resolved')),
    summary     text        NOT NULL DEFAULT '',
    description text        NOT NULL DEFAULT '',
    labels      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX alerts_state_starts ON alerts (state, starts_at DESC);
