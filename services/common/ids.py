"""Job and event ids: UUIDs that sort by creation time (RFC 9562), so each new row or document
lands at the right-hand edge of every index that holds its id.

Random ids (v4 job ids, plain name-based event ids) land on random index pages: PostgreSQL's
`jobs` key and the event store's `_id` and `jobId` indexes. Once those indexes outgrow the cache,
each insert reads and dirties a page of its own, and the cost per job grows with the data stored.
"""

from __future__ import annotations

import uuid

from uuid_utils import compat

# Fixed namespace: the same (job, version) always yields the same event id, so a replay after a
# crash is recognised as a duplicate by every consumer.
EVENT_NAMESPACE = uuid.UUID("6f1c5a52-8d0e-4b59-9a51-2f7f0c1d9e3b")

_LOW_62_BITS = (1 << 62) - 1


def new_job_id() -> str:
    """A UUIDv7: Unix milliseconds in the first 48 bits, then a counter that keeps the ids this
    process makes in order within a millisecond, then random bits."""
    return str(compat.uuid7())


def event_id(job_id: str, version: int) -> str:
    """The id of the event that takes `job_id` to `version`: a function of the pair alone.

    For a v7 job id it is a UUIDv8 that starts with the job's 48 time bits, followed by 74 bits
    of the pair's name-based (v5) UUID, so a job's events sort and are indexed next to it. Any
    other job id (those made before job ids were v7) keeps the v5 id itself: events of jobs in
    flight across an upgrade keep the ids they were first published with, and stay deduplicated.
    """
    named = uuid.uuid5(EVENT_NAMESPACE, f"{job_id}/{version}")
    try:
        job = uuid.UUID(job_id)
    except ValueError:  # not a UUID at all (only tests make such ids)
        return str(named)
    if job.version != 7:
        return str(named)
    return str(compat.uuid8(job.int >> 80, (named.int >> 64) & 0xFFF, named.int & _LOW_62_BITS))
