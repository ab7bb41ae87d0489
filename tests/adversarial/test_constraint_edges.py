"""Arguments just outside each FinanceApp constraint are refused with rule `constraint`.

The edges are derived from the compiled schema itself, so a bound added to the policy is attacked
without editing this file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from clearance.model import Outcome, Request, SessionFacts
from clearance.policy import evaluate, load_policy
from clearance.policy.document import Param

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "financeapp" / "policy.yaml"
COMPILED = load_policy(EXAMPLE).compiled

VALID: dict[str, dict[str, Any]] = {
    "read_account": {"account_id": "ACC-000001"},
    "transfer_funds": {"from_account": "ACC-000001", "to_account": "ACC-100001", "amount": 20},
    "send_email": {"recipient": "bob@financeapp.example", "subject": "hi", "body": "hello"},
    "fetch_url": {"url": "https://api.exchangerates.example/x"},
    "execute_sql": {"database": "reporting", "query": "select 1"},
    "delete_records": {"table": "payees", "ids": [1]},
}
TASK = {
    "read_account": "balance_check",
    "transfer_funds": "transfer",
    "send_email": "notify",
    "fetch_url": "report",
    "execute_sql": "maintenance",
    "delete_records": "maintenance",
}


def _edges(param: Param) -> list[tuple[str, Any]]:
    """Values just outside each bound of ``param``."""
    out: list[tuple[str, Any]] = []
    if param.min is not None:
        out.append(("min", math.nextafter(param.min, -math.inf)))
    if param.max is not None:
        out.append(("max", math.nextafter(param.max, math.inf)))
    if param.max_length is not None:
        out.append(("max_length", "a" * (param.max_length + 1)))
    if param.max_bytes is not None:
        out.append(("max_bytes", "é" * (param.max_bytes // 2 + 1)))
    if param.max_items is not None:
        out.append(("max_items", list(range(param.max_items + 1))))
    if param.enum is not None:
        out.append(("enum", f"{param.enum[0]}x"))
    if param.pattern is not None:
        out.append(("pattern-newline", "ACC-000001\n"))
        out.append(("pattern-prefix", "xACC-000001"))
    return out


CASES = [
    pytest.param(tool, name, value, id=f"{tool}.{name}.{bound}")
    for tool, compiled in COMPILED.tools.items()
    for name, param in compiled.spec.params.items()
    for bound, value in _edges(param)
]


def test_every_tool_has_a_valid_baseline() -> None:
    assert set(VALID) == set(COMPILED.tools)
    for tool, args in VALID.items():
        assert COMPILED.tools[tool].args.check(args) is None, tool


@pytest.mark.parametrize(("tool", "name", "value"), CASES)
def test_just_outside_is_refused(tool: str, name: str, value: Any) -> None:
    request = Request(agent_id="a", session_id="s", tool=tool, args={**VALID[tool], name: value})
    verdict = evaluate(COMPILED, request, SessionFacts(task=TASK[tool], environment="staging"))
    assert (verdict.outcome, verdict.rule) == (Outcome.DENY, "constraint")
    assert f"`{name}`" in verdict.reason


def test_edges_cover_every_bound_of_the_example() -> None:
    assert len(CASES) >= 15


@pytest.mark.parametrize("amount", [0.01, 1_000_000])
def test_the_bounds_themselves_are_inside(amount: float) -> None:
    args = {**VALID["transfer_funds"], "amount": amount}
    assert COMPILED.tools["transfer_funds"].args.check(args) is None
