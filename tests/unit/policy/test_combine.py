"""DENY beats APPROVAL beats PERMIT; the default applies only when nothing matched."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from clearance.model import Outcome
from clearance.policy.combine import combine, deciding

P, A, D = Outcome.PERMIT, Outcome.APPROVAL, Outcome.DENY


@dataclass(frozen=True)
class M:
    name: str
    outcome: Outcome


@pytest.mark.parametrize(
    ("outcomes", "default", "want"),
    [
        ([], D, D),
        ([], A, A),
        ([P], D, P),
        ([P, A], D, A),
        ([A, P, D, P], A, D),
        ([P, P], A, P),
    ],
)
def test_combine(outcomes: list[Outcome], default: Outcome, want: Outcome) -> None:
    assert combine(outcomes, default=default) is want


def test_default_may_not_be_permit() -> None:
    with pytest.raises(ValueError, match="DENY or APPROVAL"):
        combine([], default=P)


def test_first_of_the_winning_outcome_decides() -> None:
    matches = [M("p", P), M("a1", A), M("a2", A), M("p2", P)]
    assert deciding(matches) == M("a1", A)
    assert deciding([]) is None
