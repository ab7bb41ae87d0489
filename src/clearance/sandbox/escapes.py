"""The escape suite ``clearance sandbox check`` runs on this host: each attempt is made for real.

Every payload is bounded (short caps, loopback only) and reports what it managed to do as one
JSON line; the verdict comes from that report *and* from the gate's own view of the result
(stop reason, output size), so a payload that crashes early is not mistaken for a block.
The pytest suite in ``tests/integration/sandbox`` tries the same attacks with host-side checks.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clearance.sandbox.job import Job, JobResult
from clearance.sandbox.limits import MIB, SandboxLimits
from clearance.sandbox.runner import Sandbox

Verdict = Callable[[dict[str, Any], JobResult], bool]

_TRY = """
import json, os, socket
def attempt(action):
    try:
        action()
        return "EXPOSED"
    except OSError as exc:
        return exc.strerror or type(exc).__name__
"""


@dataclass(frozen=True)
class Escape:
    """One attempt: its payload, the caps it runs under, and how to tell that it was blocked."""

    name: str
    code: str
    blocked: Verdict
    limits: dict[str, Any]


def _none_exposed(report: dict[str, Any], _: JobResult) -> bool:
    return bool(report) and "EXPOSED" not in report.values()


def _suite(secret: str, port: int) -> list[Escape]:
    fork_bomb = (
        "kids = 0\nfor _ in range(200):\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        import time; time.sleep(3); os._exit(0)\n"
        "    kids += 1\nprint(json.dumps({'forked': kids}))"
    )
    memory = (
        "pids = []\nfor _ in range(4):\n    pid = os.fork()\n    if pid == 0:\n"
        "        b = bytearray(100 << 20)\n        b[::4096] = b'x' * len(b[::4096])\n        os._exit(0)\n"
        "    pids.append(pid)\nprint(json.dumps({'ok': sum(os.waitpid(p, 0)[1] == 0 for p in pids)}))"
    )
    disk = (
        "def fill(n):\n    with open(f'/job/out/f{n}', 'wb') as fh:\n"
        "        for _ in range(8):\n            fh.write(b'x' * (1 << 20))\n"
        "out = {f'file{n}': attempt(lambda n=n: fill(n)) for n in range(4)}\n"
        "print(json.dumps({'filled_8mib': all(v == 'EXPOSED' for v in out.values())}))"
    )
    daemon = (
        f"if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        f"        os.execv('/bin/sleep', ['/bin/sleep', '60', 'linger-{secret}'])\n    os._exit(0)\n"
        "print(json.dumps({'started': True}))"
    )
    return [
        Escape("write outside the output directory", "print(json.dumps({p: attempt(lambda p=p: open(p, 'w')) for p in ('/etc/x', '/usr/x', '/x', '/job/in/x')}))", _none_exposed, {}),
        Escape("read /etc/shadow", "print(json.dumps({'shadow': attempt(lambda: open('/etc/shadow').read())}))", _none_exposed, {}),
        Escape("read the gate's environment", "import glob\nblob = repr(dict(os.environ)) + ''.join(open(p, errors='replace').read() for p in glob.glob('/proc/*/environ') if os.access(p, os.R_OK))\n" f"print(json.dumps({{'leak': '{secret}' in blob}}))", lambda r, _: r.get("leak") is False, {}),
        Escape("TCP to a gate service on 127.0.0.1", f"print(json.dumps({{'tcp': attempt(lambda: socket.create_connection(('127.0.0.1', {port}), timeout=1))}}))", _none_exposed, {}),
        Escape("resolve DNS", "print(json.dumps({'dns': attempt(lambda: socket.getaddrinfo('example.com', 80))}))", _none_exposed, {}),
        Escape("create an AF_VSOCK socket", "print(json.dumps({'vsock': attempt(lambda: socket.socket(socket.AF_VSOCK, socket.SOCK_STREAM))}))", _none_exposed, {}),
        Escape("ptrace the parent", "import ctypes\nlibc = ctypes.CDLL(None)\nprint(json.dumps({'ptrace': libc.ptrace(16, os.getppid(), None, None)}))", lambda r, _: r.get("ptrace") == -1, {}),
        Escape("escape through /proc/1/root", "print(json.dumps({'host_dirs': sorted({'home', 'root', 'var'} & set(os.listdir('/proc/1/root')))}))", lambda r, _: r.get("host_dirs") == [], {}),
        Escape("fork bomb (bounded to 200)", fork_bomb, lambda r, _: r.get("forked", 200) < 32, {"processes": 32}),
        Escape("4 processes x 100 MiB over a 128 MiB cap", memory, lambda r, res: r.get("ok", 4) <= 1 or res.stopped == "memory-cap", {"memory_bytes": 128 * MIB}),
        Escape("fill the disk (32 MiB into an 8 MiB out dir)", disk, lambda r, _: r.get("filled_8mib") is False, {"out_dir_bytes": 8 * MIB, "file_bytes": 8 * MIB}),
        Escape("print 50 MB", "import sys\nfor _ in range(800): sys.stdout.write('x' * 65536)", lambda _, res: res.stopped == "output-cap", {}),
        Escape("sleep forever", "import time\ntime.sleep(3600)", lambda _, res: res.stopped == "timeout", {"wall_seconds": 1.0}),
        Escape("leave a background process behind", daemon, lambda r, _: r.get("started") is True and not _lingering(secret), {}),
    ]  # fmt: skip


def _lingering(token: str) -> bool:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as fh:
                    if f"linger-{token}".encode() in fh.read():
                        return True
            except OSError:
                continue
    return False


@dataclass(frozen=True)
class EscapeOutcome:
    """The verdict on one attempt, with the evidence it rests on."""

    name: str
    blocked: bool
    detail: str


def run_escape_suite(sandbox: Sandbox) -> list[EscapeOutcome]:
    """Try every escape through ``sandbox``; a bait TCP server and a fake secret are set up here."""
    secret = uuid.uuid4().hex
    os.environ["CLEARANCE_FAKE_SECRET"] = secret
    bait = socket.create_server(("127.0.0.1", 0))
    bait.setblocking(False)  # noqa: FBT003 - socket API
    outcomes = []
    try:
        for escape in _suite(secret, bait.getsockname()[1]):
            limits = SandboxLimits(**{"wall_seconds": 10.0, **escape.limits})
            result = sandbox.run(Job(kind="python", code=_TRY + escape.code), limits)
            lines = result.stdout.decode(errors="replace").strip().splitlines()
            try:
                report = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
            except json.JSONDecodeError:
                report = {}
            detail = json.dumps(report) if report else f"stopped={result.stopped}"
            outcomes.append(EscapeOutcome(escape.name, escape.blocked(report, result), detail))
        try:
            bait.accept()
            outcomes.append(
                EscapeOutcome("bait server untouched", blocked=False, detail="accepted")
            )
        except BlockingIOError:
            outcomes.append(
                EscapeOutcome("bait server untouched", blocked=True, detail="no connection")
            )
    finally:
        bait.close()
        del os.environ["CLEARANCE_FAKE_SECRET"]
    return outcomes
