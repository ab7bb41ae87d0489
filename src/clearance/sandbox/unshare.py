"""The fallback backend without bubblewrap: util-linux ``unshare`` plus the stdlib launcher.

``unshare`` creates the namespaces (mapping the per-job uid to root of a new user namespace);
the launcher then builds the same synthetic root as bwrap, pivots into it, drops every
capability, applies Landlock and the seccomp filter and execs the job. It costs one extra Python
start per job compared with bwrap.
"""

from __future__ import annotations

import json

from clearance.sandbox.launch import (
    BRIDGE_PORT,
    EGRESS_SOCKET_INSIDE,
    SANDBOX_TMP,
    LaunchSpec,
)

NAME = "unshare"


def argv(binary: str, spec: LaunchSpec) -> list[str]:
    """The unshare + launcher command line for ``spec``."""
    binds = [(str(spec.etc_dir), "/etc")]
    config = {
        "root": str(spec.job_dir / "root"),
        "ro_binds": binds,
        "tmp_bytes": spec.limits.tmp_bytes,
        "in_dir": str(spec.host_in),
        "out_dir": str(spec.host_out),
        "egress_sock": str(spec.egress_socket) if spec.egress_socket else None,
        "landlock_read": ["/usr", "/etc", "/proc", "/dev", spec.in_dir],
        "landlock_write": [SANDBOX_TMP, spec.out_dir, "/dev/null"],
        "bridge_port": BRIDGE_PORT if spec.egress_socket else None,
        "bridge_socket": EGRESS_SOCKET_INSIDE,
        "seccomp_fd": spec.seccomp_fd,
        "cwd": spec.out_dir,
        "env": spec.environment(SANDBOX_TMP),
    }
    ns = [
        binary, "--user", "--map-root-user", "--mount", "--pid", "--fork", "--kill-child",
        "--net", "--ipc", "--uts", "--cgroup", "--propagation", "private",
    ]  # fmt: skip
    return ns + spec.launcher_command("unshare", json.dumps(config), str(spec.launcher))
