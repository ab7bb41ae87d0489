"""Resource exhaustion: memory across processes, disk, output volume."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from clearance.sandbox import JobResult

pytestmark = pytest.mark.sandbox

RunPy = Callable[..., JobResult]
Report = Callable[[JobResult], dict[str, Any]]
MIB = 1024 * 1024


def test_several_processes_cannot_allocate_beyond_the_memory_cap(run_py: RunPy) -> None:
    # 6 x 100 MiB against a 128 MiB cap: a per-process limit would let every child through
    code = """
import os
pids = []
for _ in range(6):
    pid = os.fork()
    if pid == 0:
        block = bytearray(100 * 1024 * 1024)
        for i in range(0, len(block), 4096):
            block[i] = 1
        os._exit(0)
    pids.append(pid)
ok = sum(1 for pid in pids if os.waitpid(pid, 0)[1] == 0)
print(ok)
"""
    result = run_py(code, memory_bytes=128 * MIB)
    finished = int(result.stdout.strip() or b"0")
    assert finished <= 1, result
    assert result.usage.oom_kills >= 1 or result.stopped == "memory-cap"


def test_filling_the_disk_hits_the_size_caps(run_py: RunPy, report: Report) -> None:
    code = """
import json
out = {}
def fill(path, chunks):
    written = 0
    try:
        with open(path, "wb") as fh:
            for _ in range(chunks):
                fh.write(b"x" * 1024 * 1024)
                fh.flush()
                written += 1
    except OSError as exc:
        return [written, exc.strerror]
    return [written, None]
out["one_big_file"] = fill("/job/out/big", 64)
out["many_files"] = [fill(f"/job/out/f{i}", 3) for i in range(6)]
out["tmp"] = fill("/tmp/big", 64)
print(json.dumps(out))
"""
    outcome = report(run_py(code, file_bytes=4 * MIB, out_dir_bytes=8 * MIB, tmp_bytes=6 * MIB))
    assert outcome["one_big_file"] == [4, "File too large"]
    total = 4 + sum(written for written, _ in outcome["many_files"])
    assert total <= 8
    assert any(error == "No space left on device" for _, error in outcome["many_files"])
    assert outcome["tmp"][0] <= 6
    assert outcome["tmp"][1] is not None


def test_printing_50_mb_is_cut_at_the_output_cap(run_py: RunPy) -> None:
    code = "import sys\nfor _ in range(800):\n    sys.stdout.write('x' * 65536)\n"
    result = run_py(code, output_bytes=1_000_000)
    assert result.stopped == "output-cap"
    assert len(result.stdout) + len(result.stderr) <= 1_000_000
    assert result.usage.wall_seconds < 5
