"""How the outcomes of matching rules combine: DENY beats APPROVAL beats PERMIT.

Among matches of the winning outcome the first in policy order decides (it names the rule in the
verdict). No match means the policy default, which the schema limits to DENY or APPROVAL: a policy
can never permit by saying nothing. Pure: no I/O, no clock.

::

    >>> from clearance.model import Outcome
    >>> combine([Outcome.PERMIT, Outcome.DENY], default=Outcome.DENY)
    <Outcome.DENY: 'DENY'>
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from clearance.model import Outcome

PRECEDENCE: dict[Outcome, int] = {Outcome.PERMIT: 0, Outcome.APPROVAL: 1, Outcome.DENY: 2}


class HasOutcome(Protocol):
    """Anything that matched and proposes an outcome (a compiled rule, a synthetic rule)."""

    @property
    def outcome(self) -> Outcome:
        """The outcome this match proposes."""
        ...


M = TypeVar("M", bound=HasOutcome)


def deciding(matches: Sequence[M]) -> M | None:
    """The match that decides: highest precedence, earliest among equals; None when none match."""
    best: M | None = None
    best_rank = -1
    for match in matches:
        rank = PRECEDENCE[match.outcome]
        if rank > best_rank:
            best, best_rank = match, rank
    return best


def combine(outcomes: Iterable[Outcome], *, default: Outcome) -> Outcome:
    """The combined outcome of matching rules' outcomes, or ``default`` when there are none."""
    if default not in (Outcome.DENY, Outcome.APPROVAL):
        raise ValueError(f"a policy default must be DENY or APPROVAL, not `{default.value}`")
    best: Outcome | None = None
    for outcome in outcomes:
        if best is None or PRECEDENCE[outcome] > PRECEDENCE[best]:
            best = outcome
    return default if best is None else best
