"""Shutdown on SIGTERM in a child process: the stop event is set whatever the main thread was
doing when the signal came, and whichever thread the kernel handed it to."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from services.common import lifecycle

CHILD_TIMEOUT_S = 20.0


def run_child(body: str, setup: str = "stop = lifecycle.shutdown_event()") -> str:
    """Runs `setup`, then `body`, in a fresh interpreter; its output."""
    script = f"import os, signal, threading, time\nfrom services.common import lifecycle\n{setup}\n"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    try:
        done = subprocess.run(
            [sys.executable, "-c", script + textwrap.dedent(body)],
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"the child hung for {CHILD_TIMEOUT_S:g}s after SIGTERM: {hung.stderr!r}")
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_sigterm_while_the_main_thread_holds_the_events_lock_sets_it() -> None:
    # The main thread holds the event's lock for a few bytecodes on entering and leaving
    # stop.wait(); a Python handler calling stop.set() there waited for itself forever.
    out = run_child("""
        with stop._cond:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10_000):  # bytecodes: a Python-level handler runs among these
                pass
        print("stopped" if stop.wait(10) else "still running")
    """)
    assert out == "stopped"


def test_sigterm_handed_to_another_thread_wakes_the_main_thread() -> None:
    # The kernel may hand a process's signal to any thread not blocking it; the main thread,
    # asleep in stop.wait(), is then not interrupted and would run no Python handler.
    out = run_child("""
        sleeper = threading.Thread(target=time.sleep, args=(30,), daemon=True)
        sleeper.start()
        threading.Timer(0.2, signal.pthread_kill, (sleeper.ident, signal.SIGTERM)).start()
        began = time.monotonic()
        stopped = stop.wait(10)
        print(f"{stopped} {time.monotonic() - began:.1f}")
    """)
    stopped, seconds = out.split()
    assert stopped == "True" and float(seconds) < 5, out


def test_sigint_sets_it_and_other_signals_set_their_own_events() -> None:
    setup = "repair = threading.Event()\nstop = lifecycle.shutdown_event({signal.SIGUSR1: repair})"
    out = run_child(
        """
        os.kill(os.getpid(), signal.SIGUSR1)
        print("usr1", repair.wait(10), stop.wait(0.5))
        os.kill(os.getpid(), signal.SIGINT)
        print("int", stop.wait(10))
        """,
        setup,
    )
    assert out.splitlines() == ["usr1 True False", "int True"]


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    delays = lifecycle.backoff(initial=0.2, cap=1.0)
    first = [next(delays) for _ in range(8)]
    assert 0.1 <= first[0] <= 0.2
    assert all(0.5 <= delay <= 1.0 for delay in first[4:])
