"""Claude Code's hooks behind clearance, offline: both hook kinds, a denial, an approval, the trail.

Run with ``python examples/claude-code-hooks/run.py``. Claude Code itself is not needed: this
script posts the JSON Claude Code sends (PreToolUse / PostToolUse, INTEGRATIONS.md 4.1) the way
Claude Code sends it, to the two hooks ``clearance hook install`` configures:

* the **command hook**: ``clearance hook claude-code --gate-url ...`` run as a subprocess, the
  event on stdin, the decision JSON on stdout (exit 2 blocks);
* the **HTTP hook**: ``POST /v1/hooks/claude-code`` on the sidecar, with the URL and headers
  exactly as ``clearance hook install --http`` writes them, ``$VAR`` expanded from the agent's
  environment as Claude Code does.

Everything on the clearance side is real: a sidecar on 127.0.0.1 with its store, approval service
and signed audit log in a throw-away data directory, the policy in ``policy.yaml``, an agent key,
and an operator who approves the push through the operator API (what the dashboard's Approve
button calls). At the end the audit log is verified with ``clearance audit verify`` and only the
public key.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from clearance.audit.export import export_events
from clearance.cli.commands.serve import build_services
from clearance.cli.runtime import Runtime, create_keys, key_paths, open_runtime, store_url_for
from clearance.gate.clock import SystemClock
from clearance.gate.config import GateConfig
from clearance.integrations.hooks import claude_http_settings
from clearance.policy import load_policy
from clearance.server.app import create_app
from clearance.server.embedded import serve_in_background
from clearance.server.identity import IdentityService, Role
from clearance.server.settings import ServerSettings
from clearance.store import open_store
from clearance.store.audit_sqlite import SQLiteAuditStorage
from clearance.store.identity_sql import identity_store

HERE = Path(__file__).resolve().parent
AGENT = "claude-coder-1"
OPERATOR = "op-lead"
PROJECT = "/workspace/shop"
#: Claude Code's ``timeout`` for the PreToolUse hook; the sidecar waits a little less for a human.
HOOK_TIMEOUT_S = 60


@dataclass(frozen=True)
class Step:
    """One tool call as Claude Code would experience it."""

    hook: str  # "command" or "http"
    call: str
    allowed: bool
    reason: str = ""  # what Claude is told when it is denied


@dataclass
class Outcome:
    """What happened, for the reader and for the example's test."""

    steps: list[Step] = field(default_factory=list)
    approved_by: str = ""
    trail: list[dict[str, Any]] = field(default_factory=list)
    verified: bool = False
    verify_output: str = ""


@dataclass(frozen=True)
class Agent:
    """What the launcher exports for the agent: its key and the session it opened."""

    base_url: str
    key: str
    session_id: str
    password: str  # the operator's, for the approval step

    def env(self) -> dict[str, str]:
        return {
            "CLEARANCE_AGENT_ID": AGENT,
            "CLEARANCE_SESSION_ID": self.session_id,
            "CLEARANCE_AGENT_KEY": self.key,
        }


def pre_tool_use(tool: str, tool_input: dict[str, Any], tool_use_id: str) -> dict[str, Any]:
    """Claude Code's PreToolUse event (INTEGRATIONS.md 4.1)."""
    return {
        "session_id": "3f1c9a52-claude-session",
        "transcript_path": "/home/dev/.claude/projects/shop/transcript.jsonl",
        "cwd": PROJECT,
        "hook_event_name": "PreToolUse",
        "permission_mode": "default",
        "tool_name": tool,
        "tool_input": tool_input,
        "tool_use_id": tool_use_id,
    }


def post_tool_use(pre: dict[str, Any], response: Any) -> dict[str, Any]:
    """The PostToolUse event Claude Code sends after the call ran."""
    return {**pre, "hook_event_name": "PostToolUse", "tool_response": response, "duration_ms": 41}


def describe(event: dict[str, Any]) -> str:
    tool_input = event["tool_input"]
    return f"{event['tool_name']}({tool_input.get('command') or tool_input.get('file_path')})"


# the two hooks -------------------------------------------------------------------------------
def command_hook(agent: Agent, event: dict[str, Any]) -> Step | None:
    """Run ``clearance hook claude-code`` as Claude Code runs a command hook."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARANCE_")}
    argv = [sys.executable, "-m", "clearance", "hook", "claude-code",
            "--gate-url", agent.base_url, "--approval-wait", "0"]  # fmt: skip
    done = subprocess.run(
        argv,
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env={**env, **agent.env()},
        timeout=120,
        check=False,
    )
    if event["hook_event_name"] != "PreToolUse":
        if done.returncode != 0:
            raise RuntimeError(f"the post-tool hook failed: {done.stderr}")
        return None
    if done.returncode == 2:  # blocked: the reason is on stderr
        return Step("command", describe(event), allowed=False, reason=done.stderr.strip())
    return _step("command", event, json.loads(done.stdout) if done.stdout.strip() else {})


def http_hook(agent: Agent, event: dict[str, Any]) -> Step | None:
    """Post the event as Claude Code's http hook does, from the installed settings."""
    kind = event["hook_event_name"]
    [hook] = claude_http_settings(agent.base_url, timeout_s=HOOK_TIMEOUT_S)["hooks"][kind][0][
        "hooks"
    ]
    env = agent.env()

    def expand(value: str) -> str:  # only the allow-listed variables expand
        allowed = hook["allowedEnvVars"]
        return re.sub(r"\$(\w+)", lambda m: env[m[1]] if m[1] in allowed else "", value)

    headers = {name: expand(value) for name, value in hook["headers"].items()}
    response = httpx.post(
        hook["url"],
        content=json.dumps(event),
        headers={**headers, "Content-Type": "application/json"},
        timeout=hook["timeout"],
    )
    response.raise_for_status()  # with onFailure: "block", Claude Code blocks on a non-2xx
    return _step("http", event, response.json()) if kind == "PreToolUse" else None


def _step(hook: str, event: dict[str, Any], output: dict[str, Any]) -> Step:
    decision = output.get("hookSpecificOutput", {})
    if decision.get("permissionDecision") == "deny":
        return Step(hook, describe(event), allowed=False,
                    reason=decision["permissionDecisionReason"])  # fmt: skip
    return Step(hook, describe(event), allowed=True)


# the operator --------------------------------------------------------------------------------
def approve_from_the_operator_api(agent: Agent, out: Outcome) -> threading.Thread:
    """The lead logs in and approves the first pending request, as the dashboard would."""

    def act() -> None:
        with httpx.Client(base_url=agent.base_url, timeout=10) as ops:
            login = ops.post(
                "/v1/ops/login", json={"username": OPERATOR, "password": agent.password}
            )
            login.raise_for_status()
            csrf = {"x-csrf-token": login.json()["csrf_token"]}
            for _ in range(600):
                pending = ops.get("/v1/ops/approvals").json()
                if pending:
                    approval_id = pending[0]["approval_id"]
                    ops.post(f"/v1/ops/approvals/{approval_id}/approve",
                             json={"comment": "reviewed the diff"}, headers=csrf).raise_for_status()  # fmt: skip
                    out.approved_by = f"{OPERATOR} approved {approval_id}"
                    return
                threading.Event().wait(0.05)

    thread = threading.Thread(target=act)
    thread.start()
    return thread


# the gate ------------------------------------------------------------------------------------
def open_gate(data_dir: Path) -> Runtime:
    """A fresh data directory (as ``clearance init``) with ``policy.yaml`` active."""
    create_keys(data_dir, GateConfig().deployment)
    open_store(store_url_for(data_dir, None)).close()
    runtime = open_runtime(data_dir, clock=SystemClock(), require_policy=False)
    runtime.gate.activate(load_policy(HERE / "policy.yaml"), by="example")
    return runtime


@contextmanager
def sidecar(runtime: Runtime) -> Iterator[Agent]:
    """``clearance serve`` on a free loopback port, with the agent, its key and the lead."""
    services, _ = build_services(runtime)
    app = create_app(services, ServerSettings())
    identity = IdentityService(identity_store(runtime.gate.store), runtime.gate.clock)
    identity.register_agent(AGENT, environment="development", description="Claude Code",
                            created_by="example")  # fmt: skip
    key = identity.create_agent_key(AGENT, created_by="example").secret
    password = uuid.uuid4().hex
    identity.create_operator(OPERATOR, password, {Role.APPROVER})
    # The launcher (the orchestrator) opens the session and exports its id with the key.
    session = runtime.gate.open_session(agent_id=AGENT, task="coding", environment="development")
    with serve_in_background(app) as base_url:
        yield Agent(base_url, key, session.session_id, password)


def audit_trail(runtime: Runtime) -> list[dict[str, Any]]:
    """Decisions, approval events and outcomes of the shard, in order."""
    runtime.audit_log.checkpoint_now()
    storage = SQLiteAuditStorage(runtime.data_dir / "audit.db", readonly=True)
    try:
        events = list(export_events(storage, runtime.audit_log.origin))
    finally:
        storage.close()
    return [e for e in events if e["kind"] in ("decision", "outcome", "approval.approved")]


def verify(data_dir: Path) -> tuple[bool, str]:
    """``clearance audit verify``: the whole shard, checked with nothing but the public key."""
    public_key = key_paths(data_dir)[2].read_text("utf-8").strip()
    argv = [sys.executable, "-m", "clearance", "audit", "verify", "log",
            "--key", public_key, str(data_dir / "audit.db")]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    return done.returncode == 0, (done.stdout + done.stderr).strip()


def run(data_dir: Path) -> Outcome:
    """Play the example in ``data_dir``; return what happened."""
    out = Outcome()
    runtime = open_gate(data_dir)
    try:
        with sidecar(runtime) as agent:
            status = pre_tool_use("Bash", {"command": "git status"}, "toolu_01")
            for hook, event in (
                (command_hook, status),
                (command_hook, post_tool_use(status, {"stdout": "On branch main", "stderr": ""})),
                (command_hook, pre_tool_use("Bash", {"command": "rm -rf build"}, "toolu_02")),
                (http_hook, pre_tool_use("Read", {"file_path": f"{PROJECT}/.env"}, "toolu_03")),
            ):
                step = hook(agent, event)
                if step is not None:
                    out.steps.append(step)
            push = pre_tool_use("Bash", {"command": "git push origin main"}, "toolu_04")
            operator = approve_from_the_operator_api(agent, out)
            step = http_hook(agent, push)  # waits while the lead looks at it
            operator.join()
            if step is not None:
                out.steps.append(step)
            http_hook(agent, post_tool_use(push, {"stdout": "main -> main", "stderr": ""}))
        out.trail = audit_trail(runtime)
    finally:
        runtime.close()
    out.verified, out.verify_output = verify(data_dir)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="clearance-hooks-") as tmp:
        out = run(Path(tmp) / ".clearance")
    for step in out.steps:
        verdict = "allowed" if step.allowed else f"denied -> Claude sees: {step.reason}"
        print(f"{step.hook:<8} {step.call:<40} {verdict}")
    print(out.approved_by)
    print("audit trail:")
    for event in out.trail:
        if event["kind"] == "decision":
            line = f"{event['tool']} {event['outcome']} by `{event['rule']}`"
        elif event["kind"] == "outcome":
            line = "outcome recorded"
        else:
            line = f"approved by {event['approver'] or OPERATOR}"
        print(
            f"  #{event['index']:<3} {event['kind']:<18} {(event['decision_id'] or '')[-8:]}  {line}"
        )
    print(f"clearance audit verify: {'ok' if out.verified else 'FAILED'} ({out.verify_output})")


if __name__ == "__main__":
    main()
