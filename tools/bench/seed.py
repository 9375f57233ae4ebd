"""Fills the jobs table directly in PostgreSQL, server-side, so the read model's queries can be
timed over a realistic amount of history (1,000,000 jobs) without running them all."""

from __future__ import annotations

import time
from collections.abc import Callable

from services.common import postgres

CHUNK = 100_000
# Seeded history: mostly completed, some failed, dead-lettered or cancelled; older
# than anything the benchmark runs, all terminal (a run waits for unfinished jobs), four types.
_INSERT = """
INSERT INTO jobs (id, type, payload, status, attempts, max_attempts, timeout_ms,
                  created_at, updated_at, started_at, finished_at)
SELECT gen_random_uuid(),
       (ARRAY['noop', 'echo', 'sleep', 'fail'])[1 + i %% 4],
       jsonb_build_object('seed', i),
       CASE WHEN i %% 20 = 0 THEN 'failed' WHEN i %% 50 = 1 THEN 'dead_lettered'
            WHEN i %% 100 = 2 THEN 'cancelled' ELSE 'completed' END,
       1, 3, 30000,
       t, t, t, t
FROM generate_series(%(start)s::int, %(stop)s::int) AS i,
     LATERAL (SELECT now() - interval '1 day' - (i * interval '2.5 seconds') AS t) AS at
"""


def count_jobs(dsn: str) -> int:
    with postgres.connect(dsn, autocommit=True, application_name="bench-seed") as conn:
        row = conn.execute("SELECT count(*) FROM jobs").fetchone()
    return int(row[0]) if row else 0


def seed(dsn: str, total: int, progress: Callable[[str], None] = print) -> int:
    """Adds jobs until the table holds `total`; returns how many it holds then."""
    have = count_jobs(dsn)
    missing = total - have
    began = time.monotonic()
    with postgres.connect(dsn, autocommit=True, application_name="bench-seed") as conn:
        for start in range(1, missing + 1, CHUNK):
            stop = min(missing, start + CHUNK - 1)
            conn.execute(_INSERT, {"start": start, "stop": stop})
            progress(f"seeded {have + stop:,} / {total:,} jobs ({time.monotonic() - began:.0f} s)")
        if missing > 0:
            conn.execute("VACUUM ANALYZE jobs")
    return count_jobs(dsn)
