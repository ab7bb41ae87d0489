"""The shipped multi-agent example: the compromised research agent's pivots to deploy are stopped
(never PERMIT) and every attempt, and the message it sent, is in the signed audit log."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "multi_agent" / "run.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("multi_agent_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_example().run(tmp_path_factory.mktemp("multi-agent") / "data")


def test_pivots_to_deploy_are_never_permitted(outcome: Any) -> None:
    pivots = outcome.pivots
    assert [(p.agent, p.tool) for p in pivots] == [("research", "deploy"), ("deployer", "deploy")]
    assert [(p.outcome, p.rule) for p in pivots] == [
        ("DENY", "scope"),
        ("DENY", "deploy-through-ungranted-agent"),
    ]


def test_legitimate_work_proceeds_and_own_deploy_waits_for_a_human(outcome: Any) -> None:
    steps = {(s.agent, s.tool): s.outcome for s in outcome.steps if not s.pivot}
    assert steps == {
        ("research", "web_search"): "PERMIT",
        ("analyst", "analyze"): "PERMIT",
        ("drafter", "write_draft"): "PERMIT",
        ("deployer", "deploy"): "APPROVAL",
    }


def test_pivots_and_the_message_are_in_the_audit_log(outcome: Any) -> None:
    audit = outcome.audit
    denied = [e for e in audit if e.get("tool") == "deploy" and e.get("outcome") == "DENY"]
    assert {e["rule"] for e in denied} == {"scope", "deploy-through-ungranted-agent"}
    relayed = next(e for e in denied if e["rule"] == "deploy-through-ungranted-agent")
    assert relayed["payload"]["delegation"] == ["research", "deployer"]
    assert "untrusted:agent:research" in relayed["payload"]["taint"]
    messages = [e for e in audit if e["payload"] and e["payload"].get("sender") == "research"]
    assert len(messages) == 1
    assert messages[0]["payload"]["receiver"] == "deployer"
    assert messages[0]["payload"]["authority_claims"] == ["task"]


def test_research_session_is_tainted_by_the_page_it_read(outcome: Any) -> None:
    audit = outcome.audit
    own_deploy = next(e for e in audit if e.get("tool") == "deploy" and e.get("rule") == "scope")
    assert "untrusted:web_search" in own_deploy["payload"]["taint"]
    assert "untrusted:injection:web_search" in own_deploy["payload"]["taint"]
