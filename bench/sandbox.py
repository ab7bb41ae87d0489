"""Sandbox overhead: a trivial Python job through the sandbox vs the same job as a plain subprocess.

Run: ``python bench/sandbox.py [--runs 40] [--backend unshare]``. Both series run interleaved in one process, so load
from other work on the machine hits both alike; compare the ratio, not absolute numbers. Every
timed call checks its output. Then two worker threads run jobs back to back for a few seconds to
measure throughput. Finished jobs are torn down by the sandbox's background reaper; the last
line says how long the backlog took to drain once the workers stopped (a reaper that cannot keep
up shows there), and the run fails if any job directory is left behind.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import threading
import time

from clearance.model.ids import new_ulid
from clearance.sandbox import Job, Sandbox, SandboxLimits

CODE = "print(6 * 7)"
JOB_PREFIX = "bench-"
PYTHON = "/usr/bin/python3"


def plain() -> float:
    started = time.monotonic()
    done = subprocess.run([PYTHON, "-c", CODE], capture_output=True, check=True, timeout=30)
    elapsed = time.monotonic() - started
    assert done.stdout == b"42\n"
    return elapsed


def sandboxed(box: Sandbox, limits: SandboxLimits) -> float:
    started = time.monotonic()
    result = box.run(Job(kind="python", code=CODE), limits, job_id=JOB_PREFIX + new_ulid().lower())
    elapsed = time.monotonic() - started
    assert result.stdout == b"42\n", result
    assert result.stopped == "exit"
    return elapsed


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def throughput(box: Sandbox, limits: SandboxLimits, workers: int, seconds: float) -> float:
    counts = [0] * workers
    stop = time.monotonic() + seconds

    def work(i: int) -> None:
        while time.monotonic() < stop:
            sandboxed(box, limits)
            counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--backend", choices=("auto", "bwrap", "unshare"), default="auto")
    args = parser.parse_args()
    box = Sandbox(args.backend)
    limits = SandboxLimits(wall_seconds=10)
    sandboxed(box, limits)  # select the backend and warm caches outside the timing
    plain()
    base, boxed = [], []
    for _ in range(args.runs):
        base.append(plain())
        boxed.append(sandboxed(box, limits))
    rows = [("plain subprocess", base), (f"sandbox ({box.backend})", boxed)]
    for name, values in rows:
        print(
            f"{name:24s} median {statistics.median(values) * 1000:7.1f} ms   "
            f"p90 {p90(values) * 1000:7.1f} ms   min {min(values) * 1000:7.1f} ms"
        )
    print(
        f"ratio sandbox/plain      median {statistics.median(boxed) / statistics.median(base):.2f}x"
        f"   p90 {p90(boxed) / p90(base):.2f}x"
    )
    rate = throughput(box, limits, workers=2, seconds=args.seconds)
    print(f"throughput, 2 workers    {rate:.1f} jobs/s")
    started = time.monotonic()
    box.close()
    print(
        f"teardown backlog drained {(time.monotonic() - started) * 1000:.1f} ms after the last job"
    )
    assert not list((box.work_dir / "jobs").glob(f"{JOB_PREFIX}*")), "job directories left behind"


if __name__ == "__main__":
    main()
