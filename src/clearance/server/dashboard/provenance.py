"""Where each argument value of a pending approval came from, for the approver to see.

An approver deciding on "pay 4,800 to acc-9921" needs to know whether ``acc-9921`` came from the
principal's instruction or from an invoice the agent read on the web. The gate keeps, per
session, the sources every value was seen in (``gate.taint.SessionTaint``); this module walks the
approval's displayed arguments and looks each leaf up there.

The displayed arguments are the masked copy: a removed or hashed value matches no source and is
shown as not seen, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from clearance.gate.taint import NAMESPACE, policy_label
from clearance.scan.provenance import UNTRUSTED_PREFIX, Provenance
from clearance.store.protocol import Store

_MAX_VALUES = 200


@dataclass(frozen=True, slots=True)
class ValueOrigin:
    """One argument value and the sources (policy labels) it was seen in."""

    path: str
    value: str
    sources: tuple[str, ...]

    @property
    def untrusted(self) -> bool:
        """True when any source is untrusted content (a web page, an email, another agent)."""
        return any(s.startswith(UNTRUSTED_PREFIX) for s in self.sources)


def _leaves(value: Any, path: str) -> Iterator[tuple[str, str | int | float]]:
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _leaves(value[key], f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        yield path, value


def value_origins(store: Store, session_id: str, args: dict[str, Any]) -> list[ValueOrigin]:
    """Each scalar argument (at most 200) with its sources; empty when nothing was recorded."""
    stored = store.kv_get(NAMESPACE, session_id)
    if stored is None:
        return []
    provenance = Provenance.from_dict(stored)
    origins = []
    for path, value in _leaves(args, "args"):
        sources = sorted({policy_label(s) for s in provenance.sources_of(value)})
        origins.append(ValueOrigin(path=path, value=str(value), sources=tuple(sources)))
        if len(origins) >= _MAX_VALUES:
            break
    return origins
