"""The host-side directory of one job: created fresh, torn down completely.

Job directories live under one jobs root; when the gate is root that root is a tmpfs mounted
once (:func:`prepare_jobs_root`), so laying a job out and deleting it are memory operations,
not journaled disk writes. Layout (``job_dir`` is 0711, so the job's uid may traverse it but
not list it)::

    in/      inputs, root-owned 0644: the job reads them, cannot change them
    out/     a size-capped tmpfs owned by the job uid (when the gate is root)
    root/    mount point for the unshare backend's synthetic root
    tmp/     private /tmp of the Landlock-only backend
    stdin    the job's standard input

Reading ``out/`` back is done without following the job's symlinks, and anything that is not a
regular file is skipped: the job controls that tree and the gate reads it as root.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import stat
from pathlib import Path

from clearance.errors import SandboxError
from clearance.sandbox.job import check_relative_path

# The interpreter is linked against libc, so its own symbols hold every libc function used
# here; ctypes.util.find_library would run `ldconfig -p` in a subprocess to find it.
_libc = ctypes.CDLL(None, use_errno=True)
_MS_NOSUID = 2
_MS_NODEV = 4
_MNT_DETACH = 2


def _mount_tmpfs(target: Path, options: str) -> None:
    if _libc.mount(b"tmpfs", str(target).encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV,
                   options.encode()) != 0:  # fmt: skip
        err = ctypes.get_errno()
        raise SandboxError(f"cannot mount the job's tmpfs on {target}: {os.strerror(err)}")


def _umount(target: Path) -> None:
    _libc.umount2(str(target).encode(), _MNT_DETACH)


def prepare_jobs_root(path: Path, *, in_memory: bool) -> None:
    """Create the directory job directories go in; with ``in_memory``, mount a tmpfs on it.

    The mount is made once per host and shared by every gate using this work directory: a lock
    on the parent directory makes sure two gates starting together do not stack two mounts
    (the second would hide the first gate's jobs from it).

    Raises:
        SandboxError: the tmpfs could not be mounted.
    """
    path.mkdir(mode=0o711, exist_ok=True)
    if not in_memory:
        return
    lock = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.ismount(path):
            _mount_tmpfs(path, "mode=0711")
    finally:
        os.close(lock)  # releases the lock


class JobDir:
    """Create with :meth:`create`; always call :meth:`destroy`."""

    def __init__(self, path: Path, uid: int) -> None:
        self.path = path
        self.uid = uid
        self._mounts: list[Path] = []

    @classmethod
    def create(
        cls,
        path: Path,
        uid: int,
        files: dict[str, bytes],
        stdin: bytes,
        *,
        out_bytes: int | None,
        tmp_bytes: int | None,
    ) -> JobDir:
        """Lay out the job directory. ``out_bytes``/``tmp_bytes`` mount capped tmpfs (root only).

        Raises:
            SandboxError: the directory exists already or a mount failed.
        """
        try:
            path.mkdir(mode=0o711)
        except FileExistsError as exc:
            raise SandboxError(f"job directory {path} already exists (job id reused?)") from exc
        jd = cls(path, uid)
        try:
            jd._populate(files, stdin, out_bytes=out_bytes, tmp_bytes=tmp_bytes)
        except BaseException:
            jd.destroy()
            raise
        return jd

    def _populate(
        self, files: dict[str, bytes], stdin: bytes, *, out_bytes: int | None, tmp_bytes: int | None
    ) -> None:
        os.chmod(self.path, 0o711)  # noqa: S103 - job uids traverse, never list
        (self.path / "gate.pid").write_text(str(os.getpid()))  # first: see reap_stale
        for sub in ("in", "root"):
            (self.path / sub).mkdir(mode=0o755)
        for name, content in files.items():
            target = self.path / "in" / check_relative_path(name)
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            target.write_bytes(content)
            target.chmod(0o644)
        (self.path / "stdin").write_bytes(stdin)
        for sub, size in (("out", out_bytes), ("tmp", tmp_bytes)):
            d = self.path / sub
            d.mkdir(mode=0o700)
            if size is not None:
                _mount_tmpfs(d, f"size={size},mode=0700,uid={self.uid},gid={self.uid}")
                self._mounts.append(d)
            elif self.uid != os.geteuid():
                os.chown(d, self.uid, self.uid)

    @property
    def stdin_path(self) -> Path:
        """The file the job reads as standard input."""
        return self.path / "stdin"

    def collect_outputs(self, limit: int) -> dict[str, bytes]:
        """Regular files under ``out/``, by relative path; files past ``limit`` bytes in total are left out."""
        out = self.path / "out"
        found: dict[str, bytes] = {}
        total = 0
        for dirpath, dirnames, filenames in os.walk(out, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                full = Path(dirpath) / name
                try:
                    fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except OSError:
                    continue
                with os.fdopen(fd, "rb") as fh:
                    if not stat.S_ISREG(os.fstat(fd).st_mode):
                        continue
                    data = fh.read(limit - total + 1)
                if total + len(data) > limit:
                    continue  # INVARIANT: never hand back more than the output directory's cap
                total += len(data)
                found[str(full.relative_to(out))] = data
        return found

    @classmethod
    def reap_stale(cls, jobs_root: Path) -> list[str]:
        """Destroy job directories whose gate process is gone; return their job ids."""
        reaped = []
        for path in jobs_root.iterdir() if jobs_root.is_dir() else []:
            try:
                gate = int((path / "gate.pid").read_text())
            except (OSError, ValueError):
                continue  # still being created by a live gate, or not ours
            try:
                os.kill(gate, 0)
            except ProcessLookupError:
                stale = cls(path, -1)
                stale._mounts = [path / "out", path / "tmp"]
                stale.destroy()
                reaped.append(path.name)
        return reaped

    def destroy(self) -> None:
        """Unmount the tmpfs and remove everything; safe to call twice."""
        for mount in reversed(self._mounts):
            _umount(mount)
        self._mounts.clear()
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self.path)
