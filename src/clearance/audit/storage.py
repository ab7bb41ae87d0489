"""What the audit appender, pruner and exporter need from a database, as a ``Protocol``.

``clearance.store.audit_sqlite.SQLiteAuditStorage`` implements it; a PostgreSQL implementation can
follow without touching the appender. Rows cross the boundary as plain tuples (the named tuples
below are tuples too), so a backend needs nothing from this module: the store layer sits below
audit and must not import it. The appender names what it reads back with ``StoredEntry._make``
and friends.

Guarantees every implementation must give:

* ``commit_batch`` is one atomic, durable transaction: entries, payloads, the shard head and an
  optional checkpoint are all stored, or none is; it returns only after the commit is durable
  (SQLite: WAL with ``synchronous=FULL``). The head update is a compare-and-swap on
  ``(size, epoch)``; a mismatch raises ``ConflictError`` (another writer: stop appending).
* Any driver failure is raised as a ``clearance.errors.StoreError`` subclass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol


class ShardHead(NamedTuple):
    """The persisted head of a shard: size, last leaf hash, compact range bytes and fencing epoch."""

    size: int
    head: bytes | None
    compact: bytes
    epoch: int


class EntryRow(NamedTuple):
    """One leaf: index, leaf hash, canonical header bytes and the payload's retention date."""

    idx: int
    leaf_hash: bytes
    header: bytes
    retain_until: str | None


class PayloadRow(NamedTuple):
    """A masked payload: index, 32-byte salt, JCS body and encryption marker."""

    idx: int
    salt: bytes
    body: bytes
    enc: str


class CheckpointRow(NamedTuple):
    """A signed checkpoint note for one tree size."""

    size: int
    root: bytes
    note: bytes
    created_at: str


class StoredEntry(NamedTuple):
    """An entry as read back: header (``None`` once hash-only pruned) and payload if present."""

    idx: int
    leaf_hash: bytes
    header: bytes | None
    salt: bytes | None
    body: bytes | None


class HoldRow(NamedTuple):
    """A legal hold over the inclusive index range ``[start, end]``."""

    hold_id: str
    start: int
    end: int
    created_at: str


class AuditStorage(Protocol):
    """Persistence of audit shards (see the module docstring for the guarantees)."""

    def open_shard(
        self, origin: str, *, replica: str, period: str, vkey: str, created_at: str
    ) -> tuple[int, bytes | None, bytes, int]:
        """Create the shard row if missing, bump its epoch, and return its head (``ShardHead``)."""
        ...

    def commit_batch(
        self,
        origin: str,
        *,
        old_size: int,
        epoch: int,
        head: tuple[int, bytes | None, bytes, int],
        entries: Sequence[tuple[int, bytes, bytes, str | None]],
        payloads: Sequence[tuple[int, bytes, bytes, str]],
        checkpoint: tuple[int, bytes, bytes, str] | None,
    ) -> None:
        """Durably store a batch and move the head from ``old_size`` to ``head.size``."""
        ...

    def leaf_hashes(self, origin: str, start: int, end: int) -> list[bytes]:
        """Leaf hashes of entries ``[start, end)`` in index order."""
        ...

    def entries(
        self, origin: str, start: int, end: int
    ) -> list[tuple[int, bytes, bytes | None, bytes | None, bytes | None]]:
        """Entries ``[start, end)`` with their payloads (``StoredEntry``), in index order."""
        ...

    def latest_checkpoint(self, origin: str) -> tuple[int, bytes, bytes, str] | None:
        """The checkpoint with the largest size (``CheckpointRow``), if any."""
        ...

    def expired_payloads(self, origin: str, before: str) -> list[int]:
        """Indexes whose payload is still stored and whose ``retain_until`` is before ``before``."""
        ...

    def delete_payloads(self, origin: str, indexes: Sequence[int]) -> int:
        """Delete payload rows (body and salt); return how many were deleted."""
        ...

    def holds(self, origin: str) -> list[tuple[str, int, int, str]]:
        """Active legal holds (``HoldRow``)."""
        ...

    def add_hold(self, origin: str, hold: tuple[str, int, int, str]) -> None:
        """Record a legal hold."""
        ...

    def remove_hold(self, origin: str, hold_id: str) -> bool:
        """Release a hold; ``False`` if it did not exist."""
        ...

    def size(self, origin: str) -> int:
        """Committed entries of the shard (0 when it does not exist)."""
        ...

    def origins(self) -> list[str]:
        """Every shard origin in the store."""
        ...
