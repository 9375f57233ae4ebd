import time
import uuid

from services.common import ids

# Event ids are how every consumer recognises a replayed event, so the scheme is pinned: a change
# would make events replayed after an upgrade look new.
LEGACY_JOB = "3b241101-e2bb-4255-8caf-4136c566a962"  # a v4 job id, made before ids were v7
V7_JOB = "019a2f4e-8c1b-7d3a-9f10-2b3c4d5e6f70"


def test_job_ids_are_v7_in_creation_order_and_carry_the_time() -> None:
    before_ms = time.time_ns() // 1_000_000
    made = [ids.new_job_id() for _ in range(2000)]
    after_ms = time.time_ns() // 1_000_000

    parsed = [uuid.UUID(job_id) for job_id in made]
    assert {u.version for u in parsed} == {7}
    assert made == sorted(made), "ids made later must sort later (text and index order)"
    assert len(set(made)) == len(made)
    assert before_ms <= parsed[0].int >> 80 <= parsed[-1].int >> 80 <= after_ms


def test_event_id_of_a_legacy_job_is_the_name_based_id_it_always_was() -> None:
    assert ids.event_id(LEGACY_JOB, 2) == "b109a534-a1d3-538f-bb6f-8fafc6cf747e"
    assert ids.event_id(LEGACY_JOB, 2) == str(uuid.uuid5(ids.EVENT_NAMESPACE, f"{LEGACY_JOB}/2"))
    assert ids.event_id("job-1", 4) == str(uuid.uuid5(ids.EVENT_NAMESPACE, "job-1/4"))


def test_event_id_of_a_v7_job_is_pinned_and_starts_with_the_jobs_time() -> None:
    event = ids.event_id(V7_JOB, 3)
    assert event == "019a2f4e-8c1b-8ecf-a1d0-59af3bb8191f"
    assert uuid.UUID(event).version == 8
    assert event[:13] == V7_JOB[:13]  # the job's 48 time bits
    assert ids.event_id(V7_JOB, 3) == event


def test_a_jobs_events_are_distinct_and_sort_after_earlier_jobs() -> None:
    earlier, later = ids.new_job_id(), None
    while later is None or later[:13] == earlier[:13]:  # a later millisecond
        later = ids.new_job_id()
    earlier_events = [ids.event_id(earlier, version) for version in range(1, 6)]
    later_events = [ids.event_id(later, version) for version in range(1, 6)]

    assert len(set(earlier_events + later_events)) == 10
    assert max(earlier_events) < min(later_events)
