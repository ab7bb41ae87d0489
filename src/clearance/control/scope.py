"""What a stop applies to (one agent, one tool, one environment or everything) and how hard.

::

    >>> Scope.parse("agent:billing-bot")
    Scope(kind='agent', value='billing-bot')
    >>> Scope.everything().key
    'all'
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from clearance.errors import RequestError
from clearance.model.session import Environment

ScopeKind = Literal["agent", "tool", "environment", "all"]
_KINDS: tuple[ScopeKind, ...] = ("agent", "tool", "environment", "all")


class Level(StrEnum):
    """How a stop acts. A stronger level replaces a weaker one on the same scope, never the reverse."""

    DRAIN = "drain"
    BREAKER = "breaker"
    HALT = "halt"

    @property
    def strength(self) -> int:
        """1 for drain, 2 for a breaker trip, 3 for halt."""
        return _STRENGTH[self]


_STRENGTH = {Level.DRAIN: 1, Level.BREAKER: 2, Level.HALT: 3}


@dataclass(frozen=True, slots=True)
class Scope:
    """A scope of the kill switch; ``key`` is its stored form (``all``, ``agent:<id>`` ...)."""

    kind: ScopeKind
    value: str = ""

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise RequestError(
                f"unknown scope kind `{self.kind}`", hint="use agent, tool, environment or all"
            )
        if self.kind == "all" and self.value:
            raise RequestError("the scope `all` takes no value")
        if self.kind != "all" and not self.value:
            raise RequestError(f"the scope `{self.kind}` needs a name")
        if self.kind == "environment" and self.value not in {e.value for e in Environment}:
            raise RequestError(
                f"unknown environment `{self.value}`",
                hint=f"use one of {', '.join(e.value for e in Environment)}",
            )

    @property
    def key(self) -> str:
        """The stored form: ``all`` or ``<kind>:<value>``."""
        return "all" if self.kind == "all" else f"{self.kind}:{self.value}"

    def __str__(self) -> str:
        return self.key

    @classmethod
    def agent(cls, agent_id: str) -> Scope:
        """One agent."""
        return cls("agent", agent_id)

    @classmethod
    def tool(cls, name: str) -> Scope:
        """One tool (surface), for every agent."""
        return cls("tool", name)

    @classmethod
    def environment(cls, name: str) -> Scope:
        """Every session in one environment."""
        return cls("environment", name)

    @classmethod
    def everything(cls) -> Scope:
        """Every decision of the gate."""
        return cls("all")

    @classmethod
    def parse(cls, key: str) -> Scope:
        """The inverse of ``key``; raises ``RequestError`` for anything else."""
        if key == "all":
            return cls.everything()
        kind, sep, value = key.partition(":")
        if not sep or kind not in _KINDS:
            raise RequestError(
                f"`{key}` is not a scope",
                hint="write all, agent:<id>, tool:<name> or environment:<name>",
            )
        return cls(kind, value)
