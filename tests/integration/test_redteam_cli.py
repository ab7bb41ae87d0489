"""`clearance redteam`: FinanceApp holds, weakened policies and sabotaged gates are caught.

The command runs every generated case and the stateful attacks against a real gate (SQLite store,
audit log, approvals, kill switch, breakers) in a temporary data directory. The sabotage tests
break one part of that gate on purpose and check that the attack meant for it fails, so a clean
report means the attacks ran, not that they could not fail.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from typer.testing import CliRunner

from clearance.cli.commands.redteam import attack, redteam_target
from clearance.cli.main import app, main
from clearance.gate.redteam import STATEFUL, GateTarget, Report, run_redteam
from clearance.model import Outcome, Request, SessionFacts, Verdict
from clearance.model.decision import Decision
from clearance.policy import load_policy
from clearance.policy.bundle import Bundle
from clearance.policy.evaluate import evaluate
from clearance.policy.redteam import CATEGORIES, generate

ROOT = Path(__file__).resolve().parents[2]
FINANCEAPP = ROOT / "examples" / "financeapp" / "policy.yaml"
TEXT = FINANCEAPP.read_text("utf-8")
runner = CliRunner()

RECIPIENT_PATTERN = (
    'pattern: "[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\\\\.[A-Za-z0-9-]+)*\\\\.[A-Za-z]{2,}"'
)
FETCH_RULES = """\
  - id: fetch-allowlisted
    tools: [fetch_url]
    when: url_host(args.url) in data.allowed_domains
    outcome: permit
    reason: the host is on the allowlist

  - id: fetch-elsewhere
    tools: [fetch_url]
    when: "!(url_host(args.url) in data.allowed_domains)"
    outcome: deny
    reason: fetch_url may reach allowlisted hosts only
"""
NEVER_DELETE = """\
  - id: never-delete
    tools: [delete_records]
    outcome: deny
    reason: the agent may never delete records
"""


def _weaken(old: str, new: str) -> str:
    assert old in TEXT, old
    return TEXT.replace(old, new)


#: name -> (weakened policy text, the attack category that must catch it)
WEAKENED: dict[str, tuple[str, str]] = {
    # the recipient regex widened to anything with an @: a foreign address smuggled in front of
    # an internal one now passes the schema, and `endsWith("@financeapp.example")` permits it
    "widened-recipient-regex": (_weaken(RECIPIENT_PATTERN, 'pattern: ".+@.+"'), "smuggle"),
    # the host allowlist rewritten as a string prefix check (and the deny for other hosts gone):
    # `https://api.exchangerates.example.evil/` and `...example@evil/` start with the prefix
    "url-prefix-allowlist": (
        _weaken(
            FETCH_RULES,
            "  - id: fetch-allowlisted\n    tools: [fetch_url]\n"
            "    when: 'args.url.startsWith(\"https://api.exchangerates.example\")'\n"
            "    outcome: permit\n",
        ),
        "url",
    ),
    # `never-delete` replaced by a permit `when: true` on every tool: the destructive
    # delete_records is now permitted by a rule that does not name it
    "permit-true-on-every-tool": (
        _weaken(
            NEVER_DELETE,
            "  - id: allow-all\n    tools: ['*']\n    when: 'true'\n    outcome: permit\n",
        ),
        "destructive",
    ),
}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------------- FinanceApp


def test_financeapp_comes_out_clean_with_json_and_junit_reports(tmp_path: Path) -> None:
    report_json, report_xml = tmp_path / "redteam.json", tmp_path / "redteam.xml"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "clearance",
            "redteam",
            str(FINANCEAPP),
            "--json",
            str(report_json),
            "--junit",
            str(report_xml),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "clean: no case got a forbidden outcome" in result.stdout
    assert "cases/s" in result.stdout
    report = json.loads(report_json.read_text("utf-8"))
    assert report["passed"] is True
    assert report["permitted_when_forbidden"] == 0
    assert report["violations"] == 0
    assert report["skipped"] == 0
    assert report["unreached_rules"] == []
    ran = {row["category"]: row["run"] for row in report["categories"]}
    for category in (*CATEGORIES, *STATEFUL):
        assert ran.get(category, 0) > 0, category
    assert report["run"] == len(report["cases"]) > report["generated"] > 1000
    junit = ET.parse(report_xml).getroot()
    assert junit.get("failures") == "0"
    assert int(junit.get("tests") or 0) == report["run"]
    # the happy path inside the stateful attacks ran too: an approved call redeemed once
    redeemed = [c for c in report["cases"] if c["id"].endswith("/redeem")]
    assert redeemed
    assert all(c["outcome"] == "PERMIT" for c in redeemed)


# ----------------------------------------------------------------------- weakened policies


@pytest.mark.parametrize("name", sorted(WEAKENED))
def test_a_weakened_policy_fails_the_run(tmp_path: Path, name: str) -> None:
    text, category = WEAKENED[name]
    path = _write(tmp_path, name, text)
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["redteam", str(path), "--no-progress", "--json", str(out)])
    assert result.exit_code == 1, result.output
    assert "FAILED:" in result.output
    assert "FORBIDDEN" in result.output
    report = json.loads(out.read_text("utf-8"))
    assert report["permitted_when_forbidden"] > 0
    caught = {c["category"] for c in report["cases"] if c["permitted_when_forbidden"]}
    assert category in caught


def test_a_permit_when_true_on_transfer_funds_changes_no_financeapp_decision() -> None:
    """The brief's example weakening is a no-op on FinanceApp, so a clean run is right.

    DENY beats APPROVAL beats PERMIT whatever the order, and every valid transfer already matches
    `small-transfer-known-payee` (PERMIT) or an approval rule (`large-transfer`,
    `unknown-payee`, `transfer-after-untrusted-content`, production's approval tier): an extra
    unconditional permit on `transfer_funds` decides nothing. Every generated case gets the same
    outcome from both policies, which is why the red team reports it clean rather than guessing.
    """
    text = TEXT.replace(
        "rules:\n",
        "rules:\n  - id: allow-transfers\n    tools: [transfer_funds]\n"
        "    when: 'true'\n    outcome: permit\n",
        1,
    )
    weakened = load_policy(text).compiled
    suite = generate(load_policy(FINANCEAPP).compiled)
    changed = []
    for case in suite.cases:
        if case.predicted is None:
            continue
        request = Request(agent_id="a", session_id="s", tool=case.tool, args=dict(case.args))
        facts = SessionFacts.model_validate(
            {"task": case.task, "environment": case.environment, "taint": list(case.taint)}
        )
        if evaluate(weakened, request, facts).outcome is not case.predicted.outcome:
            changed.append(case.id)
    assert changed == []
    assert attack(load_policy(text), show_progress=False).passed


# ------------------------------------------------------------------------ sabotaged gates


@contextmanager
def _gate(tmp_path: Path) -> Iterator[tuple[GateTarget, Bundle]]:
    bundle = load_policy(FINANCEAPP)
    with redteam_target(bundle, tmp_path / "data") as target:
        yield target, bundle


def _stateful_only(target: GateTarget, bundle: Bundle) -> Report:
    suite = dataclasses.replace(generate(bundle.compiled), cases=())
    return run_redteam(target, suite)


def _caught(report: Report) -> set[str]:
    return {r.category for r in report.permitted}


def test_the_stateful_attacks_pass_on_the_real_gate(tmp_path: Path) -> None:
    with _gate(tmp_path) as (target, bundle):
        report = _stateful_only(target, bundle)
    assert report.passed, [r.id for r in report.violations]
    assert {r.category for r in report.results} == set(STATEFUL)


def test_a_gate_that_redeems_any_token_is_caught(tmp_path: Path) -> None:
    with _gate(tmp_path) as (target, bundle):

        def redeem_anything(request: Request, state: object, now: datetime) -> Verdict:
            return Verdict(outcome=Outcome.PERMIT, rule="approval:forged", reason="sabotaged")

        target.approvals.redeem = redeem_anything  # type: ignore[method-assign]
        report = _stateful_only(target, bundle)
    assert {"approval", "token-replay", "args-swap", "idempotency"} <= _caught(report)


def test_a_gate_without_its_kill_switch_is_caught(tmp_path: Path) -> None:
    with _gate(tmp_path) as (target, bundle):
        target.gate.pre_checks.clear()
        report = _stateful_only(target, bundle)
    caught = [r for r in report.permitted if r.category == "halt"]
    assert caught
    assert {r.id.rsplit("/", 1)[-1] for r in caught} >= {"same-session", "new-session", "halted"}


def test_a_gate_that_replays_any_decision_under_a_reused_key_is_caught(tmp_path: Path) -> None:
    with _gate(tmp_path) as (target, bundle):
        gate = target.gate

        def replay_anything(request: Request, now: datetime) -> Decision | None:
            key = request.idempotency_key
            record = gate.store.get_idempotency(request.agent_id, key) if key else None
            return Decision.model_validate(record.decision) if record else None

        gate._idempotent = replay_anything  # type: ignore[method-assign]
        report = _stateful_only(target, bundle)
    assert "idempotency" in _caught(report)


def test_a_gate_that_forgets_taint_is_caught(tmp_path: Path) -> None:
    with _gate(tmp_path) as (target, bundle):
        target.gate.store.add_taint = lambda *args, **kwargs: None  # type: ignore[method-assign]
        suite = generate(bundle.compiled)
        taint_only = dataclasses.replace(
            suite, cases=tuple(c for c in suite.cases if c.category == "taint")
        )
        report = run_redteam(target, taint_only)
    permitted = [r for r in report.permitted if r.category == "taint"]
    assert permitted
    assert {r.tool for r in permitted} == {"transfer_funds"}


def test_an_interrupted_run_lifts_every_halt_it_engaged(tmp_path: Path) -> None:
    """Ctrl-C in the middle of the halt attacks: the agents halted so far are resumed anyway."""
    seen: list[str] = []

    def interrupt_inside_the_halts(count: int, category: str) -> None:
        seen.append(category)
        if seen.count("halt") == 2:  # two agents halted, neither resumed by its scenario
            raise KeyboardInterrupt

    with _gate(tmp_path) as (target, bundle):
        suite = dataclasses.replace(generate(bundle.compiled), cases=())
        with pytest.raises(KeyboardInterrupt):
            run_redteam(target, suite, progress=interrupt_inside_the_halts)
        status = target.killswitch.status(history=1000)
    assert status.stops == ()
    halted = {h.scope for h in status.history if h.action == "halt"}
    resumed = {h.scope for h in status.history if h.action == "resume"}
    assert len(halted) == 2
    assert halted == resumed


def test_the_digest_override_without_url_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["redteam", str(FINANCEAPP), "--unsafe-allow-digest-mismatch"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "applies to a gate attacked with --url" in err
