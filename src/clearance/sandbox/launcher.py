"""The in-sandbox launcher: standard library only, run by the host's system ``python3 -I -S``.

The gate copies this file, with its compiled bytecode, into the work directory (as module
``clearance_launcher``, see :mod:`clearance.sandbox.skeleton`) and starts it as the first
program of a job when the backend needs work done *inside* the new namespaces:

* ``bwrap`` mode: only starts the egress bridge (below), then ``execve``s the job.
* ``unshare`` mode (fallback without bubblewrap): builds the synthetic root with mounts, calls
  ``pivot_root``, brings up ``lo``, drops every capability, applies Landlock and the seccomp
  filter, starts the bridge, then ``execve``s the job.
* ``landlock`` mode (degraded, no namespaces): applies Landlock and the seccomp filter, then
  ``execve``s the job.

The **egress bridge** listens on 127.0.0.1:PORT inside the job's network namespace and forwards
every connection to the gate's per-job proxy socket, bind-mounted at ``/run/egress.sock``. It is
forked after every restriction is in place, so it is confined like the job. It is not a control
point: the proxy on the gate side makes every decision.

It cannot import clearance (the sandbox sees only ``/usr``), so every constant it needs is here.
The gate imports :func:`landlock_abi` from it for ``doctor``.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import stat
import struct
import sys
import threading

# Every import here is paid at each job start; typing and contextlib are left out for that reason.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The interpreter is linked against libc, so its own symbols hold every libc function used
# here; ctypes.util.find_library would run `ldconfig -p` in a subprocess to find it.
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.argtypes = [ctypes.c_int, *[ctypes.c_ulong] * 4]  # pointers must not be truncated
_libc.mount.argtypes = [
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.c_char_p,
]

# x86_64 syscall numbers and constants (linux uapi headers).
_SYS_PIVOT_ROOT = 155
_SYS_CAPSET = 126
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_SECCOMP_MODE_FILTER = 2
_MS_RDONLY = 1
_MS_NOSUID = 2
_MS_NODEV = 4
_MS_NOEXEC = 8
_MS_REMOUNT = 32
_MS_NOATIME = 1024
_MS_NODIRATIME = 2048
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
_MS_RELATIME = 1 << 21
_MNT_DETACH = 2
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1
_IFF_RUNNING = 0x40

_LL_FS_EXECUTE = 1 << 0
_LL_FS_WRITE_FILE = 1 << 1
_LL_FS_READ_FILE = 1 << 2
_LL_FS_READ_DIR = 1 << 3
_LL_FS_TRUNCATE = 1 << 14
_LL_FS_IOCTL_DEV = 1 << 15
_LL_FILE_ONLY = (
    _LL_FS_EXECUTE | _LL_FS_WRITE_FILE | _LL_FS_READ_FILE | _LL_FS_TRUNCATE | _LL_FS_IOCTL_DEV
)
_LL_NET_BIND_TCP = 1 << 0
_LL_NET_CONNECT_TCP = 1 << 1
_LL_SCOPE_ABSTRACT_UNIX = 1 << 0
_LL_SCOPE_SIGNAL = 1 << 1
_LL_RULE_PATH_BENEATH = 1
_LL_RULE_NET_PORT = 2

# Device nodes a job may use; bound from the host into a private /dev.
_DEVICES = ("null", "zero", "full", "random", "urandom")


_MODES = ("bwrap", "unshare", "landlock")


class LauncherError(Exception):
    """A confinement step failed; the job is not started."""


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise LauncherError(f"{what}: {os.strerror(err)}")
    return result


# ----------------------------------------------------------------------------- seccomp


def load_seccomp(fd: int) -> None:
    """Install the BPF program read from ``fd`` (made by ``clearance.sandbox.seccomp``)."""
    program = os.pread(fd, 1 << 20, 0)
    os.close(fd)
    if not program or len(program) % 8:
        raise LauncherError("seccomp program is empty or malformed")
    buf = ctypes.create_string_buffer(program)
    fprog = struct.pack("HxxxxxxQ", len(program) // 8, ctypes.addressof(buf))
    fprog_buf = ctypes.create_string_buffer(fprog)
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
    _check(
        _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog_buf), 0, 0),
        "PR_SET_SECCOMP",
    )


# ----------------------------------------------------------------------------- landlock


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable."""
    version = _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), 1)
    return max(int(version), 0)


def _handled_fs(abi: int) -> int:
    rights = (1 << 13) - 1  # EXECUTE .. MAKE_SYM (ABI 1)
    if abi >= 2:
        rights |= 1 << 13  # REFER
    if abi >= 3:
        rights |= _LL_FS_TRUNCATE
    if abi >= 5:
        rights |= _LL_FS_IOCTL_DEV
    return rights


def apply_landlock(
    read: list[str], write: list[str], connect_ports: list[int], *, require_scopes: bool
) -> int:
    """Restrict this process (and its future children) to the given paths and TCP ports.

    Paths that do not exist are skipped. Network rules need ABI >= 4 and scopes ABI >= 6; with a
    lower ABI they are skipped unless ``require_scopes`` (the Landlock-only mode, whose only
    barrier they are), in which case this raises. Returns the ABI used.
    """
    abi = landlock_abi()
    if abi < 1:
        raise LauncherError("Landlock is not available in this kernel")
    if require_scopes and abi < 6:
        raise LauncherError(f"Landlock ABI {abi} lacks network rules and IPC scopes (need 6)")
    handled = _handled_fs(abi)
    attr = struct.pack("Q", handled)
    if abi >= 4:
        attr += struct.pack("Q", _LL_NET_BIND_TCP | _LL_NET_CONNECT_TCP)
    if abi >= 6:
        attr += struct.pack("Q", _LL_SCOPE_ABSTRACT_UNIX | _LL_SCOPE_SIGNAL)
    attr_buf = ctypes.create_string_buffer(attr)
    ruleset = _check(
        _libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, attr_buf, ctypes.c_size_t(len(attr)), 0),
        "landlock_create_ruleset",
    )
    try:
        read_rights = _LL_FS_EXECUTE | _LL_FS_READ_FILE | _LL_FS_READ_DIR
        for paths, rights in ((read, read_rights), (write, handled)):
            for path in paths:
                _add_path_rule(ruleset, path, rights & handled)
        if abi >= 4:
            for port in connect_ports:
                rule = ctypes.create_string_buffer(struct.pack("QQ", _LL_NET_CONNECT_TCP, port))
                _check(
                    _libc.syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, _LL_RULE_NET_PORT, rule, 0),
                    f"landlock port rule {port}",
                )
        _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
        _check(_libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def _add_path_rule(ruleset: int, path: str, rights: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not stat.S_ISDIR(os.fstat(fd).st_mode):
            rights &= _LL_FILE_ONLY
        rule = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd))
        _check(
            _libc.syscall(_SYS_LANDLOCK_ADD_RULE, ruleset, _LL_RULE_PATH_BENEATH, rule, 0),
            f"landlock rule for {path}",
        )
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- mounts (unshare)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    _check(
        _libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            flags,
            data.encode() if data else None,
        ),
        f"mount {source} on {target}",
    )


def _locked_flags(path: str) -> int:
    """Flags the kernel locked on a mount we do not own; a read-only remount must keep them."""
    f = os.statvfs(path).f_flag
    pairs = (
        (os.ST_NOSUID, _MS_NOSUID),
        (os.ST_NODEV, _MS_NODEV),
        (os.ST_NOEXEC, _MS_NOEXEC),
        (os.ST_NOATIME, _MS_NOATIME),
        (os.ST_NODIRATIME, _MS_NODIRATIME),
        (os.ST_RELATIME, _MS_RELATIME),
    )
    return sum(ms for st, ms in pairs if f & st)


def _bind(source: str, target: str, *, readonly: bool) -> None:
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
    _mount(source, target, None, _MS_BIND | _MS_REC)
    if readonly:
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _locked_flags(source)
        _mount(None, target, None, flags)


def build_root(cfg: dict[str, Any]) -> None:
    """Make ``cfg['root']`` the synthetic root of the sandbox and switch into it."""
    root = cfg["root"]
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", _MS_NOSUID | _MS_NODEV, "size=16m,mode=0755")
    _bind("/usr", f"{root}/usr", readonly=True)
    for name in ("bin", "lib", "lib64", "sbin"):
        if os.path.exists(f"/usr/{name}"):
            os.symlink(f"usr/{name}", f"{root}/{name}")
    for source, target in cfg["ro_binds"]:
        if os.path.exists(source):
            _bind(source, f"{root}{target}", readonly=True)
    dev = f"{root}/dev"
    os.makedirs(dev)
    _mount("tmpfs", dev, "tmpfs", _MS_NOSUID | _MS_NOEXEC, "size=64k,mode=0755")
    for name in _DEVICES:
        _bind(f"/dev/{name}", f"{dev}/{name}", readonly=False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):  # fmt: skip
        os.symlink(target, f"{dev}/{name}")
    _mount(None, dev, None, _MS_REMOUNT | _MS_NOSUID | _MS_NOEXEC | _MS_RDONLY)
    os.makedirs(f"{root}/proc")
    _mount("proc", f"{root}/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)
    tmp = f"{root}/tmp"  # noqa: S108 - the sandbox's private tmpfs, under its new root
    os.makedirs(tmp)
    _mount(
        "tmpfs",
        tmp,
        "tmpfs",
        _MS_NOSUID | _MS_NODEV,
        f"size={cfg['tmp_bytes']},mode=1777",
    )
    _bind(cfg["in_dir"], f"{root}/job/in", readonly=True)
    _bind(cfg["out_dir"], f"{root}/job/out", readonly=False)
    if cfg.get("egress_sock"):
        _bind(cfg["egress_sock"], f"{root}/run/egress.sock", readonly=False)
    os.chdir(root)
    _check(_libc.syscall(_SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", _MNT_DETACH), "detach old root")
    os.chdir("/")
    _mount(None, "/", None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    socket.sethostname("sandbox")
    _loopback_up()


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        import fcntl

        fcntl.ioctl(
            s.fileno(), _SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", _IFF_UP | _IFF_RUNNING)
        )


def drop_capabilities() -> None:
    """Drop every capability: bounding set, ambient, effective, permitted, inheritable."""
    for cap in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) < 0:
            break  # past the last capability this kernel knows
    _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = ctypes.create_string_buffer(
        struct.pack("Ii", 0x20080522, 0)
    )  # _LINUX_CAPABILITY_VERSION_3
    data = ctypes.create_string_buffer(bytes(24))
    _check(_libc.syscall(_SYS_CAPSET, header, data), "capset")


# ----------------------------------------------------------------------------- egress bridge


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
            try:  # noqa: SIM105 - contextlib would cost an import at every job start
                s.shutdown(how)
            except OSError:
                pass


def _serve_bridge(listener: socket.socket, proxy_path: str) -> None:
    while True:
        client, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            upstream.connect(proxy_path)
        except OSError:
            client.close()
            upstream.close()
            continue
        threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()


def listen_bridge(port: int) -> socket.socket:
    """Bind the bridge's port; done before Landlock, which then forbids every TCP bind."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    return listener


def fork_bridge(listener: socket.socket, proxy_path: str) -> None:
    """Fork a child that relays connections on ``listener`` to the proxy socket."""
    if os.fork() == 0:
        try:
            os.setsid()
            devnull = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            _serve_bridge(listener, proxy_path)
        finally:
            os._exit(0)
    listener.close()


# ----------------------------------------------------------------------------- entry point


def run(mode: str, cfg: dict[str, Any], command: list[str]) -> None:
    """Confine this process according to ``mode`` and ``cfg``, then exec ``command``."""
    if mode not in _MODES:  # never exec a command whose confinement is unknown
        raise LauncherError(f"unknown mode {mode!r}, expected one of {', '.join(_MODES)}")
    if mode == "unshare":
        build_root(cfg)
        drop_capabilities()
    listener = listen_bridge(cfg["bridge_port"]) if cfg.get("bridge_port") else None
    if mode in ("unshare", "landlock"):
        ports = [cfg["bridge_port"]] if cfg.get("bridge_port") else []
        apply_landlock(
            cfg["landlock_read"], cfg["landlock_write"], ports, require_scopes=mode == "landlock"
        )
        load_seccomp(cfg["seccomp_fd"])
    if listener is not None:
        fork_bridge(listener, cfg["bridge_socket"])
    os.chdir(cfg["cwd"])
    os.execve(command[0], command, cfg["env"])  # noqa: S606 - no shell on purpose


def main(argv: list[str]) -> int:
    """``launcher.py MODE JSON_CONFIG -- COMMAND...``; exits 125 when confinement fails."""
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: launcher.py MODE CONFIG -- COMMAND...\n")
        return 125
    try:
        run(argv[0], json.loads(argv[1]), argv[3:])
    except (LauncherError, OSError) as exc:
        sys.stderr.write(f"clearance sandbox launcher: {exc}\n")
    return 125


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
