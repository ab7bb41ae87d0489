"""The read-only parts every job shares, prepared once per :class:`Sandbox` instead of per job.

Three things are the same for every job and cost time to make: the synthetic ``/etc`` files,
the in-sandbox launcher and the compiled seccomp program. They are made once here, and no job
can change them:

* the synthetic ``/etc`` files and the launcher live in the work directory, owned by the gate
  with mode 0644 (a per-job uid cannot write them on the host), and every backend mounts them
  read-only; their content is checked, and rewritten, whenever a skeleton is prepared;
* each seccomp program lives in a **sealed** memfd (no write, grow, shrink or new seals), and
  every job gets its own read-only file description of it (:meth:`Skeleton.open_filter`), so
  jobs share neither the bytes' writability nor a file offset.

::

    skeleton = Skeleton.prepare(work_dir)
    fd = skeleton.open_filter(NETWORK_FAMILIES)    # pass to the backend; close after spawning
"""

from __future__ import annotations

import fcntl
import os
import threading
import weakref
from pathlib import Path

from clearance.errors import SandboxError
from clearance.sandbox.launch import SYNTHETIC_ETC
from clearance.sandbox.seccomp import build_filter

_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE


def _write_if_changed(target: Path, content: bytes) -> None:
    """Make ``target`` hold ``content`` with mode 0644, replacing it atomically if it differs."""
    try:
        info = target.lstat()
        if info.st_mode & 0o7777 == 0o644 and target.read_bytes() == content:
            return
    except OSError:
        pass
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_bytes(content)
    tmp.chmod(0o644)
    tmp.replace(target)


def _sealed_memfd(name: str, content: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.write(fd, content)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except OSError as exc:
        os.close(fd)
        raise SandboxError(f"cannot seal the seccomp program in a memfd: {exc}") from exc
    return fd


class Skeleton:
    """The shared read-only parts of one work directory. Create with :meth:`prepare`."""

    def __init__(self, etc_dir: Path, launcher: Path) -> None:
        self.etc_dir = etc_dir
        self.launcher = launcher
        self._filters: dict[tuple[int, ...], int] = {}
        self._lock = threading.Lock()

    @classmethod
    def prepare(cls, work_dir: Path) -> Skeleton:
        """Write (or check) the synthetic ``/etc`` and the launcher under ``work_dir``."""
        etc_dir = work_dir / "etc"
        etc_dir.mkdir(mode=0o755, exist_ok=True)
        etc_dir.chmod(0o755)
        for name, text in SYNTHETIC_ETC.items():
            _write_if_changed(etc_dir / name, text.encode())
        launcher = work_dir / "launcher.py"
        _write_if_changed(launcher, Path(__file__).with_name("launcher.py").read_bytes())
        return cls(etc_dir, launcher)

    def open_filter(self, families: tuple[int, ...]) -> int:
        """A new read-only descriptor, at offset 0, of the sealed program for ``families``.

        The caller owns the descriptor (it is close-on-exec until passed to a child) and must
        close it once the job has started.
        """
        with self._lock:
            memfd = self._filters.get(families)
            if memfd is None:
                memfd = _sealed_memfd("clearance-seccomp", build_filter(families))
                self._filters[families] = memfd
                weakref.finalize(self, os.close, memfd)
        return os.open(f"/proc/self/fd/{memfd}", os.O_RDONLY | os.O_CLOEXEC)
