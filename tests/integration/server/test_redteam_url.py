"""`clearance redteam POLICY --url URL`: the attack suite against a served gate, over real HTTP.

The gate is `clearance serve`'s composition (SQLite store, audit log, approvals, kill switch,
breakers, session taint) served by uvicorn on 127.0.0.1; the command logs in and authenticates
with credentials created the way an operator creates them. The run over HTTP must find what the
in-process run finds, catch a gate that permits what the policy file forbids, refuse to start on a
wrong credential or another policy, and leave no halt in force and no key valid behind it.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx
import pytest
from tests.conftest import SMALL_POLICY

from clearance.cli.commands.redteam import attack
from clearance.cli.main import main
from clearance.gate.redteam import SKIPPED, STATEFUL, run_redteam
from clearance.integrations.redteam_http import Credentials, HttpTarget, password_env
from clearance.model.session import Environment
from clearance.policy import load_policy
from clearance.policy.bundle import Bundle
from clearance.policy.redteam import generate

from .redteam_kit import ADMIN, APPROVERS, PASSWORD, Staging, staging_gate  # noqa: TID252

ROOT = Path(__file__).resolve().parents[3]
FINANCEAPP = ROOT / "examples" / "financeapp" / "policy.yaml"
NEVER_DELETE = """\
  - id: never-delete
    tools: [delete_records]
    outcome: deny
    reason: the agent never deletes records
"""
ALLOW_ALL = "  - id: allow-all\n    tools: ['*']\n    when: 'true'\n    outcome: permit\n"
#: A hang guard, not a speed bound: a whole suite over HTTP is thousands of requests, and the
#: served gate shares this process (and a loaded machine) with the client.
WHOLE_RUN = pytest.mark.timeout(900)


@dataclasses.dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def financeapp_gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Staging]:
    """One served FinanceApp staging gate for the module (runs leave their trail on it)."""
    with staging_gate(tmp_path_factory.mktemp("financeapp"), load_policy(FINANCEAPP)) as served:
        yield served


def redteam(
    policy: Path,
    args: list[str],
    env: dict[str, str],
    *,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Run:
    """``clearance redteam POLICY --no-progress ARGS`` through the CLI's entry point, with the
    variables of ``env`` set; the exit code as ``main`` gives it to the shell."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["redteam", str(policy), "--no-progress", *args])
    captured = capsys.readouterr()
    return Run(int(exited.value.code or 0), captured.out, captured.err)


def full_run(
    staging: Staging,
    policy: Path,
    *extra: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Run:
    """A run with every credential the staging gate has for it."""
    return redteam(
        policy, [*staging.args(), *extra], staging.env(), capsys=capsys, monkeypatch=monkeypatch
    )


def halts_and_resumes(staging: Staging) -> list[tuple[str, str]]:
    """``(action, scope)`` of every kill-switch change, as the gate's store holds them."""
    history = staging.runtime.control.killswitch.store.control_history(limit=100_000)
    return [(h.action, h.scope) for h in history]


def _rule(rule: str) -> str:
    """A deciding rule without the id of the approval it names (each run has its own)."""
    return re.sub(r"\bapr_[0-9A-Z]+", "apr_*", rule)


def decisions_by_redteam(staging: Staging) -> int:
    return sum(
        len(staging.runtime.gate.store.recent_decisions(limit=10_000, agent_id=agent))
        for agent in staging.redteam_agents()
    )


def control_state(staging: Staging) -> dict[str, object]:
    client, _ = staging.admin()
    try:
        response = client.get("/v1/ops/control")
    finally:
        client.close()
    assert response.status_code == 200, response.text
    state: dict[str, object] = response.json()
    return state


def decides_normally(staging: Staging, agent_id: str) -> None:
    """A real agent of the gate, after the run: a read in a balance check is PERMIT (200)."""
    identity = staging.identity
    identity.register_agent(agent_id, environment="staging", description="", created_by="test")
    key = identity.create_agent_key(agent_id, created_by="test").secret
    orchestrator = staging.orchestrator_keys[Environment.STAGING]
    with httpx.Client(base_url=staging.url, timeout=30) as http:
        opened = http.post(
            "/v1/sessions",
            json={"agent_id": agent_id, "task": "balance_check", "environment": "staging"},
            headers={"Authorization": f"Bearer {orchestrator}"},
        )
        assert opened.status_code == 201, opened.text
        call = {
            "session_id": opened.json()["session_id"],
            "tool": "read_account",
            "args": {"account_id": "ACC-100001"},
        }
        decided = http.post("/v1/decide", json=call, headers={"Authorization": f"Bearer {key}"})
    assert decided.status_code == 200, decided.text
    assert decided.json()["outcome"] == "PERMIT"


def nothing_left_in_force(staging: Staging, prefix: str) -> set[str]:
    """The run with agents ``<prefix>-NNNNN`` left no halt in force and no valid key, and the gate
    decides normally after it; returns the scopes the run halted (each of them resumed)."""
    assert control_state(staging)["stops"] == []
    history = halts_and_resumes(staging)
    resumed = {scope for action, scope in history if action == "resume"}
    halted = {scope for action, scope in history if action == "halt"}
    assert {s for s in halted if s.startswith(f"agent:{prefix}-")}
    assert halted <= resumed
    agents = [a for a in staging.redteam_agents() if a.startswith(f"{prefix}-")]
    keys = [k for a in agents for k in staging.identity.records.list_keys(agent_id=a)]
    assert len(keys) == len(agents) > 0
    assert all(k.revoked_at is not None for k in keys)
    decides_normally(staging, f"after-{prefix}")
    return halted


# ------------------------------------------------------------------------ FinanceApp, clean


@WHOLE_RUN
def test_financeapp_over_http_finds_what_the_in_process_run_finds(
    financeapp_gate: Staging,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report_json, report_xml = tmp_path / "redteam.json", tmp_path / "redteam.xml"
    run = full_run(
        financeapp_gate,
        FINANCEAPP,
        "--json",
        str(report_json),
        "--junit",
        str(report_xml),
        capsys=capsys,
        monkeypatch=monkeypatch,
    )
    assert run.code == 0, run.out + run.err
    assert "clean: no case got a forbidden outcome" in run.out
    assert f"at {financeapp_gate.url}" in run.out
    assert "audit log" in run.out

    over_http = json.loads(report_json.read_text("utf-8"))
    local = attack(load_policy(FINANCEAPP), show_progress=False)
    assert over_http["target"] == financeapp_gate.url
    assert over_http["policy"]["digest"] == local.digest
    assert over_http["permitted_when_forbidden"] == 0
    assert over_http["violations"] == 0
    assert over_http["run"] == len(local.results) > over_http["generated"] > 1000
    # Requests the gate failed on (HTTP 500 where a 4xx refusal was due) are deviations the
    # in-process run cannot have: its request model refuses them before any gate code runs.
    failed = [c for c in over_http["cases"] if c["rule"] == "gate-error"]
    assert all(c["outcome"] == "REJECTED" and c["deviation"] for c in failed)
    per_category = [
        (
            row["category"],
            row["run"],
            row["violations"],
            row["deviations"] - sum(c["category"] == row["category"] for c in failed),
        )
        for row in over_http["categories"]
    ]
    assert per_category == local.by_category()
    for category in STATEFUL:
        assert any(c["category"] == category for c in over_http["cases"]), category

    # Case by case: the same outcome from the same rule; every halt (everything, an agent, a
    # tool, an environment) is engaged through the operator API, so nothing is skipped.
    answers = {r.id: (r.outcome, _rule(r.rule)) for r in local.results}
    assert [c["id"] for c in over_http["cases"] if c["outcome"] == SKIPPED] == []
    halts = [c["id"] for c in over_http["cases"] if c["category"] == "halt"]
    assert any("/tool:" in i for i in halts)
    assert any("/environment:" in i for i in halts)
    differing = [
        (c["id"], answers.get(c["id"]), c["outcome"], c["rule"], c["reason"])
        for c in over_http["cases"]
        if answers.get(c["id"]) != (c["outcome"], _rule(c["rule"]))
        and not (c["rule"] == "gate-error" and answers.get(c["id"], ("",))[0] == "REJECTED")
    ]
    assert differing == []
    assert len(answers) == len(over_http["cases"])
    # the happy path ran over HTTP too: approvals voted by the operators, tokens redeemed once
    redeemed = [c for c in over_http["cases"] if c["id"].endswith("/redeem")]
    assert redeemed
    assert all(c["outcome"] == "PERMIT" for c in redeemed)
    # requests the model refuses (an agent naming its own task...) were sent on the wire as an
    # agent would send them, and the service refused every one: nothing was decided
    unparsed = {
        r.id for r in local.results if r.category == "authority" and r.outcome == "REJECTED"
    }
    claims = [c for c in over_http["cases"] if c["id"] in unparsed]
    assert {next(iter(c["request"])) for c in claims} >= {"task", "environment", "delegation"}
    assert all(c["outcome"] == "REJECTED" for c in claims)
    assert all("the gate refused the request: HTTP 422" in c["reason"] for c in claims)

    junit = ET.parse(report_xml).getroot()
    assert junit.get("failures") == "0"
    assert int(junit.get("tests") or 0) == over_http["run"]

    halted = nothing_left_in_force(financeapp_gate, over_http["agent_prefix"])
    assert "all" in halted
    assert len(financeapp_gate.redteam_agents()) > 1000


# --------------------------------------------------------------------- a weakened gate


@WHOLE_RUN
def test_a_gate_that_permits_what_the_policy_file_forbids_is_caught(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The gate runs the small policy with `never-delete` replaced by a permit on every tool;
    the run judges it by the small policy file (digest check overridden on purpose)."""
    assert NEVER_DELETE in SMALL_POLICY
    weakened = load_policy(SMALL_POLICY.replace(NEVER_DELETE, ALLOW_ALL), source_name="small.yaml")
    policy = tmp_path / "small.yaml"
    policy.write_text(SMALL_POLICY, "utf-8")
    out = tmp_path / "report.json"
    with staging_gate(tmp_path, weakened) as served:
        refused = full_run(served, policy, capsys=capsys, monkeypatch=monkeypatch)
        assert refused.code == 2
        assert "decides with policy" in refused.err
        run = full_run(
            served,
            policy,
            "--unsafe-allow-digest-mismatch",
            "--json",
            str(out),
            capsys=capsys,
            monkeypatch=monkeypatch,
        )
        assert control_state(served)["stops"] == []
    assert run.code == 1, run.out + run.err
    assert "FAILED:" in run.out
    assert "FORBIDDEN destructive/" in run.out
    assert f"note: the gate runs {weakened.digest}" in run.out
    report = json.loads(out.read_text("utf-8"))
    assert report["policy"]["digest"] == weakened.digest
    permitted = [c for c in report["cases"] if c["permitted_when_forbidden"]]
    assert {c["category"] for c in permitted} >= {"destructive"}
    assert all(c["rule"] == "allow-all" for c in permitted)


# ------------------------------------------------------------------- refusals before a run


def _without(keys: dict[Environment, str], env: Environment) -> dict[Environment, str]:
    return {e: k for e, k in keys.items() if e is not env}


REFUSALS: dict[str, tuple[str, str]] = {
    "orchestrator-key-missing": ("no orchestrator key for development", "orchestrator-key"),
    "orchestrator-key-wrong": ("is not a valid key", "orchestrator-key"),
    "agent-key-as-orchestrator-key": ("cannot open sessions in staging", "orchestrator-key"),
    "orchestrator-key-malformed": ("must be given as ENV=KEY", "--orchestrator-key staging="),
    "password-wrong": ("could not log in", password_env(ADMIN)),
    "password-missing": (f"`{password_env('op-bob')}` is not set", "export"),
    "no-operator": ("no operator given", "add-operator"),
    "no-admin": ("none of the operators is an admin", "--role admin"),
    "group-not-covered": ("approver(s) of the group `dba`", "--operator"),
}


def _refusal_args(case: str, staging: Staging) -> tuple[list[str], dict[str, str]]:
    keys, env = dict(staging.orchestrator_keys), staging.env()
    operators = list(staging.operators)
    if case == "orchestrator-key-missing":
        keys = _without(keys, Environment.DEVELOPMENT)
    elif case == "orchestrator-key-wrong":
        keys[Environment.PRODUCTION] = "clr_orch_" + "0" * 43
    elif case == "agent-key-as-orchestrator-key":
        staging.identity.register_agent(
            "some-agent", environment="staging", description="", created_by="test"
        )
        keys[Environment.STAGING] = staging.identity.create_agent_key(
            "some-agent", created_by="test"
        ).secret
    elif case == "password-wrong":
        env[password_env(ADMIN)] = "not the password"
    elif case == "password-missing":
        env.pop(password_env("op-bob"))
    elif case == "no-operator":
        operators = []
    elif case == "no-admin":
        operators = list(APPROVERS)
    elif case == "group-not-covered":
        operators = [ADMIN, "op-alice", "op-bob"]
    args = ["--url", staging.url]
    for e, key in keys.items():
        args += ["--orchestrator-key", f"{e.value}={key}"]
    if case == "orchestrator-key-malformed":
        args += ["--orchestrator-key", "staging"]
    for name in operators:
        args += ["--operator", name]
    return args, env


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_missing_or_wrong_credential_stops_the_run_before_any_attack(
    financeapp_gate: Staging,
    case: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agents_before = set(financeapp_gate.redteam_agents())
    decisions_before = decisions_by_redteam(financeapp_gate)
    history_before = halts_and_resumes(financeapp_gate)
    args, env = _refusal_args(case, financeapp_gate)
    run = redteam(FINANCEAPP, args, env, capsys=capsys, monkeypatch=monkeypatch)
    message, hint = REFUSALS[case]
    assert run.code == 2, run.out + run.err
    assert message in run.err
    assert hint in run.err
    assert "Traceback" not in run.err
    assert PASSWORD not in run.err
    assert run.out == ""  # no report: nothing was attacked
    assert set(financeapp_gate.redteam_agents()) == agents_before
    assert decisions_by_redteam(financeapp_gate) == decisions_before
    assert halts_and_resumes(financeapp_gate) == history_before


def test_a_gate_running_another_policy_is_refused(
    financeapp_gate: Staging,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agents_before = set(financeapp_gate.redteam_agents())
    # the same text under another file name is another bundle (the digest covers rule lines
    # and the source name a verdict cites), and a policy with one rule changed certainly is
    renamed = tmp_path / "financeapp.yaml"
    renamed.write_text(FINANCEAPP.read_text("utf-8"), "utf-8")
    changed = tmp_path / "policy.yaml"
    changed.write_text(FINANCEAPP.read_text("utf-8").replace("timeout: 15m", "timeout: 5m"))
    active = load_policy(FINANCEAPP).digest
    for policy in (renamed, changed):
        run = full_run(financeapp_gate, policy, capsys=capsys, monkeypatch=monkeypatch)
        assert run.code == 2, run.out + run.err
        assert f"decides with policy {active}, not with {policy.name}" in run.err
        assert load_policy(policy).digest in run.err
        assert "--unsafe-allow-digest-mismatch" in run.err
        assert run.out == ""
    assert set(financeapp_gate.redteam_agents()) == agents_before


def test_an_unreachable_gate_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # port 9 (discard) on loopback: nothing listens, the connection is refused
    args = ["--url", "http://127.0.0.1:9", "--orchestrator-key", "staging=clr_orch_x"]
    run = redteam(FINANCEAPP, args, {}, capsys=capsys, monkeypatch=monkeypatch)
    assert run.code == 2
    assert "could not be reached" in run.err
    assert "clearance serve" in run.err


# --------------------------------------------------------------------- interrupted runs


@WHOLE_RUN
def test_an_interrupted_run_lifts_its_halts_and_revokes_its_keys(financeapp_gate: Staging) -> None:
    bundle: Bundle = load_policy(FINANCEAPP)
    suite = dataclasses.replace(generate(bundle.compiled), cases=())
    credentials = Credentials.from_options(
        [f"{e.value}={k}" for e, k in financeapp_gate.orchestrator_keys.items()],
        financeapp_gate.operators,
        financeapp_gate.env(),
    )
    seen: list[str] = []

    def interrupt_inside_the_halts(count: int, category: str) -> None:
        seen.append(category)
        if seen.count("halt") == 2:  # an agent halted and never resumed by its scenario
            raise KeyboardInterrupt

    with HttpTarget(financeapp_gate.url, credentials) as target:
        target.connect(suite, bundle.digest)
        with pytest.raises(KeyboardInterrupt):
            run_redteam(
                target,
                suite,
                progress=interrupt_inside_the_halts,
                agent_prefix="redteam-interrupted",
            )
    nothing_left_in_force(financeapp_gate, "redteam-interrupted")


@WHOLE_RUN
def test_a_policy_switched_during_the_run_is_reported_with_the_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone activates another policy on the gate while the run attacks it: the report is
    still written, names the switch, and the run does not exit 0."""
    policy = tmp_path / "small.yaml"
    policy.write_text(SMALL_POLICY, "utf-8")
    bundle = load_policy(policy)
    other = load_policy(SMALL_POLICY, source_name="other.yaml")  # same rules, another digest
    out = tmp_path / "report.json"
    with staging_gate(tmp_path, bundle) as served:
        switched = threading.Event()

        def activate_another_once_attacked() -> None:
            while not switched.is_set():
                if decisions_by_redteam(served) >= 20:
                    served.runtime.gate.activate(other, by="someone-else")
                    switched.set()
                switched.wait(0.05)

        watcher = threading.Thread(target=activate_another_once_attacked, daemon=True)
        watcher.start()
        try:
            run = full_run(
                served, policy, "--json", str(out), capsys=capsys, monkeypatch=monkeypatch
            )
        finally:
            switched.set()
            watcher.join(5)
    assert run.code in (1, 2), run.out + run.err
    assert f"switched from policy {bundle.digest} to {other.digest}" in run.err
    report = json.loads(out.read_text("utf-8"))
    assert report["run"] == len(report["cases"]) > 0
    assert any("switched from policy" in p for p in report["problems"])
