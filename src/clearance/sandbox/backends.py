"""Which sandbox backends work on this host, and a report saying why the others do not.

Detection runs a trivial job through each backend with the real lifecycle (uid drop, cgroup,
seccomp, mounts), because the static facts (a binary exists, a sysctl is set) do not prove a
backend works: an AppArmor user-namespace restriction, for one, only shows when bwrap runs.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess

from clearance.sandbox.cgroups import probe
from clearance.sandbox.launcher import landlock_abi
from clearance.sandbox.runner import DEGRADED, PREFERRED, BackendStatus, Sandbox


def available_backends(sandbox: Sandbox | None = None) -> list[BackendStatus]:
    """The status of every backend, the degraded one included, checked for real."""
    box = sandbox or Sandbox(allow_degraded=True)
    return [box.check(name) for name in (*PREFERRED, DEGRADED)]


def _bwrap_version() -> str:
    path = shutil.which("bwrap")
    if path is None:
        return "not installed"
    done = subprocess.run(
        [path, "--version"], capture_output=True, text=True, timeout=5, check=False
    )
    return done.stdout.strip() or done.stderr.strip()


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return "absent"


def doctor(sandbox: Sandbox | None = None) -> dict[str, object]:
    """A report for ``clearance doctor``: host facts, and each backend's status and reason."""
    layout, cgroup_reason = probe()
    return {
        "kernel": platform.release(),
        "arch": platform.machine(),
        "gate_uid": os.geteuid(),
        "bwrap": _bwrap_version(),
        "max_user_namespaces": _read("/proc/sys/user/max_user_namespaces"),
        "apparmor_restrict_unprivileged_userns": _read(
            "/proc/sys/kernel/apparmor_restrict_unprivileged_userns"
        ),
        "landlock_abi": landlock_abi(),
        "cgroups": cgroup_reason if layout else f"unavailable: {cgroup_reason}",
        "backends": available_backends(sandbox),
    }
