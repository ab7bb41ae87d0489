"""The seccomp filter every sandboxed job runs under, as classic BPF bytes.

The same bytes go to bubblewrap (``--seccomp FD``) and to the stdlib launcher
(``prctl(PR_SET_SECCOMP)``), so there is one filter, not one per backend. No libseccomp is
needed. The filter:

* kills a process that enters through a foreign architecture (the i386 ``int 0x80`` path), and
  refuses the x32 ABI with ``EPERM``;
* refuses (``EPERM``) syscalls that reach kernel attack surface or other processes: ptrace and
  ``process_vm_*``, every mount API, namespace creation and joining, keyrings, bpf, perf,
  userfaultfd, io_uring (it bypasses seccomp for the operations it performs), module loading,
  kexec, clock setting and similar;
* refuses ``clone`` with any ``CLONE_NEW*`` flag, and answers ``clone3`` with ``ENOSYS`` because
  its flags live in memory the filter cannot read (glibc then falls back to ``clone``);
* lets ``socket`` create only ``AF_UNIX``, ``AF_INET`` and ``AF_INET6`` sockets
  (``EAFNOSUPPORT`` otherwise: no ``AF_VSOCK`` host channel, netlink or packet sockets), or only
  ``AF_UNIX`` in Landlock-only mode, which has no network namespace;
* refuses the ``TIOCSTI`` and ``TIOCLINUX`` ioctls, compared on the low 32 bits so the
  ``cmd | 1 << 32`` trick (CVE-2019-10063) does not pass.

Only x86_64 has a syscall table here; other architectures fail closed with ``SandboxError``.

::

    from clearance.sandbox.seccomp import build_filter
    program = build_filter()          # bytes: 8 bytes per sock_filter instruction
"""

from __future__ import annotations

import errno
import platform
import socket
import struct

from clearance.errors import SandboxError

# Classic BPF opcodes (linux/filter.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000

# struct seccomp_data offsets: nr (u32), arch (u32), ip (u64), args[6] (u64, little endian).
_OFF_NR = 0
_OFF_ARCH = 4


def _arg_low(index: int) -> int:
    return 16 + 8 * index


_CLONE_NEW_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
    | 0x00000080  # CLONE_NEWTIME
)
_TIOCSTI = 0x5412
_TIOCLINUX = 0x541C

# x86_64 numbers from asm/unistd_64.h.
_X86_64_DENIED: dict[str, int] = {
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438,
    "kcmp": 312, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "mount_setattr": 442, "unshare": 272, "setns": 308, "keyctl": 250,
    "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
    "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "open_by_handle_at": 304, "name_to_handle_at": 303, "swapon": 167,
    "swapoff": 168, "reboot": 169, "acct": 163, "settimeofday": 164, "clock_settime": 227,
    "clock_adjtime": 305, "adjtimex": 159, "sethostname": 170, "setdomainname": 171,
    "iopl": 172, "ioperm": 173, "quotactl": 179, "quotactl_fd": 443, "personality": 135,
    "syslog": 103, "lookup_dcookie": 212, "vhangup": 153, "nfsservctl": 180, "uselib": 134,
    "ustat": 136, "sysfs": 139, "_sysctl": 156, "create_module": 174,
    "get_kernel_syms": 177, "query_module": 178, "fanotify_init": 300,
}  # fmt: skip
_X86_64_CLONE = 56
_X86_64_CLONE3 = 435
_X86_64_SOCKET = 41
_X86_64_IOCTL = 16

NETWORK_FAMILIES = (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6)
UNIX_ONLY = (socket.AF_UNIX,)


def _stmt(code: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, 0, 0, k & 0xFFFFFFFF)


def _jump(code: int, k: int, jt: int, jf: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k & 0xFFFFFFFF)


def _errno(value: int) -> bytes:
    return _stmt(_RET_K, _RET_ERRNO | value)


def _deny(nr: int, err: int) -> list[bytes]:
    """``if nr == X: return ERRNO(err)`` (expects the syscall number in the accumulator)."""
    return [_jump(_JEQ_K, nr, 0, 1), _errno(err)]


def _when_syscall(nr: int, body: list[bytes]) -> list[bytes]:
    """Run ``body`` only for syscall ``nr``; ``body`` must end by returning or reloading nr."""
    return [_jump(_JEQ_K, nr, 0, len(body)), *body]


def build_filter(socket_families: tuple[int, ...] = NETWORK_FAMILIES) -> bytes:
    """Return the filter program for this host's architecture.

    Raises:
        SandboxError: the architecture has no syscall table here (fail closed).
    """
    machine = platform.machine()
    if machine not in ("x86_64", "AMD64"):
        raise SandboxError(
            f"no seccomp syscall table for architecture {machine!r}; the sandbox refuses to run",
            hint="run the gate on x86_64",
        )
    reload_nr = _stmt(_LD_W_ABS, _OFF_NR)
    prog: list[bytes] = [
        _stmt(_LD_W_ABS, _OFF_ARCH),
        _jump(_JEQ_K, _AUDIT_ARCH_X86_64, 1, 0),
        _stmt(_RET_K, _RET_KILL_PROCESS),
        reload_nr,
        _jump(_JGE_K, _X32_SYSCALL_BIT, 0, 1),
        _errno(errno.EPERM),
    ]
    for nr in sorted(_X86_64_DENIED.values()):
        prog += _deny(nr, errno.EPERM)
    prog += _deny(_X86_64_CLONE3, errno.ENOSYS)
    prog += _when_syscall(
        _X86_64_CLONE,
        [
            _stmt(_LD_W_ABS, _arg_low(0)),
            _jump(_JSET_K, _CLONE_NEW_FLAGS, 0, 1),
            _errno(errno.EPERM),
            reload_nr,
        ],
    )
    family_checks: list[bytes] = []
    for i, family in enumerate(socket_families):
        # jump over the remaining checks and the EAFNOSUPPORT return straight to the reload
        remaining = len(socket_families) - i - 1
        family_checks.append(_jump(_JEQ_K, family, remaining + 1, 0))
    prog += _when_syscall(
        _X86_64_SOCKET,
        [
            _stmt(_LD_W_ABS, _arg_low(0)),
            *family_checks,
            _errno(errno.EAFNOSUPPORT),
            reload_nr,
        ],
    )
    prog += _when_syscall(
        _X86_64_IOCTL,
        [
            _stmt(_LD_W_ABS, _arg_low(1)),
            _jump(_JEQ_K, _TIOCSTI, 1, 0),
            _jump(_JEQ_K, _TIOCLINUX, 0, 1),
            _errno(errno.EPERM),
            reload_nr,
        ],
    )
    prog.append(_stmt(_RET_K, _RET_ALLOW))
    return b"".join(prog)
