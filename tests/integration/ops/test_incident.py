"""Incident bundles: exported from a recorded history, checked offline with only the public key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from tests.integration.ops.conftest import History
from typer.testing import CliRunner

from clearance.audit.verify.errors import ExitCode, Severity, exit_code
from clearance.audit.verify.incident import verify_bundle
from clearance.cli.commands import ops
from clearance.cli.runtime import store_url_for
from clearance.cli.showcase import WARMUP_CALLS
from clearance.errors import ConfigError
from clearance.formats.note import VerifierKey
from clearance.gate.forensics import IncidentQuery, export_incident
from clearance.store import open_store
from clearance.store.audit_sqlite import SQLiteAuditStorage


def _export(history: History, query: IncidentQuery) -> dict[str, Any]:
    storage = SQLiteAuditStorage(history.data_dir / "audit.db", readonly=True)
    store = open_store(store_url_for(history.data_dir, None))
    try:
        return export_incident(storage, store, query, exported_at="2026-11-23T00:00:00Z")
    finally:
        store.close()
        storage.close()


def _check(history: History, bundle: dict[str, Any]) -> ExitCode:
    findings, _ = verify_bundle(json.dumps(bundle).encode(), [VerifierKey.parse(history.vkey)])
    return exit_code(findings)


@pytest.fixture
def transfer_bundle(history: History) -> dict[str, Any]:
    return _export(history, IncidentQuery(session=history.transfer_session))


def test_transfer_session_bundle_holds_the_whole_story(
    history: History, transfer_bundle: dict[str, Any]
) -> None:
    kinds = [json.loads(e["header"])["kind"] for e in transfer_bundle["entries"]]
    assert kinds.count("decision") == 3  # APPROVAL, PERMIT with the token, DENY of the replay
    assert "outcome" in kinds
    assert any(k.startswith("approval.") for k in kinds)
    assert len(transfer_bundle["receipts"]) == 3
    assert len(transfer_bundle["policies"]) == 1
    assert all(e["proof"] for e in transfer_bundle["entries"])
    assert "transfer_funds" in transfer_bundle["timeline"]
    assert _check(history, transfer_bundle) is ExitCode.VERIFIED


def test_bundle_holds_only_its_session(history: History) -> None:
    bundle = _export(history, IncidentQuery(session=history.injected_session))
    sessions = {
        json.loads(e["payload"]).get("session_id")
        for e in bundle["entries"]
        if json.loads(e["header"])["kind"] == "decision"
    }
    assert sessions == {history.injected_session}
    assert "taint: untrusted:email" in bundle["timeline"]
    assert _check(history, bundle) is ExitCode.VERIFIED


def _flip(text: str, marker: str) -> str:
    """Change the one character right after the first ``marker`` in ``text`` (one byte)."""
    at = text.index(marker) + len(marker)
    return text[:at] + ("1" if text[at] == "0" else "0") + text[at + 1 :]


def _decision(bundle: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in bundle["entries"] if '"kind":"decision"' in e["header"])


MUTATIONS = {
    "header": lambda b: _decision(b).update(header=_flip(_decision(b)["header"], "sha256:")),
    "payload": lambda b: _decision(b).update(payload=_flip(_decision(b)["payload"], '"amount":')),
    "proof": lambda b: _decision(b).update(proof=_flip(_decision(b)["proof"], "index ")),
    "checkpoint": lambda b: _decision(b).update(proof=_flip(_decision(b)["proof"], "\n\n")),
    "receipt": lambda b: b["receipts"][0]["envelope"].update(
        payload=_flip(b["receipts"][0]["envelope"]["payload"], "eyJ")
    ),
    "policy": lambda b: b["policies"][0].update(
        canonical=_flip(b["policies"][0]["canonical"], '"after":')
    ),
    "timeline": lambda b: b.update(timeline=_flip(b["timeline"], "| 20")),
}


@pytest.mark.parametrize("part", sorted(MUTATIONS))
def test_one_changed_byte_is_tampering(
    history: History, transfer_bundle: dict[str, Any], part: str
) -> None:
    bundle = json.loads(json.dumps(transfer_bundle))
    MUTATIONS[part](bundle)
    assert bundle != transfer_bundle
    assert _check(history, bundle) is ExitCode.TAMPERED


def test_dropped_proof_is_not_enough_evidence(
    history: History, transfer_bundle: dict[str, Any]
) -> None:
    transfer_bundle["entries"][0]["proof"] = None
    assert _check(history, transfer_bundle) is ExitCode.INSUFFICIENT


def test_another_deployments_key_does_not_verify(transfer_bundle: dict[str, Any]) -> None:
    from clearance.audit.sign import AuditKey

    other = VerifierKey.parse(AuditKey.generate("audit.other.example").vkey)
    findings, _ = verify_bundle(json.dumps(transfer_bundle).encode(), [other])
    assert exit_code(findings) is ExitCode.TAMPERED
    assert any(f.severity is Severity.TAMPERED for f in findings)


def test_unknown_subject_is_an_error_not_an_empty_bundle(history: History) -> None:
    with pytest.raises(ConfigError, match="no audit entry"):
        _export(history, IncidentQuery(session="no-such-session"))
    with pytest.raises(ConfigError, match="needs a subject"):
        IncidentQuery()


def _cli() -> typer.Typer:
    """The operations commands as the lead registers them (``ops.register`` on the root app)."""
    app = typer.Typer()
    ops.register(app)
    return app


def test_cli_export_then_standalone_verify(history: History, tmp_path: Path) -> None:
    out = tmp_path / "incident.json"
    md = tmp_path / "timeline.md"
    export = CliRunner().invoke(
        _cli(),
        [
            "incident",
            "export",
            "--session",
            history.transfer_session,
            "--out",
            str(out),
            "--timeline",
            str(md),
            "--data-dir",
            str(history.data_dir),
        ],
    )
    assert export.exit_code == 0, export.output
    assert md.read_text("utf-8").startswith("# Incident timeline")
    verifier = [sys.executable, "-m", "clearance.audit.verify", "bundle", "--key", history.vkey]
    ok = subprocess.run([*verifier, str(out)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stdout
    raw = bytearray(out.read_bytes())
    raw[raw.index(b"transfer_funds")] = ord("T")
    out.write_bytes(bytes(raw))
    bad = CliRunner().invoke(_cli(), ["incident", "verify", str(out), "--key", history.vkey])
    assert bad.exit_code == int(ExitCode.TAMPERED), bad.output


def test_since_selects_by_time_and_rejects_naive_times(history: History) -> None:
    everything = _export(history, IncidentQuery(since="2000-01-01T00:00:00Z"))
    sessions = {
        json.loads(e["payload"]).get("session_id")
        for e in everything["entries"]
        if '"kind":"decision"' in e["header"]
    }
    # every session of the story: the normal morning's, the injected, the report, the transfer
    assert {history.injected_session, history.transfer_session} <= sessions
    assert len(sessions) == WARMUP_CALLS + 3
    with pytest.raises(ConfigError, match="no audit entry"):
        _export(history, IncidentQuery(since="2999-01-01T00:00:00+00:00"))
    with pytest.raises(ConfigError, match="timezone"):
        IncidentQuery(since="2026-11-01T00:00:00")
