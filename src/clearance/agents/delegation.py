"""No privilege escalation through delegation.

When agent B acts on a request that started with agent A (A asked B, B asked C, ...), B must not do
for A what A could not do itself. The effective grants of a delegation chain are therefore the
**intersection** of the grants of every agent along it, and the chain's zone is its **least**
trusted member's. Both are pure functions of the chain, so the gate can recompute them for every
decision from the session (where the trusted opener put the chain), never from what an agent says.

Example::

    from clearance.agents.delegation import effective_grants

    assert effective_grants([frozenset({"read", "deploy"}), frozenset({"read"})]) == {"read"}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from clearance.agents.registry import ALL_TOOLS, AgentDirectory, AgentRecord, TrustZone
from clearance.errors import ConfigError


def effective_grants(grant_sets: Iterable[frozenset[str]]) -> frozenset[str]:
    """Intersection of ``grant_sets``, where a set containing ``"*"`` stands for every tool.

    The result is never larger than any member (property-tested); an empty chain grants nothing,
    and a chain of only ``"*"`` members grants ``{"*"}``.
    """
    result: frozenset[str] | None = None
    seen_any = False
    for grants in grant_sets:
        seen_any = True
        if ALL_TOOLS in grants:
            continue
        result = grants if result is None else result & grants
    if result is None:
        return frozenset({ALL_TOOLS}) if seen_any else frozenset()
    return result


def grants_allow(grants: frozenset[str], tool: str) -> bool:
    """True when ``grants`` (as returned by :func:`effective_grants`) includes ``tool``."""
    return ALL_TOOLS in grants or tool in grants


@dataclass(frozen=True, slots=True)
class DelegationChain:
    """The agents a request passed through, origin first and the acting agent last."""

    agents: tuple[AgentRecord, ...]

    def __post_init__(self) -> None:
        if not self.agents:
            raise ConfigError("a delegation chain needs at least the acting agent")

    @classmethod
    def resolve(cls, directory: AgentDirectory, agent_ids: Sequence[str]) -> DelegationChain:
        """Look every id up in ``directory``; an unregistered id raises ``AuthorizationError``."""
        return cls(tuple(directory.get(agent_id) for agent_id in agent_ids))

    @property
    def origin(self) -> AgentRecord:
        """The agent the request started with."""
        return self.agents[0]

    @property
    def actor(self) -> AgentRecord:
        """The agent that makes the call."""
        return self.agents[-1]

    @property
    def delegated(self) -> bool:
        """True when more than one agent is involved: policy's default asks approval for privileged tools."""
        return len(self.agents) > 1

    @property
    def grants(self) -> frozenset[str]:
        """Effective grants: the intersection of every member's grants."""
        return effective_grants(agent.grants for agent in self.agents)

    @property
    def zone(self) -> TrustZone:
        """The least trusted zone along the chain."""
        return min((agent.zone for agent in self.agents), key=lambda zone: zone.level)

    def allows(self, tool: str) -> bool:
        """True when every agent along the chain is granted ``tool``."""
        return grants_allow(self.grants, tool)

    def facts(self) -> dict[str, Any]:
        """What policy conditions read about the chain (merged into the ``session`` variable)."""
        return {
            "delegation": [agent.agent_id for agent in self.agents],
            "delegated": self.delegated,
            "origin": self.origin.agent_id,
            "chain_zone": self.zone.name,
            "chain_zone_level": self.zone.level,
            "effective_grants": sorted(self.grants),
        }
