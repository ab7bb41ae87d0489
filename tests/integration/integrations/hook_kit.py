"""A coding-agent policy and a gate opened on it, shared by the hook and Claude Agent SDK tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.integrations.kit import AGENT, init_data_dir

from clearance.cli.runtime import Runtime, open_runtime
from clearance.gate.clock import SystemClock
from clearance.integrations.mapping import SessionHandle

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
