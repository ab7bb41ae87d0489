"""The verifier runs with nothing of clearance but ``formats`` and ``audit/verify`` (STYLE.md 7)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import cryptography
import pytest
import rfc8785

import clearance
from clearance.audit.testing import sample_store
from clearance.audit.verify.verify import main as verify_main

SRC = Path(clearance.__file__).parent
FORBIDDEN = (
    "clearance.gate",
    "clearance.store",
    "clearance.policy",
    "clearance.model",
    "clearance.errors",
    "clearance.audit.log",
    "clearance.audit.sign",
    "pydantic",
    "yaml",
    "psycopg",
    "starlette",
)
# orjson is absent from FORBIDDEN on purpose: it is the optional accelerator of canonical JSON
# (clearance/formats/_accel.py), used when installed and never required. The skeleton below has
# no orjson, so every test that runs it checks the verifier on the pure-Python path.


def test_importing_the_verifier_loads_no_gate_code() -> None:
    code = (
        "import sys, clearance.audit.verify.verify, clearance.audit.verify.__main__;"
        "print('\\n'.join(sorted(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(out.split())
    assert "clearance.audit.verify.verify" in loaded
    assert not [
        m
        for m in loaded
        if m.split(".")[0] in FORBIDDEN
        or m in FORBIDDEN
        or any(m.startswith(f + ".") for f in FORBIDDEN)
    ]


@pytest.fixture(scope="module")
def skeleton(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty directory with only formats/, audit/verify/ and the two third-party packages."""
    root = tmp_path_factory.mktemp("skeleton")
    pkg = root / "clearance"
    (pkg / "audit").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "audit" / "__init__.py").write_text("")
    shutil.copytree(SRC / "formats", pkg / "formats", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(
        SRC / "audit" / "verify",
        pkg / "audit" / "verify",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    deps = root / "deps"
    deps.mkdir()
    for module in (cryptography, rfc8785):
        assert module.__file__ is not None
        target = Path(module.__file__).parent
        (deps / target.name).symlink_to(target)
    # cryptography's own runtime dependency (its OpenSSL bindings load the cffi backend).
    backend = importlib.util.find_spec("_cffi_backend")
    if backend is not None and backend.origin is not None:
        (deps / Path(backend.origin).name).symlink_to(backend.origin)
    return root


def _run(skeleton: Path, *args: str) -> subprocess.CompletedProcess[str]:
    boot = (
        "import sys, runpy; sys.path[:0] = [sys.argv[1], sys.argv[2]]; sys.argv = sys.argv[2:];"
        "runpy.run_module('clearance.audit.verify', run_name='__main__', alter_sys=True)"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", boot, str(skeleton), str(skeleton / "deps"), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def _verify(skeleton: Path, *args: str) -> int:
    return _run(skeleton, *args).returncode


def _tamper(db: Path, sql: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute(sql)
    conn.commit()
    conn.close()


TAMPERINGS = {
    "edited-payload": "UPDATE audit_payload SET body = CAST(replace(CAST(body AS TEXT), 'refund', 'REFUND') AS BLOB)"
    " WHERE idx = 2",
    "deleted-entry": "DELETE FROM audit_entry WHERE idx = 3",
    "premature-deletion": "DELETE FROM audit_payload WHERE idx = 4",
    "truncated": "DELETE FROM audit_entry WHERE idx >= 5",
    "forged-checkpoint": "UPDATE audit_checkpoint SET root = root, note = replace(note, X'0A370A', X'0A380A')",
}


def test_accepts_a_good_log(tmp_path: Path, skeleton: Path) -> None:
    store = sample_store(tmp_path, entries=6)
    assert _verify(skeleton, str(store.db), "--public-key", store.vkey) == 0


@pytest.mark.parametrize("attack", sorted(TAMPERINGS))
def test_rejects_each_tampered_log(tmp_path: Path, skeleton: Path, attack: str) -> None:
    store = sample_store(tmp_path, entries=6)
    _tamper(store.db, TAMPERINGS[attack])
    assert _verify(skeleton, "log", str(store.db), "--key", store.vkey) == 1


def test_unusable_input_exits_2(tmp_path: Path, skeleton: Path) -> None:
    assert (
        _verify(
            skeleton,
            "log",
            str(tmp_path / "missing.db"),
            "--key",
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        )
        == 2
    )


def test_skeleton_runs_without_the_accelerator(skeleton: Path) -> None:
    code = (
        "import sys; sys.path[:0] = sys.argv[1:3];"
        "import clearance.formats._accel as a, clearance.audit.verify.verify;"
        "print(a.NAME, 'orjson' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(skeleton), str(skeleton / "deps")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.split() == ["none", "False"]


@pytest.mark.parametrize("attack", ["none", *sorted(TAMPERINGS)])
def test_pure_and_accelerated_verifiers_report_the_same(
    tmp_path: Path, skeleton: Path, attack: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The verifier without orjson (skeleton) and with it (installed) agree finding for finding."""
    store = sample_store(tmp_path, entries=6)
    if attack != "none":
        _tamper(store.db, TAMPERINGS[attack])
    args = ["log", str(store.db), "--key", store.vkey, "--json"]
    pure = _run(skeleton, *args)
    assert verify_main(args) == pure.returncode
    assert json.loads(capsys.readouterr().out) == json.loads(pure.stdout)


def test_worker_processes_run_in_the_skeleton(tmp_path: Path, skeleton: Path) -> None:
    store = sample_store(tmp_path, entries=6)
    assert _verify(skeleton, "log", str(store.db), "--key", store.vkey, "--jobs", "2") == 0
    _tamper(store.db, TAMPERINGS["edited-payload"])
    assert _verify(skeleton, "log", str(store.db), "--key", store.vkey, "--jobs", "2") == 1
