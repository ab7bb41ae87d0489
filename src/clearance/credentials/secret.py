"""A secret value that does not print itself.

``repr``, ``str`` and f-strings show ``Secret(****)``; only ``reveal()`` returns the value, so a
credential that ends up in a log line, a traceback or an audit payload by accident shows nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret string; compare and hash by value, print as ``Secret(****)``."""

    _value: str = field(repr=False)

    def reveal(self) -> str:
        """The value, for the one place that hands it to the tool."""
        return self._value

    def __str__(self) -> str:
        return "Secret(****)"

    def __repr__(self) -> str:
        return "Secret(****)"

    def __format__(self, spec: str) -> str:
        return "Secret(****)"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("secrets are not serialisable")
