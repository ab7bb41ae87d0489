"""Which cases change their decision between two policy versions (``clearance policy diff``).

Expectations in the case file are ignored here: the question is not "is the new policy right" but
"what would change if it were activated", which is what a reviewer needs next to the text diff.
"""

from __future__ import annotations

from dataclasses import dataclass

from clearance.model import Verdict
from clearance.policy.bundle import Bundle
from clearance.policy.cases import LoadedCases, decide_case


@dataclass(frozen=True)
class CaseChange:
    """One case whose outcome or deciding rule differs between the old and the new policy."""

    name: str
    location: str
    old: Verdict
    new: Verdict


def diff_cases(old: Bundle, new: Bundle, cases: LoadedCases) -> list[CaseChange]:
    """Every case whose outcome or rule differs, in file order."""
    changes = []
    for index, case in enumerate(cases.file.cases):
        before = decide_case(old, cases, case)
        after = decide_case(new, cases, case)
        if (before.outcome, before.rule) != (after.outcome, after.rule):
            changes.append(CaseChange(case.name, cases.location(index), before, after))
    return changes
