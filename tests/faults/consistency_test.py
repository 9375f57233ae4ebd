"""The checker itself: it must see each kind of discrepancy, and nothing in agreeing stores."""

from __future__ import annotations

from collections import Counter

from tests.faults.consistency import JobRow, Snapshot, compare

A, B = "00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b"


def agreeing() -> Snapshot:
    return Snapshot(
        jobs={A: JobRow("completed", "key-a", 1), B: JobRow("failed", "key-b", 0)},
        created_events=Counter({A: 1, B: 1}),
        terminal_events=Counter({A: 1, B: 1}),
        manual_retries=Counter(),
        terminal_by_type=Counter({"completed": 1, "failed": 1}),
        duplicate_event_ids=[],
        redis_status={"completed": 1, "failed": 1},
        redis_totals={"submitted": 2, "completed": 1, "failed": 1},
        stats_status={"completed": 1, "failed": 1},
        stats_total=2,
    )


def problems(found: Snapshot, **kwargs: object) -> str:
    return str(compare(found, {A, B}, **kwargs))  # type: ignore[arg-type]


def test_agreeing_stores_pass() -> None:
    assert problems(agreeing(), keys={"key-a": A, "key-b": B}) == ""


def test_a_lost_job_is_named() -> None:
    found = agreeing()
    del found.jobs[B]
    assert f"[postgres] 1 accepted jobs are missing: ['{B}']" in problems(found)


def test_a_job_still_running_is_not_terminal() -> None:
    found = agreeing()
    found.jobs[A] = JobRow("running", "key-a", 0)
    assert "[postgres] 1 jobs are not terminal" in problems(found)


def test_an_unexpected_status_is_reported() -> None:
    assert "accepted jobs not completed: {'failed': 1}" in problems(
        agreeing(), expect_status="completed"
    )


def test_a_second_job_for_one_idempotency_key_is_caught() -> None:
    found = agreeing()
    found.jobs["00000000-0000-0000-0000-00000000000c"] = JobRow("completed", "key-a", 1)
    report = problems(found, keys={"key-a": A, "key-b": B})
    assert "never accepted" in report
    assert "idempotency keys with more than one job: ['key-a']" in report


def test_a_terminal_event_stored_twice_is_caught() -> None:
    found = agreeing()
    found.terminal_events[A] = 2
    assert "[mongodb] terminal jobs without one terminal event per life" in problems(found)


def test_a_manual_retry_allows_a_second_terminal_event() -> None:
    found = agreeing()
    found.terminal_events[B] = 2
    found.manual_retries[B] = 1
    found.terminal_by_type["failed"] = 2
    found.redis_totals["failed"] = 2
    assert problems(found) == ""


def test_a_terminal_event_counted_twice_in_redis_is_caught() -> None:
    found = agreeing()
    found.redis_totals["completed"] = 2
    assert "[redis] totals.completed 2 != 1 events in mongodb" in problems(found)


def test_read_model_disagreement_is_caught() -> None:
    found = agreeing()
    found.stats_status = {"completed": 2}
    assert "[read model]" in problems(found)


def test_undelivered_outbox_entries_are_reported() -> None:
    found = agreeing()
    found.outbox_entries = 2
    assert "[postgres] 2 outbox entries never delivered" in problems(found)


def test_an_undrained_metrics_engine_queue_is_reported() -> None:
    found = agreeing()
    found.engine_backlog = {"metrics-engine.events": 3, "metrics-engine.aggregates": 0}
    assert "[rabbitmq] metrics-engine queues not drained: {'metrics-engine.events': 3}" in (
        problems(found)
    )
