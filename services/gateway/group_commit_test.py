"""Group commit without I/O: who goes in which group, results split back, failures, closing."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from services.common.config import ConfigError, Env
from services.gateway.config import GatewayConfig, GroupLimits
from services.gateway.group_commit import ClosedError, GroupCommitter, Written, split, take
from tools.testing.waiting import wait_for

# -- take / split ----------------------------------------------------------------------------


def test_take_is_the_longest_prefix_within_the_cap() -> None:
    assert take([1, 1, 1, 1], max_jobs=3) == 3
    assert take([2, 1, 5, 1], max_jobs=8) == 3
    assert take([1, 1], max_jobs=500) == 2


def test_take_never_splits_nor_skips_a_request() -> None:
    assert take([600, 1], max_jobs=500) == 1  # too big: written alone, not refused
    assert take([1, 600, 1], max_jobs=500) == 1  # the small one behind waits its turn
    assert take([], max_jobs=500) == 0


def test_split_gives_each_request_its_own_share_in_order() -> None:
    assert split(["a", "b", "c", "d"], [1, 0, 3]) == [["a"], [], ["b", "c", "d"]]
    with pytest.raises(ValueError, match="cannot be split"):
        split(["a"], [2])


def test_limits_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="max_writers"):
        GroupLimits(max_writers=0)
    with pytest.raises(ValueError, match="max_jobs"):
        GroupLimits(max_jobs=0)


# -- the committer ---------------------------------------------------------------------------


class Recorder:
    """A commit function that records its groups; `hold()` makes the next group wait."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.threads: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def hold(self) -> None:
        self.gate.clear()
        self.entered.clear()

    def __call__(self, requests: Sequence[str]) -> Written[str]:
        self.groups.append(list(requests))
        self.threads.append(threading.current_thread().name)
        self.entered.set()
        assert self.gate.wait(10)
        return Written([ValueError(r) if r.startswith("bad") else f"{r}:ok" for r in requests])


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(16) as executor:
        yield executor


def queue_behind_a_held_group(
    committer: GroupCommitter[str, str],
    recorder: Recorder,
    pool: ThreadPoolExecutor,
    first: str,
    later: list[tuple[str, int]],
) -> tuple[Future[str], list[Future[str]]]:
    """`first` is being written (held) while `later` (request, jobs) queue up behind it."""
    recorder.hold()
    head = pool.submit(committer.run, first, 1)
    assert recorder.entered.wait(10)
    futures = []
    for request, jobs in later:
        futures.append(pool.submit(committer.run, request, jobs))
        wait_for(
            committer.queued,
            what=f"{request} queued",
            until=lambda n: n == len(futures),
            interval=0.01,
        )
    return head, futures


def test_a_lone_request_is_written_at_once_on_its_callers_thread() -> None:
    recorder = Recorder()
    committer: GroupCommitter[str, str] = GroupCommitter(recorder, GroupLimits())
    assert committer.run("a", 1) == "a:ok"
    assert recorder.groups == [["a"]]
    assert recorder.threads == [threading.current_thread().name]


def test_requests_arriving_during_a_write_go_out_together_each_with_its_own_result(
    pool: ThreadPoolExecutor,
) -> None:
    recorder = Recorder()
    sizes: list[int] = []
    committer: GroupCommitter[str, str] = GroupCommitter(
        recorder, GroupLimits(max_writers=1), on_group=sizes.append
    )
    head, later = queue_behind_a_held_group(
        committer, recorder, pool, "a", [("b", 1), ("c", 3), ("d", 1)]
    )
    recorder.gate.set()
    assert head.result(10) == "a:ok"
    assert [f.result(10) for f in later] == ["b:ok", "c:ok", "d:ok"]
    assert recorder.groups == [["a"], ["b", "c", "d"]]
    assert sizes == [1, 5]


def test_groups_are_capped_in_jobs(pool: ThreadPoolExecutor) -> None:
    recorder = Recorder()
    committer: GroupCommitter[str, str] = GroupCommitter(
        recorder, GroupLimits(max_writers=1, max_jobs=4)
    )
    head, later = queue_behind_a_held_group(
        committer, recorder, pool, "a", [("b", 2), ("c", 2), ("d", 9), ("e", 1)]
    )
    recorder.gate.set()
    assert [f.result(10) for f in [head, *later]] == ["a:ok", "b:ok", "c:ok", "d:ok", "e:ok"]
    assert recorder.groups == [["a"], ["b", "c"], ["d"], ["e"]]


def test_up_to_max_writers_groups_are_written_at_once(pool: ThreadPoolExecutor) -> None:
    recorder = Recorder()
    committer: GroupCommitter[str, str] = GroupCommitter(recorder, GroupLimits(max_writers=2))
    recorder.hold()
    first = pool.submit(committer.run, "a", 1)
    second = pool.submit(committer.run, "b", 1)
    wait_for(lambda: len(recorder.groups), what="two groups in flight", until=lambda n: n == 2)
    third = pool.submit(committer.run, "c", 1)
    wait_for(committer.queued, what="the third queued", until=lambda n: n == 1)
    assert len(recorder.groups) == 2  # both writer slots busy: it waits
    recorder.gate.set()
    assert [f.result(10) for f in (first, second, third)] == ["a:ok", "b:ok", "c:ok"]
    assert sorted(map(tuple, recorder.groups)) == [("a",), ("b",), ("c",)]


def test_the_next_group_commits_while_the_last_one_publishes(pool: ThreadPoolExecutor) -> None:
    """`then` (the publish) runs with the writer slot free; its callers wait for it."""
    publishing = threading.Event()
    published = threading.Event()
    commits: list[list[str]] = []

    def publish() -> None:
        publishing.set()
        assert published.wait(10)

    def commit(requests: Sequence[str]) -> Written[str]:
        commits.append(list(requests))
        if requests == ["a"]:
            return Written(["a:ok"], then=publish)
        return Written([f"{r}:ok" for r in requests])

    committer: GroupCommitter[str, str] = GroupCommitter(commit, GroupLimits(max_writers=1))
    first = pool.submit(committer.run, "a", 1)
    assert publishing.wait(10)
    assert committer.run("b", 1) == "b:ok"  # committed with one writer while "a" publishes
    assert not first.done()
    assert committer.close(timeout=0.05) is False  # "a" is not handed out yet
    published.set()
    assert first.result(10) == "a:ok"
    assert committer.close(timeout=1) is True
    assert commits == [["a"], ["b"]]


def test_a_failed_publish_fails_its_group() -> None:
    def commit(requests: Sequence[str]) -> Written[str]:
        def then() -> None:
            raise RuntimeError("publish broke")

        return Written([f"{r}:ok" for r in requests], then)

    committer: GroupCommitter[str, str] = GroupCommitter(commit, GroupLimits())
    with pytest.raises(RuntimeError, match="publish broke"):
        committer.run("a", 1)


def test_a_requests_own_failure_reaches_only_its_caller(pool: ThreadPoolExecutor) -> None:
    recorder = Recorder()
    committer: GroupCommitter[str, str] = GroupCommitter(recorder, GroupLimits(max_writers=1))
    head, (good, bad, other) = queue_behind_a_held_group(
        committer, recorder, pool, "a", [("b", 1), ("bad", 1), ("c", 1)]
    )
    recorder.gate.set()
    assert head.result(10) == "a:ok"
    assert (good.result(10), other.result(10)) == ("b:ok", "c:ok")
    with pytest.raises(ValueError, match="bad"):
        bad.result(10)
    assert recorder.groups == [["a"], ["b", "bad", "c"]]


@pytest.mark.parametrize(
    "failure",
    [ConnectionError("database down"), KeyboardInterrupt()],
    ids=["error", "interrupt"],
)
def test_a_failed_group_fails_every_caller_and_the_next_group_still_goes(
    pool: ThreadPoolExecutor, failure: BaseException
) -> None:
    """An error, or a writer cut off mid-write (an interrupt), fails its whole group rather than
    leaving the callers waiting, and frees its writer slot for the next group."""
    calls: list[list[str]] = []
    release = threading.Event()

    def commit(requests: Sequence[str]) -> Written[str]:
        calls.append(list(requests))
        if len(calls) == 1:
            assert release.wait(10)
        if len(calls) == 2:
            raise failure
        return Written([f"{r}:ok" for r in requests])

    committer: GroupCommitter[str, str] = GroupCommitter(commit, GroupLimits(max_writers=1))
    head = pool.submit(committer.run, "a", 1)
    wait_for(lambda: calls, what="the first group written")
    later = [pool.submit(committer.run, r, 1) for r in ("b", "c")]
    wait_for(committer.queued, what="two queued", until=lambda n: n == 2)
    release.set()
    assert head.result(10) == "a:ok"
    for future in later:
        with pytest.raises(type(failure)):
            future.result(10)
    assert committer.run("d", 1) == "d:ok"
    assert calls == [["a"], ["b", "c"], ["d"]]


def test_close_fails_the_queued_finishes_the_written_and_refuses_new(
    pool: ThreadPoolExecutor,
) -> None:
    recorder = Recorder()
    committer: GroupCommitter[str, str] = GroupCommitter(recorder, GroupLimits(max_writers=1))
    head, (queued,) = queue_behind_a_held_group(committer, recorder, pool, "a", [("b", 1)])
    assert committer.close(timeout=0.05) is False  # "a" is still being written
    with pytest.raises(ClosedError):
        queued.result(10)
    with pytest.raises(ClosedError):
        committer.run("c", 1)
    recorder.gate.set()
    assert head.result(10) == "a:ok"
    assert committer.close(timeout=1) is True
    assert recorder.groups == [["a"]]


def test_the_knobs_come_from_the_environment() -> None:
    assert GatewayConfig.from_env(Env({})).groups == GroupLimits(max_writers=1, max_jobs=500)
    config = GatewayConfig.from_env(
        Env({"GATEWAY_GROUP_COMMIT_WRITERS": "4", "GATEWAY_GROUP_COMMIT_MAX_JOBS": "100"})
    )
    assert config.groups == GroupLimits(max_writers=4, max_jobs=100)
    for name in ("GATEWAY_GROUP_COMMIT_WRITERS", "GATEWAY_GROUP_COMMIT_MAX_JOBS"):
        with pytest.raises(ConfigError, match=name):
            GatewayConfig.from_env(Env({name: "0"}))
