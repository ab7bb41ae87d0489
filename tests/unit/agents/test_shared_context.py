from collections.abc import Iterator
from pathlib import Path

import pytest

from clearance.agents import (
    PRIVILEGED,
    READ_ONLY,
    WRITE_LIMITED,
    AgentDirectory,
    AgentRecord,
    ContextStore,
    InMemoryContextStore,
    SharedContext,
)
from clearance.agents._sqlite import SqliteContextStore
from clearance.errors import AuthorizationError, RequestError
from clearance.scan import Provenance


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ContextStore]:
    if request.param == "memory":
        yield InMemoryContextStore()
        return
    sqlite = SqliteContextStore(str(tmp_path / "ctx.db"))
    yield sqlite
    sqlite.close()


@pytest.fixture
def context(store: ContextStore) -> SharedContext:
    directory = AgentDirectory()
    directory.register(AgentRecord("research", READ_ONLY, frozenset()))
    directory.register(AgentRecord("analyst", READ_ONLY, frozenset()))
    directory.register(AgentRecord("drafter", WRITE_LIMITED, frozenset()))
    directory.register(AgentRecord("deploy", PRIVILEGED, frozenset()))
    return SharedContext(directory, store)


def test_entries_record_author_and_zone(context: SharedContext) -> None:
    entry = context.write("research", "finding one")
    assert (entry.seq, entry.author, entry.zone) == (1, "research", READ_ONLY)


def test_amend_and_retract_own_entries_keep_history(context: SharedContext) -> None:
    first = context.write("drafter", "v1")
    amended = context.amend("drafter", first.seq, "v2")
    assert amended.supersedes == first.seq
    assert [e.entry.text for e in context.read("deploy").entries] == ["v2"]
    context.retract("drafter", amended.seq)
    assert context.read("deploy").entries == ()
    assert [e.text for e in context.history()] == ["v1", "v2", ""]
    with pytest.raises(RequestError, match="already"):
        context.amend("drafter", first.seq, "v3")
    with pytest.raises(RequestError, match="does not exist"):
        context.amend("drafter", 99, "x")


def test_read_taints_by_zone(context: SharedContext) -> None:
    context.write("research", "peer note")
    context.write("deploy", "privileged note")
    context.write("analyst", "own note")
    reading = context.read("analyst")
    untrusted = {item.entry.author: item.untrusted for item in reading.entries}
    assert untrusted == {"research": True, "deploy": False, "analyst": False}
    assert reading.taint == {"untrusted:shared-context:research"}
    prov = Provenance()
    reading.record_into(prov)
    assert prov.only_untrusted("peer note")
    assert prov.is_trusted("privileged note")


def test_unregistered_agents_cannot_write_or_read(context: SharedContext) -> None:
    with pytest.raises(AuthorizationError):
        context.write("ghost", "x")
    with pytest.raises(AuthorizationError):
        context.read("ghost")


def test_entry_size_is_capped(context: SharedContext) -> None:
    with pytest.raises(RequestError, match="at most"):
        context.write("research", "x" * 100_001)
