"""Sessions: the trusted context a call is decided in."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field

from clearance.model._base import Value


class Environment(StrEnum):
    """Where the agent's actions land."""

    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


class Session(Value):
    """A session opened by a trusted party (orchestrator or operator), never by the agent.

    ``task``, ``environment``, ``principal``, ``instruction`` and ``delegation`` grant authority and
    are fixed at open time; taint and counters are accumulated by the gate and kept in the store.
    """

    session_id: str
    agent_id: str
    task: str
    environment: Environment
    principal: str | None = None
    instruction: str | None = None
    delegation: tuple[str, ...] = ()
    opened_at: str
    closed: bool = False
    attended: bool = True
    labels: dict[str, str] = Field(default_factory=dict)


class SessionFacts(Value):
    """What policy conditions may read about the session at decision time (the ``session`` variable)."""

    task: str
    environment: Environment
    principal: str | None = None
    instruction: str | None = None
    delegation: tuple[str, ...] = ()
    taint: tuple[str, ...] = ()
    calls: dict[str, int] = Field(default_factory=dict)
    attended: bool = True
    extra: dict[str, Any] = Field(default_factory=dict)

    def to_cel(self) -> dict[str, Any]:
        """The ``session`` variable as CEL sees it."""
        return {
            "task": self.task,
            "environment": self.environment.value,
            "principal": self.principal or "",
            "instruction": self.instruction or "",
            "delegation": list(self.delegation),
            "tainted": bool(self.taint),
            "taint": list(self.taint),
            "calls": dict(self.calls),
            "attended": self.attended,
            **self.extra,
        }
