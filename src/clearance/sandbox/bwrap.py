"""The bubblewrap backend: the preferred one.

bwrap builds a synthetic root (never ``--ro-bind / /``: read-only is not secret-free), unshares
every namespace, forbids nested user namespaces and loads the seccomp filter from a file
descriptor. It must run as the per-job uid, not as root: run as real root, bwrap keeps all
capabilities and maps the sandbox to host uid 0.

Each flag that is not obvious is there for a reason found by testing:
``--remount-ro /`` (bwrap's root tmpfs is otherwise writable), ``--remount-ro /dev`` (``--dev``
is a writable tmpfs), ``--new-session`` (TIOCSTI injection, CVE-2017-5226),
``--disable-userns`` (no re-gained capabilities in a nested namespace).
"""

from __future__ import annotations

import json

from clearance.sandbox.launch import (
    BRIDGE_PORT,
    EGRESS_SOCKET_INSIDE,
    LAUNCHER_INSIDE,
    SANDBOX_TMP,
    SANDBOX_UID,
    LaunchSpec,
)

NAME = "bwrap"


def argv(binary: str, spec: LaunchSpec) -> list[str]:
    """The full bwrap command line for ``spec``."""
    env = spec.environment(SANDBOX_TMP)
    cmd = [
        binary,
        "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
        "--unshare-cgroup", "--disable-userns", "--assert-userns-disabled",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "sandbox",
        "--die-with-parent", "--new-session", "--clearenv",
    ]  # fmt: skip
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    cmd += ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):
        cmd += ["--symlink", f"usr/{name}", f"/{name}"]
    cmd += ["--ro-bind", str(spec.etc_dir), "/etc"]
    cmd += [
        "--dev", "/dev", "--proc", "/proc", "--remount-ro", "/dev",
        "--perms", "1777", "--size", str(spec.limits.tmp_bytes), "--tmpfs", SANDBOX_TMP,
        "--ro-bind", str(spec.host_in), spec.in_dir,
        "--bind", str(spec.host_out), spec.out_dir,
    ]  # fmt: skip
    command = list(spec.command)
    if spec.egress_socket is not None:
        cmd += ["--bind", str(spec.egress_socket), EGRESS_SOCKET_INSIDE]
        cmd += ["--ro-bind", str(spec.launcher), LAUNCHER_INSIDE]
        config = {
            "bridge_port": BRIDGE_PORT,
            "bridge_socket": EGRESS_SOCKET_INSIDE,
            "cwd": spec.out_dir,
            "env": env,
        }
        command = spec.launcher_command("bwrap", json.dumps(config), LAUNCHER_INSIDE)
    cmd += ["--remount-ro", "/", "--chdir", spec.out_dir, "--seccomp", str(spec.seccomp_fd)]
    return [*cmd, "--", *command]
