"""What every job shares (synthetic /etc, launcher, seccomp program) no job can change or reach."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

import pytest

from clearance.sandbox import JobResult, Sandbox
from clearance.sandbox.launch import ETC_ALLOWLIST, SYNTHETIC_ETC
from clearance.sandbox.skeleton import Skeleton

pytestmark = pytest.mark.sandbox

RunPy = Callable[..., JobResult]
Report = Callable[[JobResult], dict[str, Any]]


def test_a_job_cannot_change_the_shared_etc_files(
    run_py: RunPy, report: Report, sandbox: Sandbox
) -> None:
    code = f"""
import json, os
out = {{}}
for name in {sorted(SYNTHETIC_ETC)!r}:
    path = "/etc/" + name
    try:
        with open(path, "a") as fh:
            fh.write("mallory:x:0:0::/:/bin/sh\\n")
        out[name] = "written"
    except OSError as exc:
        out[name] = exc.strerror
    for attempt in (lambda: os.chmod(path, 0o666), lambda: os.unlink(path),
                    lambda: os.rename(path, path + ".old")):
        try:
            attempt()
            out[name + ":meta"] = "changed"
        except OSError:
            pass
print(json.dumps(out))
"""
    outcome = report(run_py(code))
    assert sorted(outcome) == sorted(SYNTHETIC_ETC), outcome  # no write or metadata change
    assert "written" not in outcome.values()
    etc = Skeleton.prepare(sandbox.work_dir).etc_dir
    for name, text in SYNTHETIC_ETC.items():
        assert (etc / name).read_text() == text
        info = (etc / name).stat()
        assert info.st_uid == os.geteuid()
        assert info.st_mode & 0o022 == 0  # a per-job uid cannot write it on the host either


def test_a_job_holds_no_descriptor_of_the_shared_seccomp_program(
    run_py: RunPy, report: Report
) -> None:
    code = """
import json, os
fds = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        fds[fd] = os.readlink("/proc/self/fd/" + fd)
    except OSError:
        pass
print(json.dumps(fds))
"""
    fds = report(run_py(code))
    assert not [t for t in fds.values() if "memfd" in t or "seccomp" in t], fds
    assert set(fds) - {"0", "1", "2"} <= {str(n) for n in range(3, 5)}, fds


def test_a_job_sees_the_hosts_loader_and_tls_files_but_no_other_host_etc(
    run_py: RunPy, report: Report
) -> None:
    code = """
import hashlib, json, os
seen = {}
for path in ("/etc/nsswitch.conf", "/etc/ld.so.cache", "/etc/ssl/certs/ca-certificates.crt"):
    try:
        seen[path] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    except OSError as exc:
        seen[path] = exc.strerror
seen["listing"] = sorted(os.listdir("/etc"))
print(json.dumps(seen))
"""
    seen = report(run_py(code))
    for path in ("/etc/nsswitch.conf", "/etc/ld.so.cache", "/etc/ssl/certs/ca-certificates.crt"):
        if os.path.exists(path):
            with open(path, "rb") as fh:
                assert seen[path] == hashlib.sha256(fh.read()).hexdigest(), path
    assert "shadow" not in seen["listing"]
    assert "passwd" in seen["listing"]
    assert set(seen["listing"]) <= {
        *SYNTHETIC_ETC,
        *(p.removeprefix("/etc/").split("/")[0] for p in ETC_ALLOWLIST),
    }
