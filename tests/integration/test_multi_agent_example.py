"""The shipped multi-agent example: the compromised research agent's pivots to deploy are stopped
(never PERMIT) and every attempt, and the message it sent, is in the signed audit log."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from tests import examples_kit


def load_example() -> ModuleType:
    return examples_kit.load_example("multi_agent")


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
