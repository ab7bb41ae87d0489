"""Promotion from staging to production: refused unless tested, narrow and independently approved."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.integration.ops.conftest import History
from typer.testing import CliRunner

from clearance.cli.commands import ops
from clearance.cli.commands.core import example_policy_text
from clearance.cli.commands.redteam import attack
from clearance.gate.promotion import (
    PromotionPlan,
    PromotionRefusedError,
    check_promotion,
    find_widenings,
)
from clearance.gate.redteam import Report
from clearance.model.decision import Outcome
from clearance.policy import load_policy
from clearance.policy.bundle import Bundle
from clearance.policy.cases import load_cases
from clearance.store.audit_sqlite import SQLiteAuditStorage

STAGING = example_policy_text()
GRANT = "tools: [read_account]\n  transfer:"
WIDER = STAGING.replace(GRANT, "tools: [read_account, transfer_funds]\n  transfer:")
STRICTER = STAGING.replace("when: args.amount > 1000.0", "when: args.amount > 5000.0")
CASES = """
defaults:
  session: {task: transfer, environment: production}
  request: {tool: transfer_funds}
cases:
  - name: a large transfer waits for a human
    request: {args: {from_account: ACC-100001, to_account: ACC-100002, amount: 2400.0}}
    want_outcome: APPROVAL
    want_rule: large-transfer
"""


def _policies(tmp_path: Path, production: str) -> tuple[Path, Path, Path]:
    paths = tmp_path / "staging.yaml", tmp_path / "production.yaml", tmp_path / "cases.yaml"
    for path, text in zip(paths, (STAGING, production, CASES), strict=True):
        path.write_text(text, encoding="utf-8")
    return paths


_REPORTS: dict[str, Report] = {}


def real_attack(bundle: Bundle) -> Report:
    """The real red-team run on a throw-away gate, once per distinct production bundle."""
    if bundle.digest not in _REPORTS:
        _REPORTS[bundle.digest] = attack(bundle, show_progress=False)
    return _REPORTS[bundle.digest]


def _check(
    production: str,
    *,
    approver: str = "op-bob",
    allowed_widenings: Sequence[str] = (),
    attack_with: Callable[[Bundle], Report] | None = None,
) -> PromotionPlan:
    return check_promotion(
        load_policy(STAGING, source_name="staging.yaml"),
        load_policy(production, source_name="production.yaml"),
        load_cases(CASES, source_name="cases.yaml"),
        author="op-alice",
        approver=approver,
        attack=attack_with or real_attack,
        allowed_widenings=allowed_widenings,
    )


def test_a_clean_promotion_ran_the_red_team() -> None:
    plan = _check(STAGING)
    assert plan.attacks_run > 100
    assert plan.cases_passed == 1


def test_refused_when_the_red_team_finds_a_forbidden_outcome() -> None:
    """A gate that answers PERMIT where the policy says DENY must never reach production."""

    def breached(bundle: Bundle) -> Report:
        report = real_attack(bundle)
        victim = next(r for r in report.results if r.expect.breaks(Outcome.PERMIT, "bg-1"))
        breach = dataclasses.replace(
            victim, outcome=Outcome.PERMIT.value, rule="break-glass:bg-1", violation=True
        )
        return dataclasses.replace(report, results=[breach, *report.results])

    with pytest.raises(
        PromotionRefusedError, match=r"red team: .* got PERMIT \(break-glass:bg-1\)"
    ):
        _check(STAGING, attack_with=breached)


def test_refused_when_the_red_team_ran_nothing() -> None:
    def empty(bundle: Bundle) -> Report:
        return dataclasses.replace(real_attack(bundle), results=[])

    with pytest.raises(PromotionRefusedError, match="red team ran no case"):
        _check(STAGING, attack_with=empty)


def test_refused_when_policy_tests_fail() -> None:
    assert STRICTER != STAGING
    with pytest.raises(PromotionRefusedError, match=r"policy test failed.*large transfer"):
        _check(STRICTER)


def test_refused_when_a_widening_is_unnamed() -> None:
    assert WIDER != STAGING
    with pytest.raises(PromotionRefusedError, match="unnamed widening `task:balance_check:"):
        _check(WIDER)


def test_a_named_widening_is_accepted_and_recorded_in_the_plan() -> None:
    plan = _check(WIDER, allowed_widenings=["task:balance_check:transfer_funds"])
    assert [w.name for w in plan.widenings] == ["task:balance_check:transfer_funds"]


def test_naming_a_widening_that_does_not_exist_is_refused() -> None:
    with pytest.raises(PromotionRefusedError, match="names no widening"):
        _check(STAGING, allowed_widenings=["task:report:execute_sql"])


def test_refused_when_the_author_approves() -> None:
    with pytest.raises(PromotionRefusedError, match="cannot approve its promotion"):
        _check(STAGING, approver="op-alice")


def test_narrowing_is_not_a_widening_and_loosening_a_rule_is() -> None:
    staging = load_policy(STAGING, source_name="s.yaml")
    assert find_widenings(staging, load_policy(STRICTER, source_name="p.yaml")) == []
    loosened = STAGING.replace(
        "outcome: approval\n    group: finance-approvers\n    reason: transfers above",
        "outcome: permit\n    reason: transfers above",
    )
    assert loosened != STAGING
    names = [w.name for w in find_widenings(staging, load_policy(loosened, source_name="p.yaml"))]
    assert names == ["rule:large-transfer"]


def test_cli_signs_the_bundle_and_audits_the_promotion(history: History, tmp_path: Path) -> None:
    staging, production, cases = _policies(tmp_path, STAGING)
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "policy-signing.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    out = tmp_path / "production.bundle"
    app = typer.Typer()
    ops.register(app)
    result = CliRunner().invoke(
        app,
        [
            "promote",
            str(staging),
            str(production),
            "--cases",
            str(cases),
            "--author",
            "op-alice",
            "--approver",
            "op-bob",
            "--signing-key",
            str(pem),
            "--out",
            str(out),
            "--data-dir",
            str(history.data_dir),
        ],
    )
    assert result.exit_code == 0, result.output
    signature = base64.b64decode(out.with_name(out.name + ".sig").read_text("utf-8"))
    signed = Bundle.from_bytes(out.read_bytes(), signature=signature)
    signed.verify_signature(key.public_key())
    storage = SQLiteAuditStorage(history.data_dir / "audit.db", readonly=True)
    try:
        (origin,) = storage.origins()
        rows = storage.entries(origin, 0, storage.size(origin))
    finally:
        storage.close()
    promoted = [json.loads(r[2]) for r in rows if json.loads(r[2])["kind"] == "policy.promoted"]
    assert [p["policy"] for p in promoted] == [signed.digest]
