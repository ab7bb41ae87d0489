"""Fixtures for the policy tests: the FinanceApp bundle and a one-call decide helper."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from clearance.model import Request, SessionFacts, Verdict
from clearance.policy import Bundle, evaluate, load_policy

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "financeapp" / "policy.yaml"

Decide = Callable[..., Verdict]


@pytest.fixture(scope="session")
def finance() -> Bundle:
    return load_policy(EXAMPLE)


def make_decide(bundle: Bundle) -> Decide:
    def decide(tool: str, args: dict[str, Any] | None = None, **session: Any) -> Verdict:
        provenance = session.pop("provenance", None)
        scan = session.pop("scan", None)
        facts = SessionFacts(**{"task": "transfer", "environment": "staging", **session})
        request = Request(agent_id="agent-1", session_id="ses-1", tool=tool, args=args or {})
        return evaluate(bundle.compiled, request, facts, provenance=provenance, scan=scan)

    return decide


@pytest.fixture(scope="session")
def decide(finance: Bundle) -> Decide:
    return make_decide(finance)


MINIMAL = """\
version: "1"
name: minimal
tools:
  read_account:
    tier: read-only
    params:
      account_id: {type: string, required: true}
  transfer_funds:
    tier: write-broad
    params:
      amount: {type: number, required: true}
      to_account: {type: string, required: true}
tasks:
  transfer: {tools: [read_account, transfer_funds]}
environments:
  staging: {}
  production: {}
"""


@pytest.fixture
def policy_with() -> Callable[[str], Bundle]:
    """Load MINIMAL plus extra YAML (top-level sections appended as text)."""

    def build(extra: str = "") -> Bundle:
        return load_policy(MINIMAL + extra, source_name="test.yaml")

    return build


@pytest.fixture
def decider() -> Callable[[Bundle], Decide]:
    """``decider(bundle)`` gives a decide helper for any bundle."""
    return make_decide
