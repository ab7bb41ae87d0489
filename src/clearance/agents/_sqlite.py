"""SQLite persistence for the shared context (stdlib ``sqlite3``).

Append-only twice over: :class:`SqliteContextStore` only ever inserts, and triggers make the
database itself refuse ``UPDATE`` and ``DELETE`` on the entries table, so a bug or a second writer
elsewhere in the process cannot rewrite history either. This module may later move into
``clearance.store``; it is private until then.

Example::

    from clearance.agents._sqlite import SqliteContextStore
    from clearance.agents.registry import READ_ONLY

    store = SqliteContextStore(":memory:")
    assert store.append("research", READ_ONLY, "note").seq == 1
"""

from __future__ import annotations

import sqlite3

from clearance.agents.registry import TrustZone
from clearance.agents.shared_context import Entry
from clearance.errors import StoreUnavailableError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS shared_context_entries (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    author      TEXT    NOT NULL,
    zone_name   TEXT    NOT NULL,
    zone_level  INTEGER NOT NULL,
    text        TEXT    NOT NULL,
    supersedes  INTEGER REFERENCES shared_context_entries(seq),
    retracts    INTEGER REFERENCES shared_context_entries(seq)
);
CREATE TRIGGER IF NOT EXISTS shared_context_no_update
    BEFORE UPDATE ON shared_context_entries
    BEGIN SELECT RAISE(ABORT, 'shared context is append-only'); END;
CREATE TRIGGER IF NOT EXISTS shared_context_no_delete
    BEFORE DELETE ON shared_context_entries
    BEGIN SELECT RAISE(ABORT, 'shared context is append-only'); END;
"""

_COLUMNS = "seq, author, zone_name, zone_level, text, supersedes, retracts"


class SqliteContextStore:
    """A :class:`~clearance.agents.shared_context.ContextStore` in an SQLite database.

    Args:
        path: database file, or ``":memory:"``.
    """

    def __init__(self, path: str) -> None:
        try:
            self._db = sqlite3.connect(path, isolation_level=None)
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as error:
            raise StoreUnavailableError(
                f"cannot open the shared-context database: {error}"
            ) from error

    def append(
        self,
        author: str,
        zone: TrustZone,
        text: str,
        *,
        supersedes: int | None = None,
        retracts: int | None = None,
    ) -> Entry:
        """Insert one entry in its own transaction and return it with its ``seq``."""
        try:
            cursor = self._db.execute(
                "INSERT INTO shared_context_entries "
                "(author, zone_name, zone_level, text, supersedes, retracts) VALUES (?, ?, ?, ?, ?, ?)",
                (author, zone.name, zone.level, text, supersedes, retracts),
            )
        except sqlite3.Error as error:
            raise StoreUnavailableError(f"cannot append to the shared context: {error}") from error
        seq = cursor.lastrowid
        if seq is None:  # pragma: no cover - sqlite always sets it after an INSERT
            raise StoreUnavailableError("the shared-context insert returned no row id")
        return Entry(seq, author, zone, text, supersedes, retracts)

    def get(self, seq: int) -> Entry | None:
        """The entry with ``seq``, or ``None``."""
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM shared_context_entries WHERE seq = ?", (seq,)
        ).fetchone()
        return _entry(row) if row is not None else None

    def entries(self) -> list[Entry]:
        """Every entry, in ``seq`` order."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM shared_context_entries ORDER BY seq")
        return [_entry(row) for row in rows]

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


def _entry(row: tuple[int, str, str, int, str, int | None, int | None]) -> Entry:
    seq, author, zone_name, zone_level, text, supersedes, retracts = row
    return Entry(seq, author, TrustZone(zone_name, zone_level), text, supersedes, retracts)
