"""What every backend needs to start one job: paths, command, environment, limits.

Backends differ only in how they turn a :class:`LaunchSpec` into a command line; the job
directory layout, the synthetic ``/etc`` and the fixed environment are defined once, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clearance.sandbox.limits import SandboxLimits

# Host files a program needs to start and to speak TLS; nothing with secrets in it.
ETC_ALLOWLIST = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/alternatives",
    "/etc/ssl/certs",
    "/etc/ca-certificates.conf",
)
SYNTHETIC_ETC = {
    "passwd": "root:x:0:0:root:/job/out:/bin/sh\nsandbox:x:1000:1000:sandbox:/job/out:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n",
    "group": "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
    "resolv.conf": "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
    "hostname": "sandbox\n",
}
SANDBOX_UID = 1000
BRIDGE_PORT = 3128
EGRESS_SOCKET_INSIDE = "/run/egress.sock"
LAUNCHER_INSIDE = "/run/clearance-launcher"
LAUNCHER_MODULE = "clearance_launcher"
PATH = "/usr/local/bin:/usr/bin:/bin"
SANDBOX_TMP = "/tmp"  # noqa: S108 - the private tmpfs inside the sandbox, not the host /tmp


@dataclass(frozen=True)
class LaunchSpec:
    """One job, ready to start. ``in_dir``/``out_dir`` are the paths the *job* sees.

    ``launcher`` is the directory holding the launcher module and its bytecode.
    ``etc_dir`` is the job's whole ``/etc`` (see :mod:`clearance.sandbox.skeleton`); it is
    shared by every job of a work directory and always mounted read-only.
    """

    job_dir: Path
    etc_dir: Path
    command: tuple[str, ...]
    limits: SandboxLimits
    seccomp_fd: int
    launcher: Path
    python: str
    in_dir: str
    out_dir: str
    egress_socket: Path | None

    @property
    def host_in(self) -> Path:
        """The input directory on the host."""
        return self.job_dir / "in"

    @property
    def host_out(self) -> Path:
        """The output directory on the host."""
        return self.job_dir / "out"

    def environment(self, tmp: str) -> dict[str, str]:
        """The job's whole environment: fixed values, nothing inherited from the gate."""
        env = {
            "PATH": PATH,
            "HOME": self.out_dir,
            "TMPDIR": tmp,
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            "USER": "sandbox",
            "CLEARANCE_JOB_IN": self.in_dir,
            "CLEARANCE_JOB_OUT": self.out_dir,
        }
        if self.egress_socket is not None:
            proxy = f"http://127.0.0.1:{BRIDGE_PORT}"
            for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
                env[name] = env[name.lower()] = proxy
        return env

    def launcher_command(self, mode: str, config: str, launcher_dir: str) -> list[str]:
        """``python3 -I -S -B -c BOOT MODE CONFIG -- COMMAND``: the launcher then execs it.

        The launcher is imported as a module from ``launcher_dir`` rather than run as a script,
        because only an imported module's compiled bytecode is reused: the skeleton compiles
        it once, and each job skips compiling it again (Python checks that the bytecode is for
        this interpreter and this source, and compiles in memory if not).
        """
        boot = (
            f"import sys; sys.path.insert(0, {launcher_dir!r}); "
            f"from {LAUNCHER_MODULE} import main; sys.exit(main(sys.argv[1:]))"
        )
        return [self.python, "-I", "-S", "-B", "-c", boot, mode, config, "--", *self.command]
