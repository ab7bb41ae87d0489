"""The job lifecycle: inputs in, outputs out, nothing left over, kill switch, fail closed."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
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


def _our_uid_claims(sandbox: Sandbox) -> list[str]:
    """Per-job uids this test process holds (other gates may share the work directory)."""
    uids = sandbox.work_dir / "uids"
    if not uids.is_dir():
        return []
    mine = str(os.getpid())
    return sorted(
        d.name for d in uids.iterdir() if (d / "pid").is_file() and (d / "pid").read_text() == mine
    )


def _processes_with(token: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if token.encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:
            continue
    return found


def test_nothing_of_a_job_survives_it_once_torn_down(sandbox: Sandbox) -> None:
    job_id = f"leftover-{uuid.uuid4().hex[:12]}"
    result = sandbox.run(Job(kind="shell", code="echo x > f; sleep 0.1"), job_id=job_id)
    assert result.output_files == {"f": b"x\n"}
    assert sandbox.running_jobs() == {}
    sandbox.drain(timeout=10)
    assert not (sandbox.work_dir / "jobs" / job_id).exists()
    assert job_id not in Path("/proc/self/mountinfo").read_text()
    assert list(Path("/sys/fs/cgroup").glob(f"**/clearance-{job_id}")) == []
    assert _our_uid_claims(sandbox) == []


def test_no_process_of_a_job_survives_run_even_before_teardown(sandbox: Sandbox) -> None:
    token = f"linger-{uuid.uuid4().hex}"
    job_id = f"early-{uuid.uuid4().hex[:12]}"
    code = f"setsid sh -c 'sleep 300 {token}' & sleep 300 {token} & sleep 0.2; echo started"
    with sandbox.reaper.hold():  # teardown cannot run: the kill must already have happened
        result = sandbox.run(Job(kind="shell", code=code), job_id=job_id)
        assert result.stdout == b"started\n"
        assert _processes_with(token) == []
        assert (sandbox.work_dir / "jobs" / job_id).is_dir()  # not reaped yet
        for procs in Path("/sys/fs/cgroup").glob(f"**/clearance-{job_id}/cgroup.procs"):
            assert procs.read_text() == ""
        assert job_id in sandbox.reaper.pending()
    sandbox.drain(timeout=10)
    assert not (sandbox.work_dir / "jobs" / job_id).exists()


def test_a_job_cannot_read_a_previous_jobs_unreaped_directory(sandbox: Sandbox) -> None:
    token = f"previous-job-secret-{uuid.uuid4().hex}"
    first_id = f"first-{uuid.uuid4().hex[:12]}"
    first_dir = sandbox.work_dir / "jobs" / first_id
    with sandbox.reaper.hold():
        first = sandbox.run(
            Job(kind="shell", code=f"echo {token} > secret.txt; echo {token} > /tmp/secret.txt"),
            job_id=first_id,
        )
        assert first.output_files == {"secret.txt": f"{token}\n".encode()}
        assert (first_dir / "out" / "secret.txt").read_text() == f"{token}\n"  # still there
        claims = _our_uid_claims(sandbox)
        code = f"""
import glob, json, os
token = "{token[:20]}" + "{token[20:]}"  # never whole in this program's own text
found = []
paths = ["{first_dir}/out/secret.txt", "/proc/1/root{first_dir}/out/secret.txt"]
paths += glob.glob("/proc/*/root{first_dir}/out/*") + glob.glob("/tmp/*/jobs/*/out/*")
paths += glob.glob("/job/out/*") + glob.glob("/tmp/*")
for dirpath, dirnames, filenames in os.walk("/"):  # all but the host's /usr and kernel trees
    dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in ("/usr", "/proc", "/dev")]
    paths += [os.path.join(dirpath, f) for f in filenames]
for path in paths:
    try:
        with open(path, "rb") as fh:
            if token.encode() in fh.read(1 << 20):
                found.append(path)
    except OSError:
        pass
print(json.dumps({{"found": found}}))
"""
        second = sandbox.run(Job(kind="python", code=code), SandboxLimits(wall_seconds=20))
        assert second.stdout.strip().endswith(b"}"), second.stderr
        assert json.loads(second.stdout) == {"found": []}
        assert len(_our_uid_claims(sandbox)) == len(claims) + 1  # a fresh uid, not the first's
        assert first_dir.is_dir()
    sandbox.drain(timeout=10)
    assert not first_dir.exists()


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


def test_an_unusable_work_directory_refuses_the_job_with_the_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    marker = tmp_path / "ran"
    box = Sandbox(work_dir=blocker / "work")
    with pytest.raises(SandboxError, match="cannot prepare the sandbox work directory") as info:
        box.run(Job(kind="argv", argv=("/usr/bin/touch", str(marker))))
    assert "not-a-directory/work" in str(info.value)
    assert not marker.exists()
