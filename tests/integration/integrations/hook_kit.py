"""Coding-agent gates shared by the hook, Claude Agent SDK and permission-import tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from tests.integration.integrations.kit import AGENT, init_data_dir

from clearance.cli.runtime import Runtime, open_runtime
from clearance.gate.clock import SystemClock
from clearance.integrations.claude_permissions import translate
from clearance.integrations.hooks import ToolEventGate
from clearance.integrations.mapping import SessionHandle
from clearance.integrations.transport import InProcessTransport
from clearance.model.decision import Decision

HOOK_POLICY = """\
version: "1"
name: coding-agent
default: deny
tools:
  Bash:
    tier: write-limited
    additional_params: true
    params:
      command: {type: string, required: true}
  Read:
    tier: read-only
    additional_params: true
    params:
      file_path: {type: string, required: true}
tasks:
  coding: {tools: [Bash, Read]}
environments:
  development: {}
  staging: {}
  production: {}
approvals:
  timeout: 15m
  groups:
    leads: [op-alice]
  default_group: leads
rules:
  - id: git-read
    tools: [Bash]
    when: request.target == "git" && !args.command.startsWith("git push")
    outcome: permit
    reason: git commands that stay local
  - id: git-push
    tools: [Bash]
    when: args.command.startsWith("git push")
    outcome: approval
    reason: pushing needs a lead
  - id: no-rm
    tools: [Bash]
    when: request.target == "rm"
    outcome: deny
    reason: the agent never deletes files from the shell
  - id: read-source
    tools: [Read]
    when: "!request.target.endsWith('.env')"
    outcome: permit
    reason: reading the source tree
  - id: no-secrets
    tools: [Read]
    when: request.target.endsWith(".env")
    outcome: deny
    reason: env files hold secrets
"""


@pytest.fixture
def hook_dir(tmp_path: Path) -> Path:
    path = tmp_path / "hookdata"
    init_data_dir(path, HOOK_POLICY)
    return path


@pytest.fixture
def hook_runtime(hook_dir: Path) -> Iterator[Runtime]:
    rt = open_runtime(hook_dir, clock=SystemClock())
    yield rt
    rt.close()


@pytest.fixture
def hook_session(hook_runtime: Runtime) -> SessionHandle:
    s = hook_runtime.gate.open_session(agent_id=AGENT, task="coding", environment="development")
    return SessionHandle(agent_id=s.agent_id, session_id=s.session_id)


def claude_pre(command: str, tool_use_id: str = "toolu_01") -> dict[str, Any]:
    """A Claude Code PreToolUse event (INTEGRATIONS.md 4.1)."""
    return {
        "session_id": "claude-session-1",
        "transcript_path": "/home/dev/.claude/projects/x/transcript.jsonl",
        "cwd": "/home/dev/project",
        "hook_event_name": "PreToolUse",
        "permission_mode": "default",
        "tool_name": "Bash",
        "tool_input": {"command": command, "description": "run it", "timeout": 120000},
        "tool_use_id": tool_use_id,
    }


#: Claude Code permission rules in the shape of INTEGRATIONS.md 4.4, for a project at PROJECT.
PROJECT = PurePosixPath("/srv/shop")
CLAUDE_SETTINGS: dict[str, Any] = {
    "permissions": {
        "allow": [
            "Bash(npm run test:*)",
            "Bash(git diff *)",
            "Read(./src/**)",
            "WebFetch(domain:docs.python.org)",
            "mcp__github__get_issue",
        ],
        "ask": ["Bash(git push *)"],
        "deny": ["Read(./.env)", "Read(./secrets/**)", "Bash(curl *)", "Read(*.pem)"],
        "defaultMode": "default",
    }
}


@dataclass
class ImportedGate:
    """A real gate running the policy imported from Claude Code permission rules."""

    runtime: Runtime
    events: ToolEventGate

    def decide(self, tool: str, tool_input: dict[str, Any]) -> Decision:
        """The decision for one call, mapped exactly as the hooks map it (target included)."""
        request = self.events.request_of({"tool_name": tool, "tool_input": tool_input})
        return self.runtime.gate.decide(request)


@contextmanager
def imported_gate(
    data_dir: Path, settings: dict[str, Any] = CLAUDE_SETTINGS, **options: Any
) -> Iterator[ImportedGate]:
    """Translate ``settings``, activate the policy in a fresh data directory, open a session."""
    imported = translate(settings, source="settings.json", root=PROJECT,
                         home=PurePosixPath("/home/dev"), **options)  # fmt: skip
    init_data_dir(data_dir, imported.to_yaml())
    rt = open_runtime(data_dir, clock=SystemClock())
    try:
        s = rt.gate.open_session(agent_id=AGENT, task="coding", environment="development")
        session = SessionHandle(agent_id=s.agent_id, session_id=s.session_id)
        yield ImportedGate(rt, ToolEventGate(InProcessTransport(rt.gate), session))
    finally:
        rt.close()
