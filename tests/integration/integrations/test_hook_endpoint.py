"""The sidecar's HTTP hook endpoint, over real HTTP on loopback against a real gate.

Each dialect's documented event JSON is posted as Claude Code's ``http`` hook posts it
(INTEGRATIONS.md 4.1-4.3, 4.6, 4.7) and the answer is read as the client reads it: a 2xx JSON
body, where ``{}`` is no decision. Every refusal must be an explicit deny, never a non-2xx that
the client would treat as a non-blocking error and run the tool anyway.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from tests.integration.integrations.hook_kit import claude_pre, hook_dir, hook_runtime
from tests.integration.integrations.kit import (
    AGENT,
    APPROVER,
    approve,
    decisions_in_log,
    first_pending,
    operator_thread,
    outcomes_for,
)
from tests.integration.integrations.served import Sidecar, serve_sidecar
from tests.integration.integrations.test_hooks import adapter, codex_pre, gemini_before
from typer.testing import CliRunner

from clearance.cli.commands.hook import app as hook_app
from clearance.cli.runtime import Runtime
from clearance.control.operator import Operator
from clearance.control.scope import Scope
from clearance.errors import RequestError
from clearance.gate.clock import SystemClock
from clearance.integrations.mapping import SessionHandle
from clearance.server.hooks_api import MAX_WAIT_S, hook_wait_s
from clearance.server.identity import IdentityService
from clearance.server.settings import ServerSettings
from clearance.store.identity_sql import identity_store

__all__ = ["hook_dir", "hook_runtime"]


@pytest.fixture
def served(hook_runtime: Runtime) -> Iterator[Sidecar]:
    with serve_sidecar(hook_runtime) as sidecar:
        yield sidecar


@pytest.fixture
def session_id(hook_runtime: Runtime) -> str:
    """A session the orchestrator opened for the agent, in the key's environment."""
    s = hook_runtime.gate.open_session(agent_id=AGENT, task="coding", environment="staging")
    return s.session_id


def post(
    served: Sidecar,
    event: Any,
    session_id: str | None,
    *,
    dialect: str = "claude-code",
    key: str | None = None,
    query: str = "",
    timeout: float = 60.0,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or served.agent_key}"}
    if session_id is not None:
        headers["Clearance-Session"] = session_id
    content = event if isinstance(event, str) else json.dumps(event)
    headers["Content-Type"] = "application/json"
    return httpx.post(
        f"{served.base_url}/v1/hooks/{dialect}{query}",
        content=content,
        headers=headers,
        timeout=timeout,
    )


def claude_reason(response: httpx.Response) -> str:
    """The deny reason Claude Code would show the model; fails unless it is a deny."""
    assert response.status_code == 200, response.text
    out = response.json()["hookSpecificOutput"]
    assert out["hookEventName"] == "PreToolUse"
    assert out["permissionDecision"] == "deny"
    return str(out["permissionDecisionReason"])


def post_event(pre: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {**pre, "hook_event_name": "PostToolUse", **fields}


# --- each dialect's decisions -----------------------------------------------------------------
def test_claude_permit_is_no_decision(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    response = post(served, claude_pre("git status"), session_id)
    assert (response.status_code, response.json()) == (200, {})
    [decision] = decisions_in_log(hook_runtime)
    assert (decision["outcome"], decision["rule"]) == ("PERMIT", "git-read")


def test_claude_explicit_allow_when_asked(served: Sidecar, session_id: str) -> None:
    response = post(served, claude_pre("git status"), session_id, query="?allow=true")
    out = response.json()["hookSpecificOutput"]
    assert (out["permissionDecision"], out["hookEventName"]) == ("allow", "PreToolUse")


def test_claude_deny_carries_the_same_reason_as_the_command_hook(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    reason = claude_reason(post(served, claude_pre("rm -rf /", "toolu_rm"), session_id))
    assert reason == "denied by rule `no-rm`: the agent never deletes files from the shell"
    command = adapter(hook_runtime, SessionHandle(AGENT, session_id), "claude-code")
    printed = json.loads(command.handle(claude_pre("rm -rf /", "toolu_rm2")).stdout)
    assert printed["hookSpecificOutput"]["permissionDecisionReason"] == reason
    assert [d["outcome"] for d in decisions_in_log(hook_runtime)] == ["DENY", "DENY"]


def test_codex_gets_the_claude_shape(served: Sidecar, session_id: str) -> None:
    assert "no-rm" in claude_reason(post(served, codex_pre("rm x"), session_id, dialect="codex"))
    allowed = post(
        served, {**codex_pre("git log"), "tool_use_id": "call_10"}, session_id, dialect="codex"
    )
    assert allowed.json() == {}


def test_gemini_allow_and_deny(served: Sidecar, session_id: str) -> None:
    ok = post(served, gemini_before("/p/src/app.py"), session_id, dialect="gemini")
    assert ok.json() == {"decision": "allow"}
    no = post(served, gemini_before("/p/.env"), session_id, dialect="gemini")
    assert no.json() == {
        "decision": "deny",
        "reason": "denied by rule `no-secrets`: env files hold secrets",
    }


def test_silence_is_an_explicit_deny_not_an_error(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    event = {**claude_pre("x"), "tool_name": "Write", "tool_input": {"file_path": "/p/a"}}
    reason = claude_reason(post(served, event, session_id))
    assert "the gate did not decide (unknown-tool)" in reason
    gemini = post(
        served, {**gemini_before("x"), "tool_name": "Write"}, session_id, dialect="gemini"
    )
    assert gemini.json()["decision"] == "deny"
    assert {d["outcome"] for d in decisions_in_log(hook_runtime)} == {"SILENCE"}


def test_hook_decisions_are_counted_in_the_metrics(served: Sidecar, session_id: str) -> None:
    post(served, claude_pre("rm -rf /", "toolu_m1"), session_id)
    post(served, {**claude_pre("x", "toolu_m2"), "tool_name": "Write"}, session_id)
    lines = httpx.get(f"{served.base_url}/metrics").text.splitlines()

    def counted(name: str, *labels: str) -> list[str]:
        return [x for x in lines if x.startswith(name + "{") and all(lb in x for lb in labels)]

    [deny] = counted("clearance_http_decisions_total", 'outcome="DENY"', 'rule="no-rm"')
    assert 'env="staging"' in deny
    assert deny.endswith(" 1.0")
    [silence] = counted("clearance_http_decisions_total", 'outcome="SILENCE"')
    assert 'rule="unknown-tool"' in silence


def test_other_events_get_no_decision(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    prompt = {"session_id": "c1", "hook_event_name": "UserPromptSubmit", "prompt": "rm -rf /"}
    assert post(served, prompt, session_id).json() == {}
    assert decisions_in_log(hook_runtime) == []


# --- approvals --------------------------------------------------------------------------------
def test_approval_waits_for_the_operator_then_allows_the_exact_call(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    approver = operator_thread(hook_runtime, lambda aid: approve(hook_runtime, aid))
    event = claude_pre("git push origin main", "toolu_push")
    response = post(served, event, session_id, query="?timeout=30")
    approver.join()
    assert (response.status_code, response.json()) == (200, {})
    approval, permit = decisions_in_log(hook_runtime)
    assert approval["outcome"] == "APPROVAL"
    assert permit["outcome"] == "PERMIT"
    assert permit["rule"].startswith("approval:apr_")  # the one-time token was redeemed
    assert permit["request_digest"] == approval["request_digest"]  # the exact arguments


def test_unanswered_approval_denies_with_id_and_link_never_ask(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    response = post(served, claude_pre("git push origin main"), session_id, query="?timeout=5.3")
    reason = claude_reason(response)
    assert re.search(
        r"approval `apr_\w+` pending at http://127\.0\.0\.1:\d+/approvals/apr_", reason
    )
    assert "git-push" in reason
    assert "retry after approval" in reason
    assert '"ask"' not in response.text
    assert first_pending(hook_runtime) is not None  # still waiting for an operator


def test_without_a_timeout_the_endpoint_does_not_wait(served: Sidecar, session_id: str) -> None:
    gemini = {**gemini_before("x"), "tool_name": "Bash", "tool_input": {"command": "git push"}}
    out = post(served, gemini, session_id, dialect="gemini").json()
    assert out["decision"] == "deny"
    assert "approval `apr_" in out["reason"]


def test_the_servers_wait_cap_overrides_the_hooks_timeout(
    hook_runtime: Runtime, session_id: str
) -> None:
    # With `hook_max_wait_s = 0` the endpoint answers at once, even for a hook that would wait
    # 30 s and an operator who approves as soon as the request is pending.
    with serve_sidecar(hook_runtime, ServerSettings(hook_max_wait_s=0)) as capped:
        approver = operator_thread(hook_runtime, lambda aid: approve(hook_runtime, aid))
        reason = claude_reason(
            post(capped, claude_pre("git push"), session_id, query="?timeout=30")
        )
        approver.join()
    assert "pending" in reason


def test_operator_denial_reaches_the_model(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    denier = operator_thread(
        hook_runtime,
        lambda aid: hook_runtime.approvals.deny(
            aid, APPROVER, SystemClock().now(), comment="freeze"
        ),
    )
    response = post(served, claude_pre("git push"), session_id, query="?timeout=30")
    denier.join()
    assert claude_reason(response) == "denied by rule `approval:denied`: freeze"


def test_arguments_changed_after_approval_are_refused(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    first = claude_pre("git push origin main", "toolu_9")
    assert "pending" in claude_reason(post(served, first, session_id, query="?timeout=5.2"))
    approval_id = first_pending(hook_runtime)
    assert approval_id is not None
    approve(hook_runtime, approval_id)
    # the same call id with other arguments: the approval does not carry over
    swapped = claude_pre("git push --force origin main", "toolu_9")
    assert "idempotency-conflict" in claude_reason(post(served, swapped, session_id))
    # a new call id with other arguments: a new request, which needs its own approval
    fresh = claude_pre("git push --force origin main", "toolu_10")
    assert "pending" in claude_reason(post(served, fresh, session_id, query="?timeout=5.2"))
    assert [d["outcome"] for d in decisions_in_log(hook_runtime)][-1] == "APPROVAL"
    # the approved call itself, retried unchanged, still runs once
    assert post(served, first, session_id, query="?timeout=10").json() == {}
    permits = [d for d in decisions_in_log(hook_runtime) if d["outcome"] == "PERMIT"]
    assert len(permits) == 1


def test_a_waiting_hook_does_not_hold_up_other_calls(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    """While one hook waits for a human, the sidecar keeps deciding other calls."""
    answers: dict[str, httpx.Response] = {}

    def waiting() -> None:
        answers["push"] = post(served, claude_pre("git push", "toolu_w"), session_id,
                               query="?timeout=60")  # fmt: skip

    waiter = threading.Thread(target=waiting)
    waiter.start()
    while first_pending(hook_runtime) is None:
        threading.Event().wait(0.02)
    for number in range(8):
        quick = post(served, claude_pre("git status", f"toolu_q{number}"), session_id)
        assert quick.json() == {}
    assert "push" not in answers  # the quick calls were answered while it still waited
    approve(hook_runtime, str(first_pending(hook_runtime)))
    waiter.join(60)
    assert answers["push"].json() == {}


def test_a_client_that_hung_up_leaves_the_token_unclaimed(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    """Claude Code gave up on the hook: an approval given afterwards is not redeemed for nobody."""
    with pytest.raises(httpx.ReadTimeout):
        post(served, claude_pre("git push", "toolu_gone"), session_id, query="?timeout=60",
             timeout=1.0)  # fmt: skip
    threading.Event().wait(3.0)  # the endpoint notices the hang-up between two status reads
    [pending] = decisions_in_log(hook_runtime)
    approve(hook_runtime, str(first_pending(hook_runtime)))
    record = hook_runtime.gate.store.get_decision(pending["decision_id"])
    assert record is not None
    status = hook_runtime.approvals.status(
        str(record.decision["approval_id"]),
        intent=str(record.decision["intent"]),
        agent_id=AGENT,
        session_id=session_id,
        now=SystemClock().now(),
    )
    assert status.token is not None  # still there for the agent's retry
    assert [d["outcome"] for d in decisions_in_log(hook_runtime)] == ["APPROVAL"]


# --- refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("case", "key", "fragment"),
    [
        ("no key", "", "needs an API key"),
        ("unknown key", "clr_agent_" + "x" * 43, "authentication failed"),
    ],
)
def test_unauthenticated_calls_are_denied(
    served: Sidecar, session_id: str, hook_runtime: Runtime, case: str, key: str, fragment: str
) -> None:
    headers = {"Content-Type": "application/json", "Clearance-Session": session_id}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    response = httpx.post(f"{served.base_url}/v1/hooks/claude-code",
                          content=json.dumps(claude_pre("git status")), headers=headers)  # fmt: skip
    assert fragment in claude_reason(response), case
    assert decisions_in_log(hook_runtime) == []


def other_key(runtime: Runtime, agent: str, environment: str = "staging") -> str:
    identity = IdentityService(identity_store(runtime.gate.store), runtime.gate.clock,
                               hasher=PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))  # fmt: skip
    identity.register_agent(agent, environment=environment, description="t", created_by="test")
    return identity.create_agent_key(agent, created_by="test").secret


def test_another_agents_key_cannot_use_this_agents_session(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    intruder = other_key(hook_runtime, "intruder")
    reason = claude_reason(post(served, claude_pre("git status"), session_id, key=intruder))
    assert reason == "denied by rule `session`: unknown session for this agent"
    assert decisions_in_log(hook_runtime) == []  # nothing was decided in the victim's session


def test_a_session_in_another_environment_is_refused(
    served: Sidecar, hook_runtime: Runtime
) -> None:
    dev = hook_runtime.gate.open_session(agent_id=AGENT, task="coding", environment="production")
    reason = claude_reason(post(served, claude_pre("git status"), dev.session_id))
    assert "this key is for staging" in reason
    assert decisions_in_log(hook_runtime) == []


def test_an_orchestrator_key_is_refused(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    identity = IdentityService(identity_store(hook_runtime.gate.store), hook_runtime.gate.clock)
    orchestrator = identity.create_orchestrator_key(
        "runner", environment="staging", created_by="test"
    ).secret
    reason = claude_reason(post(served, claude_pre("git status"), session_id, key=orchestrator))
    assert "orchestrator key" in reason


@pytest.mark.parametrize(
    ("case", "body", "fragment"),
    [
        ("not JSON", "{not json", "not JSON"),
        ("not an object", "[1, 2]", "not a JSON object"),
        ("no tool input", json.dumps({**claude_pre("x"), "tool_input": "rm"}), "`tool_input`"),
        ("no tool name", json.dumps({"hook_event_name": "PreToolUse"}), "`tool_name`"),
    ],
)
def test_malformed_events_are_denied(
    served: Sidecar, session_id: str, hook_runtime: Runtime, case: str, body: str, fragment: str
) -> None:
    assert fragment in claude_reason(post(served, body, session_id)), case
    gemini = post(served, body, session_id, dialect="gemini")
    assert (gemini.status_code, gemini.json()["decision"]) == (200, "deny")
    assert decisions_in_log(hook_runtime) == []


def test_no_session_header_is_denied_with_the_fix(served: Sidecar) -> None:
    reason = claude_reason(post(served, claude_pre("git status"), None))
    assert "no clearance session named" in reason
    assert "Clearance-Session" in reason


def test_a_bad_timeout_is_denied(served: Sidecar, session_id: str) -> None:
    reason = claude_reason(post(served, claude_pre("git status"), session_id, query="?timeout=x"))
    assert "`?timeout=x` is not a number of seconds" in reason


def test_an_unknown_dialect_denies_in_every_dialect(served: Sidecar, session_id: str) -> None:
    response = post(served, claude_pre("git status"), session_id, dialect="claude")
    assert response.status_code == 200
    out = response.json()
    assert out["decision"] == "block"  # Gemini's alias of deny, Claude Code's legacy deny
    assert out["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "/v1/hooks/claude-code" in out["reason"]


def test_a_halted_agent_is_denied(served: Sidecar, session_id: str, hook_runtime: Runtime) -> None:
    hook_runtime.control.killswitch.halt(
        Scope.agent(AGENT),
        operator=Operator("root", frozenset({"admin"})),
        reason="incident 42",
        now=SystemClock().now(),
    )
    reason = claude_reason(post(served, claude_pre("git status"), session_id))
    assert reason.startswith("denied by rule `kill-switch`")


def test_a_gate_that_fails_denies_without_leaking_the_failure(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    for name in ("clearance.db", "clearance.db-wal"):
        path = hook_runtime.data_dir / name
        if path.exists():
            path.write_bytes(b"this is not a database" * 4096)
    response = post(served, claude_pre("git status"), session_id)
    reason = claude_reason(response)
    assert reason.startswith("clearance: blocked: the gate did not decide (hook-endpoint)")
    assert "see the sidecar's log" in reason
    assert "clearance.db" not in reason


def test_a_revoked_key_is_denied(served: Sidecar, session_id: str, hook_runtime: Runtime) -> None:
    identity = IdentityService(identity_store(hook_runtime.gate.store), hook_runtime.gate.clock)
    identity.revoke_key(identity.authenticate_key(served.agent_key).key_id)
    reason = claude_reason(post(served, claude_pre("git status"), session_id))
    assert "authentication failed" in reason


# --- outcomes ---------------------------------------------------------------------------------
def test_post_tool_use_reaches_the_audit_log(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    pre = claude_pre("git log", "toolu_log")
    post(served, pre, session_id)
    decision_id = decisions_in_log(hook_runtime)[-1]["decision_id"]
    done = post_event(pre, tool_response={"stdout": "commit abc", "stderr": ""}, duration_ms=12)
    assert post(served, done, session_id).json() == {}
    failed_pre = claude_pre("git status", "toolu_st")
    post(served, failed_pre, session_id)
    failed_id = decisions_in_log(hook_runtime)[-1]["decision_id"]
    failure = {**failed_pre, "hook_event_name": "PostToolUseFailure", "error": "exit 128"}
    assert post(served, failure, session_id).json() == {}
    [ok] = outcomes_for(hook_runtime, decision_id)
    assert (ok["success"], ok["output_size"]) == (True, len('{"stdout":"commit abc","stderr":""}'))
    assert "commit abc" in ok["output"]
    assert outcomes_for(hook_runtime, failed_id)[0]["error"] == "exit 128"
    assert len(decisions_in_log(hook_runtime)) == 2  # recording decided nothing new


def test_post_tool_use_after_an_approval_opens_no_new_approval(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    approver = operator_thread(hook_runtime, lambda aid: approve(hook_runtime, aid))
    pre = claude_pre("git push origin main", "toolu_pushed")
    assert post(served, pre, session_id, query="?timeout=30").json() == {}
    approver.join()
    approval_id = decisions_in_log(hook_runtime)[0]["decision_id"]
    assert post(served, post_event(pre, tool_response="pushed"), session_id).json() == {}
    assert [d["outcome"] for d in decisions_in_log(hook_runtime)] == ["APPROVAL", "PERMIT"]
    assert first_pending(hook_runtime) is None
    assert outcomes_for(hook_runtime, approval_id)[0]["output"] == "pushed"


def test_an_outcome_for_a_call_never_decided_is_not_recorded(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    """A post-tool event alone must not open a decision (or page an approver) for the call."""
    ran = post_event(claude_pre("git push origin main", "toolu_ghost"), tool_response="ok")
    assert post(served, ran, session_id).json() == {}
    denied = claude_pre("rm -rf /", "toolu_denied")
    post(served, denied, session_id)
    assert post(served, post_event(denied, tool_response="gone"), session_id).json() == {}
    [decision] = decisions_in_log(hook_runtime)
    assert decision["outcome"] == "DENY"
    assert outcomes_for(hook_runtime, decision["decision_id"]) == []
    assert first_pending(hook_runtime) is None


def test_gemini_after_tool_events_carry_no_call_id_and_are_not_recorded(
    served: Sidecar, session_id: str, hook_runtime: Runtime
) -> None:
    before = gemini_before("/p/src/app.py")
    assert post(served, before, session_id, dialect="gemini").json() == {"decision": "allow"}
    after = {**before, "hook_event_name": "AfterTool", "tool_response": {"llmContent": "x"}}
    assert post(served, after, session_id, dialect="gemini").json() == {}
    [decision] = decisions_in_log(hook_runtime)
    assert outcomes_for(hook_runtime, decision["decision_id"]) == []


@pytest.mark.parametrize(
    ("query", "wait"),
    [({}, 0.0), ({"timeout": "330"}, 325.0), ({"timeout": "3"}, 0.0), ({"timeout": "1e9"}, 600.0)],
)
def test_the_wait_follows_the_hooks_timeout_within_the_cap(
    query: dict[str, str], wait: float
) -> None:
    assert hook_wait_s(query, max_wait_s=MAX_WAIT_S) == wait


@pytest.mark.parametrize("raw", ["x", "-1", "nan", "inf"])
def test_a_timeout_that_is_not_seconds_is_refused(raw: str) -> None:
    with pytest.raises(RequestError, match="is not a number of seconds"):
        hook_wait_s({"timeout": raw}, max_wait_s=MAX_WAIT_S)


# --- installation -----------------------------------------------------------------------------
def install(*args: str) -> Any:
    result = CliRunner().invoke(hook_app, ["install", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_install_http_writes_a_blocking_http_hook_without_secrets() -> None:
    settings = install("--http", "--gate-url", "http://127.0.0.1:8787", "--approval-wait", "120")
    [pre] = settings["hooks"]["PreToolUse"][0]["hooks"]
    assert pre == {
        "type": "http",
        "url": "http://127.0.0.1:8787/v1/hooks/claude-code?timeout=150",
        "headers": {
            "Authorization": "Bearer $CLEARANCE_AGENT_KEY",
            "Clearance-Session": "$CLEARANCE_SESSION_ID",
        },
        "allowedEnvVars": ["CLEARANCE_AGENT_KEY", "CLEARANCE_SESSION_ID"],
        "timeout": 150,
        "onFailure": "block",
    }
    [post_hook] = settings["hooks"]["PostToolUse"][0]["hooks"]
    assert (post_hook["type"], post_hook["onFailure"]) == ("http", "continue")


def test_install_http_managed_block_allow_lists_the_hook_urls() -> None:
    managed = install("--http", "--managed", "--gate-url", "http://127.0.0.1:8787")
    assert managed["allowManagedHooksOnly"] is True
    assert managed["allowedHttpHookUrls"] == ["http://127.0.0.1:8787/v1/hooks/*"]
    assert managed["httpHookAllowedEnvVars"] == ["CLEARANCE_AGENT_KEY", "CLEARANCE_SESSION_ID"]
    assert managed["hooks"]["PreToolUse"][0]["hooks"][0]["type"] == "http"


@pytest.mark.parametrize(
    "args",
    [["--http"], ["--http", "--client", "codex", "--gate-url", "http://127.0.0.1:1"]],
)
def test_install_http_needs_claude_code_and_a_sidecar(args: list[str]) -> None:
    result = CliRunner().invoke(hook_app, ["install", *args])
    assert result.exit_code != 0
    assert "--http" in str(result.exception)


def test_install_http_replaces_the_command_hooks(tmp_path: Any) -> None:
    path = tmp_path / "settings.json"
    CliRunner().invoke(
        hook_app, ["install", "--gate-url", "http://127.0.0.1:1", "--write", str(path)]
    )
    CliRunner().invoke(
        hook_app, ["install", "--http", "--gate-url", "http://127.0.0.1:1", "--write", str(path)]
    )
    written = json.loads(path.read_text("utf-8"))
    for event in ("PreToolUse", "PostToolUse", "PostToolUseFailure"):
        assert [h["type"] for g in written["hooks"][event] for h in g["hooks"]] == ["http"]


def test_install_refuses_a_broken_settings_file(tmp_path: Any) -> None:
    path = tmp_path / "settings.json"
    path.write_text("{ broken", "utf-8")
    result = CliRunner().invoke(hook_app, ["install", "--write", str(path)])
    assert result.exit_code != 0
    assert "not valid JSON" in str(result.exception)
    assert path.read_text("utf-8") == "{ broken"


def test_the_installed_http_hook_works_as_claude_code_would_call_it(
    served: Sidecar, session_id: str
) -> None:
    """Expand the written headers from the environment, as Claude Code does, and post."""
    settings = install("--http", "--gate-url", served.base_url, "--approval-wait", "0")
    [pre] = settings["hooks"]["PreToolUse"][0]["hooks"]
    env = {"CLEARANCE_AGENT_KEY": served.agent_key, "CLEARANCE_SESSION_ID": session_id}

    def expand(value: str) -> str:
        allowed = pre["allowedEnvVars"]
        return re.sub(r"\$(\w+)", lambda m: env[m[1]] if m[1] in allowed else "", value)

    headers = {name: expand(value) for name, value in pre["headers"].items()}
    body = json.dumps(claude_pre("rm -rf /"))
    response = httpx.post(pre["url"], content=body,
                          headers={**headers, "Content-Type": "application/json"})  # fmt: skip
    assert "no-rm" in claude_reason(response)
    assert os.environ.get("CLEARANCE_AGENT_KEY") != served.agent_key  # nothing leaked into ours
