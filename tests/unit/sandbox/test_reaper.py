"""The reaper runs every teardown once, in order, off the caller's thread, and reports failures."""

from __future__ import annotations

import functools
import threading

import pytest

from clearance.errors import SandboxError
from clearance.sandbox.reaper import Reaper


def test_teardowns_run_in_order_on_another_thread_and_drain_waits_for_them() -> None:
    reaper = Reaper()
    ran: list[tuple[str, str]] = []
    release = threading.Event()

    def teardown(name: str) -> None:
        release.wait(5)
        ran.append((name, threading.current_thread().name))

    for name in ("a", "b", "c"):
        reaper.submit(name, functools.partial(teardown, name))
    assert ran == []  # submit returned while the first teardown was still blocked
    assert reaper.pending() == ["a", "b", "c"]
    release.set()
    reaper.drain(timeout=5)
    assert [name for name, _ in ran] == ["a", "b", "c"]
    assert {thread for _, thread in ran} == {"clearance-sandbox-reaper"}
    assert reaper.pending() == []


def test_a_failed_teardown_is_reported_by_drain_and_does_not_stop_the_others() -> None:
    reaper = Reaper()
    ran: list[str] = []

    def broken() -> None:
        raise OSError("device or resource busy")

    reaper.submit("broken-job", broken)
    reaper.submit("fine-job", lambda: ran.append("fine-job"))
    with pytest.raises(SandboxError, match=r"broken-job: device or resource busy"):
        reaper.drain(timeout=5)
    assert ran == ["fine-job"]
    reaper.drain(timeout=5)  # reported once, then cleared


def test_hold_defers_teardown_until_the_block_ends() -> None:
    reaper = Reaper()
    ran: list[str] = []
    with reaper.hold():
        reaper.submit("held", lambda: ran.append("held"))
        assert not reaper.wait("held", timeout=0.2)
        assert ran == []
    assert reaper.wait("held", timeout=5)
    assert ran == ["held"]


def test_drain_times_out_with_the_pending_jobs_named() -> None:
    reaper = Reaper()
    with reaper.hold():
        reaper.submit("stuck", lambda: None)
        with pytest.raises(SandboxError, match="stuck"):
            reaper.drain(timeout=0.1)
    reaper.drain(timeout=5)


def test_the_worker_thread_exits_when_idle() -> None:
    reaper = Reaper()
    reaper.submit("one", lambda: None)
    reaper.drain(timeout=5)
    for thread in threading.enumerate():
        if thread.name == "clearance-sandbox-reaper":
            thread.join(5)
    assert "clearance-sandbox-reaper" not in {t.name for t in threading.enumerate()}
    ran: list[str] = []
    reaper.submit("two", lambda: ran.append("two"))  # a new worker starts on demand
    reaper.drain(timeout=5)
    assert ran == ["two"]
