"""Per-job cgroups: memory, process-count and CPU caps that hold across all of a job's processes,
plus a kill that reaches every process of the job at once.

Two layouts are handled:

* **v2** (``/sys/fs/cgroup`` is cgroup2 with ``memory``, ``pids`` and ``cpu`` available): one cgroup
  per job with ``memory.max``, ``memory.swap.max=0``, ``pids.max``, ``cpu.max``; killed with
  ``cgroup.kill``. The gate's own cgroup must allow children with those controllers (for
  example systemd ``Delegate=yes``).
* **v1 / hybrid**: one cgroup per controller (``memory``, ``pids``, ``cpu``) plus, when the v2
  ``unified`` tree is mounted, a sibling there for ``cgroup.kill``.

Job cgroups are created *under the gate's own cgroup*, so a job can never escape limits that
were placed on the gate. Creating them needs root (or delegation); without that the runner falls
back to rlimits and :func:`probe` says why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from clearance.sandbox.limits import SandboxLimits

CGROUP_ROOT = Path("/sys/fs/cgroup")
_V1_CONTROLLERS = ("memory", "pids", "cpu")
_CPU_PERIOD_US = 100_000
_PREFIX = "clearance-"


def _own_paths() -> dict[str, str]:
    """Map controller (``""`` for v2) to this process's cgroup path, from /proc/self/cgroup."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path.lstrip("/")
    return paths


def _write(path: Path, value: str) -> None:
    path.write_text(value)


@dataclass(frozen=True)
class CgroupLayout:
    """Where job cgroups go on this host; ``parents`` maps controller to parent directory."""

    version: int
    parents: dict[str, Path]
    kill_parent: Path | None


def probe() -> tuple[CgroupLayout | None, str]:
    """Find a usable layout, or return ``None`` and the reason there is none."""
    own = _own_paths()
    v2_controllers = CGROUP_ROOT / "cgroup.controllers"
    if v2_controllers.exists():
        available = set(v2_controllers.read_text().split())
        missing = {"memory", "pids", "cpu"} - available
        if missing:
            return None, f"cgroup v2 lacks controllers {sorted(missing)}"
        parent = CGROUP_ROOT / own.get("", "") / "clearance"
        layout = CgroupLayout(2, {"": parent}, parent)
    else:
        parents = {}
        for controller in _V1_CONTROLLERS:
            base = CGROUP_ROOT / controller
            if not (base / "cgroup.procs").exists():
                return None, f"cgroup v1 controller {controller!r} is not mounted"
            parents[controller] = base / own.get(controller, "")
        accounting = CGROUP_ROOT / "cpuacct"
        if (accounting / "cpuacct.usage").exists():  # CPU time; optional
            parents["cpuacct"] = accounting / own.get("cpuacct", "")
        unified = CGROUP_ROOT / "unified"
        kill_parent = unified / own.get("", "") if (unified / "cgroup.procs").exists() else None
        layout = CgroupLayout(1, parents, kill_parent)
    for parent in layout.parents.values():
        if not os.access(parent, os.W_OK):
            return None, f"cannot create cgroups under {parent} (needs root or delegation)"
    return layout, f"cgroup v{layout.version}"


@dataclass
class JobCgroup:
    """The cgroup(s) of one job. Create with :meth:`create`; always :meth:`remove`."""

    layout: CgroupLayout
    dirs: dict[str, Path]
    kill_dir: Path | None
    procs_files: list[Path] = field(default_factory=list)

    @classmethod
    def create(cls, layout: CgroupLayout, name: str, limits: SandboxLimits) -> JobCgroup:
        """Make the job's cgroups and write the limits into them.

        Raises:
            OSError: a directory or limit file could not be written; nothing is left behind.
        """
        group = cls(layout, {}, None)
        try:
            group._make(name, limits)
        except OSError:
            group.remove()
            raise
        return group

    @classmethod
    def existing(cls, layout: CgroupLayout, name: str) -> JobCgroup:
        """The cgroups a job named ``name`` left behind (for cleanup after a gate crash)."""
        leaf = _PREFIX + name
        dirs = {c: p / leaf for c, p in layout.parents.items() if (p / leaf).exists()}
        kill_dir = layout.kill_parent / leaf if layout.kill_parent is not None else None
        return cls(layout, dirs, kill_dir if kill_dir is not None and kill_dir.exists() else None)

    def _make(self, name: str, limits: SandboxLimits) -> None:
        leaf = _PREFIX + name
        quota = max(int(limits.cpu_cores * _CPU_PERIOD_US), 1000)
        if self.layout.version == 2:
            parent = self.layout.parents[""]
            if not parent.exists():
                parent.mkdir()
                _write(parent / "cgroup.subtree_control", "+memory +pids +cpu")
            d = parent / leaf
            d.mkdir()
            self.dirs[""] = d
            self.kill_dir = d
            _write(d / "memory.max", str(limits.memory_bytes))
            _write(d / "memory.swap.max", "0")
            _write(d / "pids.max", str(limits.processes))
            _write(d / "cpu.max", f"{quota} {_CPU_PERIOD_US}")
        else:
            for controller, parent in self.layout.parents.items():
                d = parent / leaf
                d.mkdir()
                self.dirs[controller] = d
            mem = self.dirs["memory"]
            _write(mem / "memory.limit_in_bytes", str(limits.memory_bytes))
            memsw = mem / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                _write(memsw, str(limits.memory_bytes))
            _write(self.dirs["pids"] / "pids.max", str(limits.processes))
            _write(self.dirs["cpu"] / "cpu.cfs_period_us", str(_CPU_PERIOD_US))
            _write(self.dirs["cpu"] / "cpu.cfs_quota_us", str(quota))
            if self.layout.kill_parent is not None:
                self.kill_dir = self.layout.kill_parent / leaf
                self.kill_dir.mkdir()
        self.procs_files = [d / "cgroup.procs" for d in self.dirs.values()]
        if self.kill_dir is not None and self.kill_dir not in self.dirs.values():
            self.procs_files.append(self.kill_dir / "cgroup.procs")

    def pids(self) -> list[int]:
        """Processes currently in the job's cgroup."""
        d = self.kill_dir or next(iter(self.dirs.values()), None)
        if d is None:
            return []
        try:
            return [int(p) for p in (d / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return []

    def kill(self) -> None:
        """SIGKILL every process of the job, including ones that left its session."""
        if self.kill_dir is not None and (self.kill_dir / "cgroup.kill").exists():
            with contextlib.suppress(FileNotFoundError):
                _write(self.kill_dir / "cgroup.kill", "1")
            return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def oom_kills(self) -> int:
        """How many processes the kernel OOM-killed because of this job's memory cap."""
        if self.layout.version == 2:
            text = _read(self.dirs.get("", Path()) / "memory.events")
        else:
            text = _read(self.dirs.get("memory", Path()) / "memory.oom_control")
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def cpu_seconds(self) -> float | None:
        """CPU time used by every process of the job, when the kernel accounts it."""
        if self.layout.version == 2:
            for line in _read(self.dirs.get("", Path()) / "cpu.stat").splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    return int(value) / 1e6
            return None
        text = _read(self.dirs.get("cpuacct", Path()) / "cpuacct.usage").strip()
        return int(text) / 1e9 if text.isdigit() else None

    def memory_peak(self) -> int | None:
        """Peak memory of the job, when the kernel reports it."""
        if self.layout.version == 2:
            text = _read(self.dirs.get("", Path()) / "memory.peak")
        else:
            text = _read(self.dirs.get("memory", Path()) / "memory.max_usage_in_bytes")
        return int(text) if text.strip().isdigit() else None

    def wait_empty(self, timeout: float) -> bool:
        """Kill and wait until no process is left in the job's cgroup; ``False`` on timeout.

        Usually the first look finds it empty: when a sandbox's pid 1 has been reaped, the kernel
        has already removed every other process of its pid namespace.
        """
        deadline = time.monotonic() + timeout
        while self.pids():
            if time.monotonic() > deadline:
                return False
            self.kill()
            time.sleep(0.0005)
        return True

    def remove(self, timeout: float = 2.0) -> bool:
        """Kill what is left and remove the directories; ``False`` if some would not go."""
        deadline = time.monotonic() + timeout
        dirs = [*self.dirs.values()]
        if self.kill_dir is not None and self.kill_dir not in dirs:
            dirs.append(self.kill_dir)
        if self.pids():
            self.kill()
        removed = True
        for d in dirs:
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as exc:
                    if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                        removed = False
                        break
                    self.kill()
                    time.sleep(0.002)
        return removed


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
