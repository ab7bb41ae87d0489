"""Agents known to the orchestrator: their trust zone and tool grants.

Only the trusted party that sets up a deployment (the orchestrator or an operator) registers agents;
an agent can never register itself, change its zone or add grants, because nothing in this package
takes those values from an agent's message. Every other part of ``clearance.agents`` looks agents up
here, so an identity that was not registered has no authority at all.

Example::

    from clearance.agents.registry import READ_ONLY, AgentDirectory, AgentRecord

    directory = AgentDirectory()
    directory.register(AgentRecord("research", READ_ONLY, frozenset({"fetch_url", "search"})))
    assert directory.get("research").zone is READ_ONLY
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clearance.errors import AuthorizationError, ConfigError

ALL_TOOLS = "*"
"""A grant that stands for every tool (a privileged agent); intersections treat it as the universe."""

_AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")


@dataclass(frozen=True, slots=True)
class TrustZone:
    """A named trust level; a higher ``level`` is more trusted.

    Zones are compared by level only, so a deployment may define its own beside the four shipped
    ones (for example ``TrustZone("partner", 1)``).
    """

    name: str
    level: int

    def __post_init__(self) -> None:
        if not self.name or self.level < 0:
            raise ConfigError(f"a trust zone needs a name and a level >= 0, got {self!r}")

    def trusts_less_than(self, other: TrustZone) -> bool:
        """True when this zone is strictly less trusted than ``other``."""
        return self.level < other.level


UNTRUSTED = TrustZone("untrusted", 0)
READ_ONLY = TrustZone("read-only", 1)
WRITE_LIMITED = TrustZone("write-limited", 2)
PRIVILEGED = TrustZone("privileged", 3)


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """One registered agent.

    Attributes:
        agent_id: stable identity, ``[A-Za-z0-9][A-Za-z0-9._:@-]*``, at most 128 characters.
        zone: the agent's trust zone.
        grants: tool names the agent may call; ``"*"`` grants every tool.
    """

    agent_id: str
    zone: TrustZone
    grants: frozenset[str]

    def __post_init__(self) -> None:
        if not _AGENT_ID.fullmatch(self.agent_id):
            raise ConfigError(f"agent id {self.agent_id!r} is not valid")
        if not isinstance(self.grants, frozenset):
            raise ConfigError("agent grants must be a frozenset of tool names")


class AgentDirectory:
    """The registered agents; lookups of unknown agents raise ``AuthorizationError``."""

    def __init__(self) -> None:
        self._agents: dict[str, AgentRecord] = {}

    def register(self, record: AgentRecord) -> None:
        """Add ``record``; registering an id twice is a configuration error (no silent re-zoning)."""
        if record.agent_id in self._agents:
            raise ConfigError(f"agent {record.agent_id!r} is already registered")
        self._agents[record.agent_id] = record

    def get(self, agent_id: str) -> AgentRecord:
        """The record of ``agent_id``.

        Raises:
            AuthorizationError: no agent with that id is registered.
        """
        record = self._agents.get(agent_id)
        if record is None:
            raise AuthorizationError(f"agent {agent_id!r} is not registered")
        return record

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._agents
