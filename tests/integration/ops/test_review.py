"""Access review over the recorded FinanceApp history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from tests.integration.ops.conftest import History
from typer.testing import CliRunner

from clearance.cli.commands import ops
from clearance.cli.runtime import open_runtime
from clearance.errors import AuditWriteError
from clearance.gate.review import AccessReview, review_access, sign_off
from clearance.store.audit_sqlite import SQLiteAuditStorage


def _review(history: History, **kw: int) -> AccessReview:
    runtime = open_runtime(history.data_dir)
    try:
        bundle = runtime.gate.bundle
        assert bundle is not None
        now = datetime.now(UTC)
        return review_access(
            bundle,
            runtime.store.recent_decisions(limit=1000),
            since=now - timedelta(days=90),
            until=now + timedelta(minutes=1),
            **kw,
        )
    finally:
        runtime.close()


def _subjects(review: AccessReview, kind: str) -> set[str]:
    return {f.subject for f in review.findings if f.kind == kind}


def test_granted_never_used_is_reported_used_is_not(history: History) -> None:
    review = _review(history, rare=1)
    unused = _subjects(review, "unused-grant")
    # the story's balance check and transfer sessions used read_account and transfer_funds
    assert "task `transfer` / tool `transfer_funds`" not in unused
    assert "task `balance_check` / tool `read_account`" not in unused
    assert "task `transfer` / tool `read_account`" in unused
    assert "task `maintenance` / tool `delete_records`" in unused
    finding = next(
        f for f in review.findings if f.subject == "task `transfer` / tool `read_account`"
    )
    assert finding.evidence["requests"] == 0
    assert "-    - read_account\n" in finding.suggestion
    assert "\n     - transfer_funds\n" in finding.suggestion


def test_a_grant_used_below_the_threshold_is_rare(history: History) -> None:
    review = _review(history, rare=10)
    assert "task `transfer` / tool `transfer_funds`" in _subjects(review, "rare-grant")


def test_rules_that_never_decided_are_reported_with_their_evidence(history: History) -> None:
    review = _review(history)
    never = _subjects(review, "rule-never-decided")
    assert not any("`read-accounts`" in s for s in never)  # it permitted the balance read
    assert never  # the story exercises a small part of the policy
    for f in review.findings:
        if f.kind == "rule-never-decided":
            assert f.evidence["decisions"] == 0
            assert bool(f.suggestion) == (f.evidence["outcome"] != "DENY")


def test_a_period_without_decisions_reports_every_grant(history: History) -> None:
    runtime = open_runtime(history.data_dir)
    try:
        bundle = runtime.gate.bundle
        assert bundle is not None
        long_ago = datetime(2020, 1, 1, tzinfo=UTC)
        review = review_access(
            bundle,
            runtime.store.recent_decisions(limit=1000),
            since=long_ago,
            until=long_ago + timedelta(days=90),
        )
    finally:
        runtime.close()
    assert review.decisions == 0
    granted = sum(len(tools) for tools in bundle.compiled.tasks.values())
    assert len(_subjects(review, "unused-grant")) == granted


def test_sign_off_is_an_audit_entry_naming_the_report(history: History, tmp_path: Path) -> None:
    app = typer.Typer()
    ops.register(app)
    out = tmp_path / "review.json"
    result = CliRunner().invoke(
        app,
        [
            "review",
            "--format",
            "json",
            "--out",
            str(out),
            "--sign-off",
            "--operator",
            "op-carol",
            "--data-dir",
            str(history.data_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text("utf-8"))
    storage = SQLiteAuditStorage(history.data_dir / "audit.db", readonly=True)
    try:
        (origin,) = storage.origins()
        rows = storage.entries(origin, 0, storage.size(origin))
    finally:
        storage.close()
    signed = [json.loads(r[4]) for r in rows if json.loads(r[2])["kind"] == "review.signed-off"]
    assert len(signed) == 1
    assert signed[0]["operator"] == "op-carol"
    assert signed[0]["findings"] == len(report["findings"])


def test_sign_off_without_an_audit_log_fails_closed(history: History) -> None:
    review = _review(history)
    with pytest.raises(AuditWriteError):
        sign_off(None, review, operator="op-carol")


def test_sign_off_needs_an_operator(history: History) -> None:
    app = typer.Typer()
    ops.register(app)
    result = CliRunner().invoke(app, ["review", "--sign-off", "--data-dir", str(history.data_dir)])
    assert result.exit_code != 0
    assert "--operator" in str(result.exception)


def test_a_bound_never_approached_is_reported_with_a_tighter_one(history: History) -> None:
    review = _review(history, rare=1)
    loose = {f.subject: f for f in review.findings if f.kind == "constraint-never-approached"}
    # the story's largest transfer request was $9,800 against a bound of $1,000,000
    finding = loose["tool `transfer_funds` / parameter `amount` (max 1000000)"]
    assert finding.evidence["largest"] == 9800.0
    assert finding.evidence["limit"] == 1_000_000.0
    assert "-        max: 1000000\n" in finding.suggestion
    assert "+        max: 20000\n" in finding.suggestion  # twice the largest, rounded up


def test_bounds_need_enough_observations_and_approached_ones_are_kept(history: History) -> None:
    assert not _subjects(_review(history, rare=100), "constraint-never-approached")
    subjects = _subjects(_review(history, rare=1), "constraint-never-approached")
    # the story's memo is short and its e-mail addresses are not: only the memo bound is loose
    assert not any("`to`" in s for s in subjects)
