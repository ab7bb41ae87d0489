"""Escapes through the file system: each is tried for real from inside the sandbox."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clearance.sandbox import JobResult, Sandbox

pytestmark = pytest.mark.sandbox

RunPy = Callable[..., JobResult]
Report = Callable[[JobResult], dict[str, Any]]


def test_writes_outside_the_output_directory_fail(
    run_py: RunPy, report: Report, sandbox: Sandbox
) -> None:
    token = uuid.uuid4().hex
    host_tmp_target = Path("/tmp") / f"escape-{token}"
    other_job = sandbox.work_dir / "jobs" / f"escape-{token}"
    targets = ["/etc/x", "/usr/lib/x", "/x", "/job/in/x", "/proc/x", "/dev/x", str(other_job)]
    code = f"""
import json
results = {{}}
for path in {targets!r}:
    try:
        with open(path, "w") as fh:
            fh.write("pwned")
        results[path] = "written"
    except OSError as exc:
        results[path] = exc.strerror
with open("{host_tmp_target}", "w") as fh:  # lands in the private /tmp, not the host's
    fh.write("pwned")
with open("/job/out/ok.txt", "w") as fh:
    fh.write("fine")
print(json.dumps(results))
"""
    result = run_py(code)
    outcome = report(result)
    assert all(v != "written" for v in outcome.values()), outcome
    assert not host_tmp_target.exists()
    assert not other_job.exists()
    assert result.output_files == {"ok.txt": b"fine"}


def test_etc_shadow_is_unreadable(run_py: RunPy, report: Report) -> None:
    assert Path("/etc/shadow").exists()
    code = """
import json
try:
    print(json.dumps({"read": open("/etc/shadow").read()}))
except OSError as exc:
    print(json.dumps({"error": exc.strerror}))
"""
    assert "read" not in report(run_py(code))


def test_another_jobs_directory_is_invisible(
    run_py: RunPy, report: Report, sandbox: Sandbox
) -> None:
    # a concurrently existing job directory with a world-readable secret, at its host path
    other = sandbox.work_dir / "jobs" / f"other-{uuid.uuid4().hex}"
    (other / "out").mkdir(parents=True)
    secret = other / "out" / "secret.txt"
    secret.write_text("other-job-secret")
    os.chmod(other, 0o755)
    secret.chmod(0o644)
    try:
        code = f"""
import json, glob
found = []
for pattern in ("{secret}", "/tmp/*/jobs/*/out/*", "/proc/*/root{secret}"):
    for path in glob.glob(pattern) or [pattern]:
        try:
            found.append(open(path).read())
        except OSError:
            pass
print(json.dumps({{"found": found}}))
"""
        assert report(run_py(code)) == {"found": []}
    finally:
        secret.unlink()
        (other / "out").rmdir()
        other.rmdir()


def test_proc_1_root_is_the_sandbox_not_the_host(run_py: RunPy, report: Report) -> None:
    marker = Path(f"/var/tmp/escape-marker-{uuid.uuid4().hex}")
    marker.write_text("host")
    marker.chmod(0o644)
    try:
        code = f"""
import json, os
seen = {{}}
for root in ("/proc/1/root", "/proc/self/root", f"/proc/{{os.getppid()}}/root"):
    try:
        seen[root] = open(root + "{marker}").read()
    except OSError as exc:
        seen[root] = exc.strerror
seen["listing"] = sorted(os.listdir("/proc/1/root"))
print(json.dumps(seen))
"""
        seen = report(run_py(code))
        assert "host" not in seen.values()
        assert "home" not in seen["listing"]
        assert "root" not in seen["listing"]
        assert "var" not in seen["listing"]
    finally:
        marker.unlink()
