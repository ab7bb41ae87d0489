"""Escapes through processes: tracing, fork bombs, lingering daemons, endless sleep."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clearance.sandbox import JobResult

pytestmark = pytest.mark.sandbox

RunPy = Callable[..., JobResult]
Report = Callable[[JobResult], dict[str, Any]]


def test_ptrace_of_the_parent_is_refused(run_py: RunPy, report: Report) -> None:
    code = """
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH = 16
out = {}
for name, pid in (("parent", os.getppid()), ("init", 1)):
    rc = libc.ptrace(PTRACE_ATTACH, pid, None, None)
    out[name] = [rc, ctypes.get_errno()]
print(json.dumps(out))
"""
    outcome = report(run_py(code))
    assert outcome["parent"][0] == -1
    assert outcome["init"][0] == -1


def test_fork_bomb_stops_at_the_process_cap(run_py: RunPy, report: Report) -> None:
    code = """
import json, os, time
children, error = [], None
for _ in range(300):
    try:
        pid = os.fork()
    except OSError as exc:
        error = exc.strerror
        break
    if pid == 0:
        time.sleep(5)
        os._exit(0)
    children.append(pid)
print(json.dumps({"forked": len(children), "error": error}))
"""
    outcome = report(run_py(code, processes=32))
    assert outcome["forked"] < 32
    assert outcome["error"] is not None


def test_sleep_forever_is_stopped_by_the_wall_clock(run_py: RunPy) -> None:
    result = run_py("import time\ntime.sleep(3600)", wall_seconds=1.0)
    assert result.stopped == "timeout"
    assert result.usage.wall_seconds < 3.0
    assert result.exit_code < 0


def test_background_process_does_not_outlive_the_job(run_py: RunPy) -> None:
    token = f"linger-{uuid.uuid4().hex}"
    code = f"""
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", ["/bin/sleep", "300", "{token}"])
    os._exit(0)
time.sleep(0.2)
print("parent done")
"""
    result = run_py(code)
    assert result.stdout == b"parent done\n"
    assert result.stopped == "exit"
    survivors = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if token.encode() in cmdline.read_bytes():
                survivors.append(cmdline.parent.name)
        except OSError:
            continue
    assert survivors == []
