import pytest

from clearance.agents import (
    PRIVILEGED,
    READ_ONLY,
    WRITE_LIMITED,
    AgentDirectory,
    AgentRecord,
    DelegationChain,
    effective_grants,
)
from clearance.errors import AuthorizationError, ConfigError


@pytest.fixture
def directory() -> AgentDirectory:
    d = AgentDirectory()
    d.register(AgentRecord("research", READ_ONLY, frozenset({"fetch_url", "search"})))
    d.register(AgentRecord("drafter", WRITE_LIMITED, frozenset({"fetch_url", "draft"})))
    d.register(AgentRecord("deploy", PRIVILEGED, frozenset({"*"})))
    return d


def test_effective_grants_intersects_and_treats_star_as_everything() -> None:
    assert effective_grants([frozenset({"a", "b"}), frozenset({"b", "c"})]) == {"b"}
    assert effective_grants([frozenset({"*"}), frozenset({"a"})]) == {"a"}
    assert effective_grants([frozenset({"*"})]) == {"*"}
    assert effective_grants([]) == frozenset()


def test_chain_facts(directory: AgentDirectory) -> None:
    chain = DelegationChain.resolve(directory, ["research", "deploy"])
    assert chain.origin.agent_id == "research"
    assert chain.actor.agent_id == "deploy"
    assert chain.delegated
    assert chain.zone == READ_ONLY
    assert chain.allows("fetch_url")
    assert not chain.allows("deploy")
    assert chain.facts() == {
        "delegation": ["research", "deploy"],
        "delegated": True,
        "origin": "research",
        "chain_zone": "read-only",
        "chain_zone_level": 1,
        "effective_grants": ["fetch_url", "search"],
    }


def test_single_agent_chain_is_not_delegated(directory: AgentDirectory) -> None:
    chain = DelegationChain.resolve(directory, ["deploy"])
    assert not chain.delegated
    assert chain.allows("anything")


def test_registry_rules(directory: AgentDirectory) -> None:
    with pytest.raises(AuthorizationError, match="not registered"):
        directory.get("ghost")
    with pytest.raises(ConfigError, match="already registered"):
        directory.register(AgentRecord("deploy", READ_ONLY, frozenset()))
    with pytest.raises(ConfigError, match="not valid"):
        AgentRecord("bad id", READ_ONLY, frozenset())
    with pytest.raises(ConfigError, match="at least"):
        DelegationChain(())
    assert "deploy" in directory
    assert "ghost" not in directory
