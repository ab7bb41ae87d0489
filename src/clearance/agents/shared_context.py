"""A shared scratchpad that is append-only per author.

Agents in one deployment share notes (research findings, drafts, decisions). A compromised agent
must not be able to rewrite what others wrote, and an agent reading the notes must know who wrote
each one, so content from less trusted agents taints its session like any other untrusted input.

Rules :class:`SharedContext` enforces:

* every entry records its author and the author's zone **from the directory**, not from the caller;
* storage is append-only: an author may *amend* or *retract* only its own entries, and both are new
  entries pointing at the old one, so history is never lost; touching another author's entry
  raises :class:`~clearance.errors.AuthorizationError`;
* :meth:`SharedContext.read` returns each current entry with its provenance; entries written by
  *another* agent whose zone is not more trusted than the reader's are untrusted for the reader
  (peers count as untrusted: the compromised agent may well be a peer), and the reading names the
  taint sources ``untrusted:shared-context:<author>`` the gate must add to the reader's session.

Storage sits behind :class:`ContextStore`; :class:`InMemoryContextStore` is here and an SQLite one
in ``clearance.agents._sqlite``. Agent ids passed to these methods must come from the caller's
authenticated identity.

Example::

    from clearance.agents.registry import READ_ONLY, WRITE_LIMITED, AgentDirectory, AgentRecord
    from clearance.agents.shared_context import InMemoryContextStore, SharedContext

    directory = AgentDirectory()
    directory.register(AgentRecord("research", READ_ONLY, frozenset()))
    directory.register(AgentRecord("drafter", WRITE_LIMITED, frozenset({"draft"})))
    context = SharedContext(directory, InMemoryContextStore())
    context.write("research", "Vendor X raised prices by 4%.")
    reading = context.read("drafter")
    assert reading.taint == frozenset({"untrusted:shared-context:research"})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from clearance.agents.registry import AgentDirectory, AgentRecord, TrustZone
from clearance.errors import AuthorizationError, RequestError
from clearance.scan.provenance import TRUSTED_TOOL_PREFIX, UNTRUSTED_PREFIX, Provenance

MAX_ENTRY_CHARS = 100_000
"""Longest entry accepted; a scratchpad is not a file store."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored entry.

    Attributes:
        seq: position in the scratchpad, 1, 2, ... assigned by the store.
        author: the writing agent's id.
        zone: the author's zone when it wrote the entry.
        text: the content ("" for a retraction).
        supersedes: for an amendment, the ``seq`` of the own entry it replaces.
        retracts: for a retraction, the ``seq`` of the own entry it withdraws.
    """

    seq: int
    author: str
    zone: TrustZone
    text: str
    supersedes: int | None = None
    retracts: int | None = None


class ContextStore(Protocol):
    """Append-only persistence of entries. Implementations never update or delete a row."""

    def append(
        self,
        author: str,
        zone: TrustZone,
        text: str,
        *,
        supersedes: int | None = None,
        retracts: int | None = None,
    ) -> Entry:
        """Store a new entry and return it with its assigned ``seq``."""
        ...

    def get(self, seq: int) -> Entry | None:
        """The entry with ``seq``, or ``None``."""
        ...

    def entries(self) -> list[Entry]:
        """Every entry, in ``seq`` order."""
        ...


class InMemoryContextStore:
    """A :class:`ContextStore` in a list; for tests and single-process demos."""

    def __init__(self) -> None:
        self._entries: list[Entry] = []

    def append(
        self,
        author: str,
        zone: TrustZone,
        text: str,
        *,
        supersedes: int | None = None,
        retracts: int | None = None,
    ) -> Entry:
        """Store a new entry; ``seq`` is one more than the last."""
        entry = Entry(len(self._entries) + 1, author, zone, text, supersedes, retracts)
        self._entries.append(entry)
        return entry

    def get(self, seq: int) -> Entry | None:
        """The entry with ``seq``, or ``None``."""
        return self._entries[seq - 1] if 1 <= seq <= len(self._entries) else None

    def entries(self) -> list[Entry]:
        """A copy of every entry, in ``seq`` order."""
        return list(self._entries)


def context_source(author: str) -> str:
    """The provenance and taint source of shared-context content written by ``author``."""
    return f"{UNTRUSTED_PREFIX}shared-context:{author}"


@dataclass(frozen=True, slots=True)
class ReadEntry:
    """A current entry as one reader sees it.

    Attributes:
        entry: the stored entry.
        untrusted: the reader must treat its content as untrusted input.
    """

    entry: Entry
    untrusted: bool

    @property
    def source(self) -> str:
        """Provenance source for the reader.

        ``untrusted:shared-context:<author>`` when untrusted; content from a more trusted author (or
        the reader's own) counts as trusted tool output, ``trusted-tool:shared-context:<author>``.
        """
        if self.untrusted:
            return context_source(self.entry.author)
        return f"{TRUSTED_TOOL_PREFIX}shared-context:{self.entry.author}"


@dataclass(frozen=True, slots=True)
class Reading:
    """The result of one read: the current entries and the taint they bring."""

    reader: str
    entries: tuple[ReadEntry, ...]

    @property
    def taint(self) -> frozenset[str]:
        """Sources to add to the reader's session taint."""
        return frozenset(item.source for item in self.entries if item.untrusted)

    def record_into(self, provenance: Provenance) -> None:
        """Record every entry's values in the reader's provenance under the entry's source."""
        for item in self.entries:
            provenance.record(item.source, item.entry.text)


class SharedContext:
    """The per-author append-only scratchpad; see the module docstring for the rules."""

    def __init__(self, directory: AgentDirectory, store: ContextStore) -> None:
        self._directory = directory
        self._store = store

    def write(self, author: str, text: str) -> Entry:
        """Append a new entry by ``author``.

        Raises:
            AuthorizationError: ``author`` is not registered.
            RequestError: ``text`` is longer than :data:`MAX_ENTRY_CHARS`.
        """
        record = self._directory.get(author)
        return self._store.append(record.agent_id, record.zone, _checked(text))

    def amend(self, author: str, seq: int, text: str) -> Entry:
        """Replace ``author``'s own entry ``seq`` with ``text`` (a new entry; the old one is kept).

        Raises:
            AuthorizationError: ``author`` is not registered or did not write entry ``seq``.
            RequestError: entry ``seq`` does not exist or is not current, or ``text`` is too long.
        """
        record = self._own_current(author, seq)
        return self._store.append(record.agent_id, record.zone, _checked(text), supersedes=seq)

    def retract(self, author: str, seq: int) -> Entry:
        """Withdraw ``author``'s own entry ``seq`` (a tombstone entry; the old one is kept).

        Raises:
            AuthorizationError: ``author`` is not registered or did not write entry ``seq``.
            RequestError: entry ``seq`` does not exist or is not current.
        """
        record = self._own_current(author, seq)
        return self._store.append(record.agent_id, record.zone, "", retracts=seq)

    def history(self) -> list[Entry]:
        """Every entry ever written, amendments and retractions included, in order."""
        return self._store.entries()

    def read(self, reader: str) -> Reading:
        """The current entries with their provenance for ``reader``.

        Raises:
            AuthorizationError: ``reader`` is not registered.
        """
        record = self._directory.get(reader)
        entries = self._store.entries()
        replaced = {e.supersedes for e in entries if e.supersedes is not None}
        replaced |= {e.retracts for e in entries if e.retracts is not None}
        current = [e for e in entries if e.seq not in replaced and e.retracts is None]
        return Reading(
            reader=reader,
            entries=tuple(ReadEntry(e, _untrusted_for(record, e)) for e in current),
        )

    def _own_current(self, author: str, seq: int) -> AgentRecord:
        record = self._directory.get(author)
        target = self._store.get(seq)
        if target is None or target.retracts is not None:
            raise RequestError(f"shared-context entry {seq} does not exist")
        if target.author != record.agent_id:
            raise AuthorizationError(
                f"agent {author!r} cannot change entry {seq}, which {target.author!r} wrote",
                hint="shared context is append-only per author; write a new entry instead",
            )
        if any(e.supersedes == seq or e.retracts == seq for e in self._store.entries()):
            raise RequestError(f"shared-context entry {seq} was already amended or retracted")
        return record


def _untrusted_for(reader: AgentRecord, entry: Entry) -> bool:
    return entry.author != reader.agent_id and not reader.zone.trusts_less_than(entry.zone)


def _checked(text: str) -> str:
    if len(text) > MAX_ENTRY_CHARS:
        raise RequestError(f"a shared-context entry may hold at most {MAX_ENTRY_CHARS} characters")
    return text
