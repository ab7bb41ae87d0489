"""The job lifecycle: inputs in, outputs out, nothing left over, kill switch, fail closed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from clearance.errors import SandboxError
from clearance.sandbox import Job, JobResult, Sandbox, SandboxLimits

pytestmark = pytest.mark.sandbox


def test_inputs_stdin_and_output_files_round_trip(sandbox: Sandbox) -> None:
    job = Job(
        kind="shell",
        code="cat /job/in/data/in.txt; cat; mkdir sub; echo made > sub/made.txt; ln -s /etc/passwd link",
        files={"data/in.txt": b"from input\n"},
        stdin=b"from stdin\n",
    )
    result = sandbox.run(job, SandboxLimits(wall_seconds=10))
    assert result.stdout == b"from input\nfrom stdin\n"
    assert result.stopped == "exit"
    assert result.exit_code == 0
    assert result.output_files == {"sub/made.txt": b"made\n"}  # the symlink is not followed
    assert result.backend == sandbox.backend


def test_nothing_of_a_job_survives_it(sandbox: Sandbox) -> None:
    result = sandbox.run(Job(kind="shell", code="echo x > f; sleep 0.1"), job_id="leftover-check")
    assert result.output_files == {"f": b"x\n"}
    jobs = sandbox.work_dir / "jobs" if (sandbox.work_dir / "jobs").is_dir() else sandbox.work_dir
    assert not (jobs / "leftover-check").exists()
    assert "leftover-check" not in Path("/proc/self/mountinfo").read_text()
    leftovers = list(Path("/sys/fs/cgroup").glob("**/clearance-leftover-check"))
    assert leftovers == []
    assert sandbox.running_jobs() == {}


def test_kill_owner_stops_every_running_job_of_that_agent(sandbox: Sandbox) -> None:
    results: dict[str, JobResult] = {}

    def start(job_id: str, owner: str) -> None:
        results[job_id] = sandbox.run(
            Job(kind="shell", code="sleep 60 & sleep 60"),
            SandboxLimits(wall_seconds=30),
            job_id=job_id,
            owner=owner,
        )

    threads = [
        threading.Thread(target=start, args=("rogue-1", "agent-rogue")),
        threading.Thread(target=start, args=("rogue-2", "agent-rogue")),
        threading.Thread(target=start, args=("bystander", "agent-good")),
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(sandbox.running_jobs()) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    killed = sandbox.kill_owner("agent-rogue")
    assert sorted(killed) == ["rogue-1", "rogue-2"]
    threads[0].join(10)
    threads[1].join(10)
    assert sandbox.running_jobs() == {"bystander": "agent-good"}
    assert sandbox.kill_owner("agent-good") == ["bystander"]
    threads[2].join(10)
    for job_id in ("rogue-1", "rogue-2", "bystander"):
        assert results[job_id].stopped == "killed"
        assert results[job_id].usage.wall_seconds < 15


def test_no_backend_means_refusal_not_an_unsandboxed_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither bwrap nor unshare can be found
    marker = tmp_path / "ran"
    box = Sandbox()
    with pytest.raises(SandboxError, match="no sandbox backend works") as info:
        box.run(Job(kind="argv", argv=("/usr/bin/touch", str(marker))))
    assert "bwrap is not installed" in str(info.value)
    assert not marker.exists()


def test_degraded_mode_is_never_chosen_without_explicit_permission() -> None:
    with pytest.raises(SandboxError, match="allow_degraded"):
        Sandbox("landlock")


@pytest.mark.parametrize("backend", ["unshare", "landlock"])
def test_fallback_backends_confine_files_and_network(backend: str) -> None:
    box = Sandbox(backend, allow_degraded=True)  # type: ignore[arg-type]
    status = box.check(backend)
    if not status.ok:
        pytest.skip(f"{backend} does not work on this host: {status.reason}")
    code = """
import json, os, socket
out = {}
for name, action in (
    ("shadow", lambda: open("/etc/shadow").read()),
    ("write_usr", lambda: open("/usr/lib/escape", "w")),
    ("vsock", lambda: socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM)),
    ("tcp", lambda: socket.create_connection(("127.0.0.1", 22), timeout=1)),
):
    try:
        action()
        out[name] = "EXPOSED"
    except OSError:
        out[name] = "blocked"
open(os.environ["CLEARANCE_JOB_OUT"] + "/ok", "w").write("ok")
print(json.dumps(out))
"""
    result = box.run(Job(kind="python", code=code), SandboxLimits(wall_seconds=10))
    assert result.stdout.strip().endswith(b"}"), result.stderr
    assert b"EXPOSED" not in result.stdout
    assert result.output_files == {"ok": b"ok"}
    assert result.backend == backend
