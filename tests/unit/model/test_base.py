"""``Value.model_construct``: the fast path must build exactly what pydantic's own path builds."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from clearance.model import Outcome, SessionFacts
from clearance.model._base import Value
from clearance.model.decision import Decision, Verdict
from clearance.model.session import Environment, Session


def _reference(cls: type[BaseModel], **values: Any) -> BaseModel:
    return BaseModel.model_construct.__func__(cls, **values)  # type: ignore[attr-defined, no-any-return]


CASES: list[tuple[type[Value], dict[str, Any]]] = [
    (SessionFacts, {"task": "t", "environment": Environment.STAGING}),
    (
        SessionFacts,
        {"task": "t", "environment": Environment.PRODUCTION, "calls": {"a": 2}, "taint": ("x",)},
    ),
    (Verdict, {"outcome": Outcome.DENY, "rule": "r", "reason": "why"}),
    (
        Decision,
        {
            "decision_id": "d",
            "outcome": Outcome.PERMIT,
            "rule": "r",
            "reason": "",
            "policy": "sha256:00",
            "request_digest": "sha256:11",
            "time": "2026-01-01T00:00:00Z",
        },
    ),
    (
        Session,
        {
            "session_id": "s",
            "agent_id": "a",
            "task": "t",
            "environment": Environment.STAGING,
            "opened_at": "2026-01-01T00:00:00Z",
        },
    ),
]


@pytest.mark.parametrize(("cls", "values"), CASES)
def test_same_model_as_pydantic(cls: type[Value], values: dict[str, Any]) -> None:
    fast = cls.model_construct(**values)
    slow = _reference(cls, **values)
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert list(fast.__dict__) == list(slow.__dict__)
    assert fast.model_dump(mode="json") == slow.model_dump(mode="json")
    assert fast.model_dump(exclude_unset=True) == slow.model_dump(exclude_unset=True)


def test_unknown_names_are_ignored_like_pydantic() -> None:
    given: dict[str, Any] = {"outcome": Outcome.PERMIT, "rule": "r", "reason": "", "bogus": 1}
    fast = Verdict.model_construct(**given)
    assert "bogus" not in fast.__dict__
    assert fast.model_fields_set == {"outcome", "rule", "reason"}


def test_mutable_defaults_are_never_shared() -> None:
    one = SessionFacts.model_construct(task="t", environment=Environment.STAGING)
    two = SessionFacts.model_construct(task="t", environment=Environment.STAGING)
    assert one.calls == {}
    assert one.calls is not two.calls
    assert one.extra is not two.extra


class _WithListDefault(Value):
    items: list[int] = [1, 2]  # noqa: RUF012 - the mutable default is the point of the test


class _WithAlias(Value):
    name: str = Field(alias="Name")


def test_mutable_plain_default_is_copied() -> None:
    one = _WithListDefault.model_construct()
    two = _WithListDefault.model_construct()
    assert one.items == [1, 2]
    assert one.items is not two.items


def test_aliased_models_take_pydantics_path() -> None:
    given: dict[str, Any] = {"Name": "x"}
    built = _WithAlias.model_construct(**given)
    assert built.name == "x"


def test_explicit_fields_set_is_kept() -> None:
    built = Verdict.model_construct({"rule"}, outcome=Outcome.PERMIT, rule="r", reason="")
    assert built.model_fields_set == {"rule"}


def test_constructed_values_stay_frozen() -> None:
    built = Verdict.model_construct(outcome=Outcome.PERMIT, rule="r", reason="")
    with pytest.raises(ValueError, match="frozen"):
        built.rule = "other"  # type: ignore[misc]
