"""The read-only parts every job shares, prepared once per :class:`Sandbox` instead of per job.

Three things are the same for every job and cost time to make: the job's ``/etc``, the
in-sandbox launcher and the compiled seccomp program. They are made once here, and no job can
change them:

* ``/etc`` is one directory holding the synthetic files (``passwd``, ``hosts``...) and copies
  of the allowlisted host files (loader cache, CA certificates...), so a backend mounts it with
  one read-only bind instead of one bind per file (mounts are the costly part of starting a
  sandbox). Copies are taken as a bind would show them: a top-level symlink is followed,
  symlinks inside a directory stay symlinks. The directory is named by the digest of its
  content, so a change on the host makes a new one at the next :meth:`Skeleton.prepare`, and an
  existing one is used only after its content, owner and modes have been checked;
* the launcher lives in the work directory as a module with its bytecode compiled once (jobs
  that need it skip compiling it at every start); every file is owned by the gate, not
  writable by group or others (a per-job uid cannot change it on the host), and mounted
  read-only;
* each seccomp program lives in a **sealed** memfd (no write, grow, shrink or new seals), and
  every job gets its own read-only file description of it (:meth:`Skeleton.open_filter`), so
  jobs share neither the bytes' writability nor a file offset.

::

    skeleton = Skeleton.prepare(work_dir)
    fd = skeleton.open_filter(NETWORK_FAMILIES)    # pass to the backend; close after spawning
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import py_compile
import shutil
import stat
import threading
import weakref
from pathlib import Path

from clearance.errors import SandboxError
from clearance.sandbox.launch import ETC_ALLOWLIST, LAUNCHER_MODULE, SYNTHETIC_ETC
from clearance.sandbox.seccomp import build_filter

_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE

# relative path -> (kind, payload): ("dir", b""), ("file", content) or ("link", target)
Tree = dict[str, tuple[str, bytes]]


def _copy_host(tree: Tree, rel: str, source: str) -> None:
    """Add ``source`` as a bind mount would show it to a job; sockets, fifos, devices and what
    other users may not read are left out."""
    try:
        info = os.stat(source)  # follows a top-level symlink, as a bind mount does
    except OSError:
        return  # absent on this host, like bwrap's --ro-bind-try
    # INVARIANT: a job's uid is "other" to every host file, so it could read through a bind
    # only what others may read; the copies (0644) must not widen that.
    if not info.st_mode & 0o004 or (stat.S_ISDIR(info.st_mode) and not info.st_mode & 0o001):
        return
    if stat.S_ISREG(info.st_mode):
        try:
            with open(source, "rb") as fh:
                tree[rel] = ("file", fh.read())
        except PermissionError:
            return  # unreadable by the gate's uid: a job could not have read it through a bind
    elif stat.S_ISDIR(info.st_mode):
        tree[rel] = ("dir", b"")
        for child in os.scandir(source):
            child_rel = f"{rel}/{child.name}"
            if child.is_symlink():
                tree[child_rel] = ("link", os.fsencode(os.readlink(child.path)))
            elif child.is_dir(follow_symlinks=False) or child.is_file(follow_symlinks=False):
                _copy_host(tree, child_rel, child.path)


def etc_tree() -> Tree:
    """What a job's ``/etc`` holds: the allowlisted host files and the synthetic ones."""
    tree: Tree = {}
    for host in ETC_ALLOWLIST:
        _copy_host(tree, host.removeprefix("/etc/"), host)
    for name, text in SYNTHETIC_ETC.items():
        tree[name] = ("file", text.encode())
    for rel in list(tree):
        parts = rel.split("/")
        for i in range(1, len(parts)):
            tree.setdefault("/".join(parts[:i]), ("dir", b""))
    return tree


def _digest(tree: Tree) -> str:
    h = hashlib.sha256()
    for rel in sorted(tree):
        kind, payload = tree[rel]
        for part in (rel.encode(), kind.encode(), payload):
            h.update(len(part).to_bytes(8, "big") + part)
    return h.hexdigest()


def _read_tree(root: Path) -> Tree | None:
    """The tree under ``root``, or ``None`` if anything is not owned by the gate or is writable
    by others (such a directory is never mounted into a job)."""
    tree: Tree = {}
    uid = os.geteuid()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            info = os.lstat(path)
            if info.st_uid != uid:
                return None
            if stat.S_ISLNK(info.st_mode):
                tree[rel] = ("link", os.fsencode(os.readlink(path)))
            elif info.st_mode & 0o022:
                return None
            elif stat.S_ISDIR(info.st_mode):
                tree[rel] = ("dir", b"")
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as fh:
                    tree[rel] = ("file", fh.read())
            else:
                return None
    return tree


def _write_tree(root: Path, tree: Tree) -> None:
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    for rel in sorted(tree):  # a parent sorts before its children
        kind, payload = tree[rel]
        path = root / rel
        if kind == "dir":
            path.mkdir(mode=0o755)
            path.chmod(0o755)
        elif kind == "link":
            os.symlink(os.fsdecode(payload), path)
        else:
            path.write_bytes(payload)
            path.chmod(0o644)


def _prepare_etc(skeletons: Path) -> Path:
    """The checked ``/etc`` directory for the current content, built if needed."""
    skeletons.mkdir(mode=0o755, exist_ok=True)
    tree = etc_tree()
    target = skeletons / _digest(tree)[:32]
    if target.is_dir() and _read_tree(target) == tree:
        return target
    tmp = skeletons / f".build-{os.getpid()}-{threading.get_ident()}"
    shutil.rmtree(tmp, ignore_errors=True)
    _write_tree(tmp, tree)
    if target.exists():  # tampered with, or half built by a gate that crashed
        stale = skeletons / f".stale-{os.getpid()}-{threading.get_ident()}"
        target.rename(stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        tmp.rename(target)
    except OSError:  # another gate finished the same directory first
        shutil.rmtree(tmp, ignore_errors=True)
    if _read_tree(target) != tree:
        raise SandboxError(f"the job /etc skeleton {target} does not hold what was written")
    return target


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


def _prepare_launcher(directory: Path) -> Path:
    """Copy the launcher module into ``directory`` and compile it for this interpreter's tag.

    A sandbox interpreter of another version finds no bytecode under its own tag and compiles
    the source in memory, so the copy is always correct, only slower there.
    """
    directory.mkdir(mode=0o755, exist_ok=True)
    directory.chmod(0o755)
    source = directory / f"{LAUNCHER_MODULE}.py"
    _write_if_changed(source, Path(__file__).with_name("launcher.py").read_bytes())
    cached = Path(importlib.util.cache_from_source(str(source)))
    cached.parent.mkdir(mode=0o755, exist_ok=True)
    cached.parent.chmod(0o755)
    try:
        py_compile.compile(str(source), cfile=str(cached), doraise=True)
    except py_compile.PyCompileError as exc:
        raise SandboxError(f"cannot compile the sandbox launcher: {exc.msg}") from exc
    cached.chmod(0o644)
    return directory


class Skeleton:
    """The shared read-only parts of one work directory. Create with :meth:`prepare`."""

    def __init__(self, etc_dir: Path, launcher: Path) -> None:
        self.etc_dir = etc_dir
        self.launcher = launcher
        self._filters: dict[tuple[int, ...], int] = {}
        self._lock = threading.Lock()

    @classmethod
    def prepare(cls, work_dir: Path) -> Skeleton:
        """Build (or check) the job ``/etc`` and the launcher under ``work_dir``.

        Raises:
            SandboxError: the ``/etc`` directory could not be made to hold what it must.
        """
        etc_dir = _prepare_etc(work_dir / "skeleton")
        return cls(etc_dir, _prepare_launcher(work_dir / "launcher"))

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
