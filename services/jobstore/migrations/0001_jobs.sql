-- Job state: one row per job, one per attempt. Every transition bumps jobs.version; event ids
-- are derived from (id, version), so a replayed transition yields the same event id.
CREATE TABLE jobs (
    id               uuid PRIMARY KEY,
    type             text        NOT NULL,
    payload          jsonb       NOT NULL DEFAULT '{}'::jsonb,
    priority         smallint    NOT NULL DEFAULT 0 CHECK (priority BETWEEN 0 AND 9),
    status           text        NOT NULL,
    attempts         integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL CHECK (max_attempts >= 1),
    timeout_ms       integer     NOT NULL CHECK (timeout_ms > 0),
    idempotency_key  text,
    correlation_id   text        NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    next_attempt_at  timestamptz,
    last_error       text        NOT NULL DEFAULT '',
    cancel_requested boolean     NOT NULL DEFAULT false,
    worker           text        NOT NULL DEFAULT '',
    lease_until      timestamptz,
    version          integer     NOT NULL DEFAULT 1
);

CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key) WHERE idempotency_key IS NOT NULL;
-- Keyset paging newest first, optionally within a status or a type.
CREATE INDEX jobs_created ON jobs (created_at DESC, id DESC);
CREATE INDEX jobs_status_created ON jobs (status, created_at DESC, id DESC);
CREATE INDEX jobs_type_created ON jobs (type, created_at DESC, id DESC);
CREATE INDEX jobs_payload ON jobs USING gin (payload jsonb_path_ops);

CREATE TABLE job_attempts (
    job_id      uuid        NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    number      integer     NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    outcome     text        NOT NULL DEFAULT '',
    error       text        NOT NULL DEFAULT '',
    worker      text        NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, number)
);
