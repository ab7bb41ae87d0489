"""Fault injection: every fault ends in SILENCE or a clear startup error, never in a PERMIT.

Faults already covered elsewhere, not repeated here:

* store unavailable mid-run (closed, replaced by a directory, read-only, a dropped table):
  ``tests/adversarial/test_store_down_means_silence.py``;
* the audit database full or read-only at the log level:
  ``tests/adversarial/test_log_full_disk_or_readonly.py``;
* a clock jump past an approval's expiry, or backwards after it:
  ``tests/adversarial/test_clock_jump_past_expiry.py``.

Here the faults hit whole gate processes or the composed runtime: a disk that fills while a gate
decides under load (``RLIMIT_FSIZE``), an fsync that takes 40 ms (an ``LD_PRELOAD`` shim around
``fsync``/``fdatasync``), the wall clock jumping backwards and forwards under a gate with an audit
log, the stored policy replaced by garbage while a gate runs, the signing key unreadable at
startup, and a store that is not there at startup.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.reliability.kit import (
    EXAMPLE_POLICY,
    PYTHON,
    Round,
    check_round,
    collect,
    init_data_dir,
    public_key,
    start_worker,
    verify,
)

from clearance.cli.runtime import key_paths, open_runtime
from clearance.errors import KeyFileError, PolicyError, StoreError
from clearance.gate.clock import FixedClock
from clearance.model.decision import Outcome
from clearance.model.request import Request
from clearance.policy import load_policy
from clearance.store import open_store

SLOW_FSYNC_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void slow_down(void) {
    const char *ms_text = getenv("SLOW_FSYNC_MS");
    long ms = ms_text ? atol(ms_text) : 0;
    struct timespec pause = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
    const char *mark = getenv("SLOW_FSYNC_MARK");
    if (mark) {
        int fd = open(mark, O_CREAT | O_WRONLY | O_APPEND, 0600);
        if (fd >= 0) { (void)write(fd, "x", 1); close(fd); }
    }
}

int fsync(int fd) {
    static int (*real)(int) = NULL;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    slow_down();
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int) = NULL;
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    slow_down();
    return real(fd);
}
"""


def _load(
    data_dir: Path, seconds: float, *options: str, env: dict[str, str] | None = None
) -> Round:
    """Start a gate process, let it decide for ``seconds``, SIGKILL it; what the client saw."""
    proc, _ = start_worker(data_dir, *options, env=env)
    assert proc.stdout is not None
    assert proc.stdin is not None
    seen = Round()
    reader = threading.Thread(target=collect, args=(proc.stdout, seen))
    reader.start()
    proc.stdin.write(b"go\n")
    proc.stdin.flush()
    time.sleep(seconds)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join()
    return seen


def _restart_and_verify(data_dir: Path) -> None:
    """A clean restart on the same data directory, then the standalone verifier's check."""
    proc, _ = start_worker(data_dir)
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    verify(data_dir, public_key(data_dir), {}, data_dir.name)


def test_disk_filling_up_mid_run_answers_silence_never_an_unlogged_permit(tmp_path: Path) -> None:
    data_dir = tmp_path / "full"
    init_data_dir(data_dir)
    seen = _load(data_dir, 1.0, "--disk-headroom", str(48 * 1024))
    outcomes = {(d["outcome"], d["rule"]) for d in seen.acknowledged}
    assert outcomes & {("SILENCE", "audit"), ("SILENCE", "store")}, "the disk never filled up"
    check_round(data_dir, seen, "disk full")
    _restart_and_verify(data_dir)


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler for the fsync shim")
def test_slow_fsync_keeps_deciding_and_loses_nothing(tmp_path: Path) -> None:
    shim_c = tmp_path / "slow_fsync.c"
    shim_c.write_text(SLOW_FSYNC_C)
    shim = tmp_path / "libslowfsync.so"
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-o", str(shim), str(shim_c), "-ldl"], check=True, timeout=60
    )
    data_dir = tmp_path / "slow"
    init_data_dir(data_dir)
    mark = tmp_path / "fsync-calls"
    env = {
        **os.environ,
        "LD_PRELOAD": str(shim),
        "SLOW_FSYNC_MS": "40",
        "SLOW_FSYNC_MARK": str(mark),
    }
    seen = _load(data_dir, 1.0, env=env)
    assert mark.exists(), "the shim never ran: nothing called fsync"
    assert seen.dispatched, "no PERMIT at all: a slow disk must slow the gate, not stop it"
    for d in seen.acknowledged:
        assert d["index"] is not None or d["outcome"] == "SILENCE"
    check_round(data_dir, seen, "slow fsync")
    _restart_and_verify(data_dir)


def test_clock_jumping_back_and_forth_keeps_decisions_and_the_log_valid(tmp_path: Path) -> None:
    data_dir = tmp_path / "clock"
    init_data_dir(data_dir)
    clock = FixedClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    runtime = open_runtime(data_dir, clock=clock)
    try:
        session = runtime.gate.open_session(
            agent_id="fin-1", task="transfer", environment="staging"
        )

        def decide(tool: str, **args: object) -> Outcome:
            request = Request(agent_id="fin-1", session_id=session.session_id, tool=tool, args=args)
            return runtime.gate.decide(request).outcome

        read = {"account_id": "ACC-100001"}
        for jump in (0.0, -86_400.0, 3 * 365 * 86_400.0, -3_600.0):
            clock.advance(jump)
            assert decide("read_account", **read) is Outcome.PERMIT
            assert decide("delete_records", table="payees", ids=[1]) is Outcome.DENY
    finally:
        runtime.close()
    verify(data_dir, public_key(data_dir), {}, "clock jumps")


def test_stored_policy_replaced_by_garbage_mid_run(tmp_path: Path) -> None:
    data_dir = tmp_path / "policy"
    init_data_dir(data_dir)
    runtime = open_runtime(data_dir)
    try:
        digest = runtime.store.active_digest()
        assert digest is not None
        session = runtime.gate.open_session(
            agent_id="fin-1", task="transfer", environment="staging"
        )
        # Someone with write access to the database rewrites the active bundle's bytes.
        store = open_store(f"sqlite:///{data_dir / 'clearance.db'}")
        with store.transaction() as cur:
            cur.execute(
                "UPDATE bundles SET data = ? WHERE digest = ?", (b"\x00not: [a policy", digest)
            )
        store.close()
        # The running gate decides with the bundle it verified when it loaded it.
        request = Request(
            agent_id="fin-1",
            session_id=session.session_id,
            tool="read_account",
            args={"account_id": "ACC-100001"},
        )
        decision = runtime.gate.decide(request)
        assert (decision.outcome, decision.policy) == (Outcome.PERMIT, digest)
    finally:
        runtime.close()
    # A restart refuses to decide with it: an error, no gate.
    with pytest.raises(PolicyError, match="bundle bytes are not JSON") as raised:
        open_runtime(data_dir)
    # The error names the damaged bundle and what to do about it.
    assert digest in str(raised.value)
    assert raised.value.hint is not None
    assert "clearance policy activate" in raised.value.hint


def test_policy_file_turned_garbage_is_a_clear_error_never_a_bundle(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(EXAMPLE_POLICY.read_bytes())
    assert load_policy(policy).source_name == "policy.yaml"
    policy.write_bytes(b"version: '1'\nrules: [ {id: x, outcome: permit\n\x00\xff")
    with pytest.raises(PolicyError, match=r"policy\.yaml"):
        load_policy(policy)


@pytest.mark.parametrize("fault", ["garbage", "missing", "directory"])
def test_unreadable_signing_key_is_a_clear_startup_error(tmp_path: Path, fault: str) -> None:
    data_dir = tmp_path / "key"
    init_data_dir(data_dir)
    key_file = key_paths(data_dir)[0]
    key_file.unlink()
    if fault == "garbage":
        key_file.write_bytes(b"\xffnot a key\n")
        key_file.chmod(0o600)
    elif fault == "directory":
        key_file.mkdir()
    with pytest.raises(KeyFileError, match=r"key file `.*audit\.key`"):
        open_runtime(data_dir)


def test_serve_with_an_unreadable_key_exits_with_a_message_not_a_traceback(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "serve"
    init_data_dir(data_dir)
    key_paths(data_dir)[0].write_bytes(b"garbage")
    result = subprocess.run(
        [PYTHON, "-m", "clearance", "serve", "--data-dir", str(data_dir), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "audit.key" in result.stdout + result.stderr


def test_store_not_there_at_startup_is_a_clear_error(tmp_path: Path) -> None:
    data_dir = tmp_path / "nostore"
    init_data_dir(data_dir)
    with pytest.raises(StoreError, match="unreachable") as refused:
        open_runtime(data_dir, store_url="postgresql://clearance@127.0.0.1:1/none")
    assert refused.value.hint is not None
