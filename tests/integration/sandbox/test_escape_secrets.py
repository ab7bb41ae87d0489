"""The gate's environment never reaches a job, directly or through /proc."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from clearance.sandbox import JobResult

pytestmark = pytest.mark.sandbox

RunPy = Callable[..., JobResult]
Report = Callable[[JobResult], dict[str, Any]]


def test_gate_environment_variables_are_not_visible(
    run_py: RunPy, report: Report, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = f"fake-secret-{uuid.uuid4().hex}"
    monkeypatch.setenv("CLEARANCE_FAKE_SECRET", secret)
    code = """
import glob, json, os
blobs = [repr(dict(os.environ))]
for path in glob.glob("/proc/*/environ") + glob.glob("/proc/*/cmdline"):
    try:
        blobs.append(open(path, "rb").read().decode(errors="replace"))
    except OSError:
        pass
pids = [p for p in os.listdir("/proc") if p.isdigit()]
print(json.dumps({"blob": "\\n".join(blobs), "pids": pids}))
"""
    seen = report(run_py(code))
    assert secret not in seen["blob"]
    assert "CLEARANCE_FAKE_SECRET" not in seen["blob"]
    # only the sandbox's own processes: its init, the job, maybe a short-lived child
    assert len(seen["pids"]) <= 3, seen["pids"]
