"""The degraded backend: Landlock and seccomp only, no namespaces. Opt-in, never chosen by default.

Files, TCP, abstract unix sockets and signals are confined (Landlock ABI >= 6 is required, since
the IPC scopes are its only barrier there), sockets are limited to ``AF_UNIX`` by seccomp, and
the per-job uid and cgroup still apply. What it cannot hide: **the host's process list and
command lines** (there is no pid namespace), and there is no egress path (no network namespace
to put a bridge in). The job sees its real host paths, announced in ``CLEARANCE_JOB_IN`` and
``CLEARANCE_JOB_OUT``.
"""

from __future__ import annotations

import json

from clearance.sandbox.launch import ETC_ALLOWLIST, LaunchSpec

NAME = "landlock"


def argv(spec: LaunchSpec) -> list[str]:
    """The launcher command line for ``spec`` in Landlock-only mode."""
    tmp = str(spec.job_dir / "tmp")
    config = {
        "landlock_read": ["/usr", *ETC_ALLOWLIST, "/proc", "/dev", spec.in_dir],
        "landlock_write": [tmp, spec.out_dir, "/dev/null"],
        "bridge_port": None,
        "seccomp_fd": spec.seccomp_fd,
        "cwd": spec.out_dir,
        "env": spec.environment(tmp),
    }
    return spec.launcher_command("landlock", json.dumps(config), str(spec.launcher))
