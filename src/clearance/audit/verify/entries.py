"""The checks of one stored entry that need nothing but its own row.

Replaying a shard splits into what each entry proves about itself (its leaf hash, canonical header,
position, payload commitment) and what only the sequence proves (dense indexes, the ``prev``
chain, tree roots at checkpoints, pruning). The first part is here, as a pure function of a row,
so a range can be replayed in this process or in a worker process without a second definition of
any check; ``ranges.py`` and ``shard.py`` do the second part, in order.
"""

from __future__ import annotations

import hashlib
from typing import Any

from clearance.formats.canonical import DIGEST_PREFIX
from clearance.formats.entry import EntryError, parse_header, payload_commitment

#: A stored row: index, leaf hash, header, payload salt, payload body (as the database returned
#: them: an attacker may have written TEXT or numbers where BLOBs belong).
Row = tuple[int, Any, Any, Any, Any]

#: What a row proves on its own, in the order the replay consumes it:
#: ``(leaf, prev, fatal, notes, header, payload_absent)``.
#:
#: * ``leaf``: the leaf hash (recomputed from the header; the stored one for a hash-only entry).
#: * ``prev``: the header's ``prev``, or ``HASH_ONLY`` when the header was pruned.
#: * ``fatal``: a finding that stops the replay (the entry cannot be trusted as a link), or None.
#: * ``notes``: findings that do not stop it (a payload that does not match its commitment).
#: * ``header``: the parsed header when the shard-level checks need it (prune, erasure and anchor
#:   entries, absent payloads), else None.
#: * ``payload_absent``: the header commits to a payload that is not stored.
Checked = tuple[bytes, Any, str | None, tuple[str, ...], dict[str, Any] | None, bool]

HASH_ONLY: Any = object()
#: Kinds whose content the shard-level checks read.
SHARD_KINDS = frozenset({"prune", "erasure", "anchor"})

_sha256 = hashlib.sha256


def as_bytes(value: object) -> bytes | None:
    """Column value as bytes: an attacker may have written TEXT or numbers where BLOBs belong."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return str(value).encode()


def check_row(origin: str, row: Row) -> Checked:
    """Everything ``row`` of shard ``origin`` proves about itself; see ``Checked``."""
    idx, stored_leaf, header, salt, body = row
    stored_leaf = as_bytes(stored_leaf) or b""
    if header is None:
        return (stored_leaf, HASH_ONLY, None, (), None, False)
    raw = header if type(header) is bytes else as_bytes(header) or b""
    leaf = _sha256(b"\x00" + raw).digest()
    if leaf != stored_leaf:
        return _fatal(
            leaf, "stored leaf hash does not match the header: the header or its hash was altered"
        )
    try:
        h = parse_header(raw)
    except EntryError as exc:
        return _fatal(leaf, f"header is not a valid canonical v1 entry: {exc}")
    if h["log"] != origin or h["index"] != idx:
        return _fatal(
            leaf,
            f"header names log `{h['log']}` index {h['index']}: entries were reordered or moved "
            "between logs",
        )
    ref = h.get("payload")
    notes: tuple[str, ...] = ()
    absent = False
    if ref is None:
        if body is not None:
            notes = ("a payload is stored for an entry that commits to none",)
    elif body is None or salt is None:
        absent = True
    else:
        data = body if type(body) is bytes else as_bytes(body) or b""
        key = salt if type(salt) is bytes else as_bytes(salt) or b""
        commit = payload_commitment(key, data)
        if ref["commit"] != DIGEST_PREFIX + commit.hex() or len(data) != ref["size"]:
            notes = ("stored payload does not match its commitment: the payload was edited",)
    special = h if absent or h["kind"] in SHARD_KINDS else None
    return (leaf, h["prev"], None, notes, special, absent)


def _fatal(leaf: bytes, message: str) -> Checked:
    return (leaf, None, message, (), None, False)
