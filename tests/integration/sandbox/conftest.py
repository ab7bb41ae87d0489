"""Fixtures for the sandbox escape suite: a real sandbox on this host, or a clear skip.

The suite skips only where no backend can work (no bubblewrap and no user namespaces) and
``CI`` is not ``true``; under CI a missing sandbox is a failure, because CI installs bubblewrap.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest

from clearance.errors import SandboxError
from clearance.sandbox import Job, JobResult, Sandbox, SandboxLimits


@pytest.fixture(scope="session")
def sandbox() -> Sandbox:
    box = Sandbox()
    try:
        _ = box.backend
    except SandboxError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must be able to sandbox: {exc}")
        pytest.skip(f"no sandbox backend on this host (bubblewrap and user namespaces): {exc}")
    return box


@pytest.fixture
def run_py(sandbox: Sandbox) -> Callable[..., JobResult]:
    """Run Python code in the sandbox with short test caps; keyword args override limits."""

    def run(code: str, **overrides: Any) -> JobResult:
        limits = SandboxLimits(**{"wall_seconds": 10.0, **overrides})
        return sandbox.run(Job(kind="python", code=code), limits)

    return run


def _report(result: JobResult) -> dict[str, Any]:
    lines = result.stdout.decode().strip().splitlines()
    assert lines, f"payload printed nothing; stderr: {result.stderr.decode()[-2000:]}"
    value: dict[str, Any] = json.loads(lines[-1])
    return value


@pytest.fixture
def report() -> Callable[[JobResult], dict[str, Any]]:
    """The JSON object an escape payload printed last; fails with its stderr if there is none."""
    return _report
