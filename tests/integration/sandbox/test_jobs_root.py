"""Job directories of a root gate live on one tmpfs, mounted once and shared by every gate."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from clearance.sandbox import Job, Sandbox

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(os.geteuid() != 0, reason="only a root gate mounts the jobs tmpfs"),
]


def _mounts_at(path: Path) -> list[str]:
    return [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines()
        if line.split()[4] == str(path)
    ]  # fmt: skip


@pytest.fixture
def work_dir(sandbox: Sandbox) -> Iterator[Path]:  # the session sandbox proves a backend works here
    base = Path("/var/tmp") / f"clearance-jobs-root-{os.getpid()}-{threading.get_ident()}"
    base.mkdir(mode=0o711)
    yield base
    libc = ctypes.CDLL(None, use_errno=True)
    while _mounts_at(base / "jobs"):
        libc.umount2(str(base / "jobs").encode(), 2)
    for child in sorted(base.rglob("*"), reverse=True):
        if child.is_symlink() or child.is_file():
            child.unlink()
        else:
            child.rmdir()
    base.rmdir()


def test_two_gates_share_one_jobs_tmpfs_and_run_jobs_on_it(work_dir: Path) -> None:
    first, second = Sandbox(work_dir=work_dir), Sandbox(work_dir=work_dir)
    results = []
    for box in (first, second):
        with box:
            results.append(box.run(Job(kind="shell", code="echo hi > f; echo ok")))
    assert [r.stdout for r in results] == [b"ok\n", b"ok\n"]
    assert [r.output_files for r in results] == [{"f": b"hi\n"}, {"f": b"hi\n"}]
    mounts = _mounts_at(work_dir / "jobs")
    assert len(mounts) == 1, mounts  # the second gate did not hide the first one's jobs
    assert " - tmpfs " in mounts[0]
    assert "nosuid" in mounts[0]
    assert "nodev" in mounts[0]
    assert (work_dir / "jobs").stat().st_mode & 0o777 == 0o711
    assert list((work_dir / "jobs").iterdir()) == []  # both closed: every job torn down
