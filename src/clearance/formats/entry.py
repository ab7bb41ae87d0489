"""Audit entry v1: the canonical JSON header that is a Merkle leaf, and the payload commitment.

Example::

    >>> from clearance.formats.entry import build_header, header_bytes, parse_header
    >>> h = build_header(log="d/node/2026", index=0, prev=None, time="2026-01-01T00:00:00.000000Z",
    ...                  kind="genesis", fields={"id": "01J..."})
    >>> parse_header(header_bytes(h)) == h
    True

A header holds no personal data: only digests, ids, enumerations, names and numbers (AUDIT.md
3.2). The parser is the single place that decides what a valid header is, for the gate and the
verifier alike: duplicate member names, floats, non-ASCII member names and non-canonical bytes are
rejected, so one entry has exactly one byte representation.
"""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clearance.formats.canonical import DIGEST_PREFIX, canonical_bytes
from clearance.formats.strict import StrictJSONError, check_strict, loads_canonical

VERSION = 1
MAX_HEADER_BYTES = 65_535
PAYLOAD_DOMAIN = b"clearance/payload/v1\n"
SALT_BYTES = 32

#: Kinds AUDIT.md 3.2 names; other dotted lowercase kinds are accepted for forward compatibility.
KINDS = frozenset(
    {
        "genesis",
        "decision",
        "approval.requested",
        "approval.granted",
        "approval.denied",
        "approval.expired",
        "outcome",
        "policy.activated",
        "killswitch",
        "breakglass",
        "key.rotated",
        "anchor",
        "prune",
        "erasure",
        "verify",
        "seal",
        "hold.placed",
        "hold.released",
    }
)
#: Fields the log itself sets; callers cannot supply them.
RESERVED_FIELDS = frozenset({"v", "log", "index", "prev", "time", "kind", "retention", "payload"})

_KIND_RE = re.compile(r"[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*\Z")
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}\Z")
# [0-9], not \d: \d would also accept non-ASCII digits in a string pattern.
_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z\Z")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_DIGEST_FIELDS = ("request_digest", "policy")
_RETENTION_MEMBERS = frozenset({"class", "until"})
_PAYLOAD_MEMBERS = frozenset({"commit", "enc", "size"})
_ENCRYPTIONS = ("none", "aes-256-gcm")  # a tuple: `in` must not hash a hostile list


class EntryError(ValueError):
    """An entry header is malformed or not canonical."""


def format_time(ts: datetime) -> str:
    """RFC 3339 UTC with microseconds and ``Z``: the only time form inside evidence."""
    if ts.tzinfo is None:
        raise EntryError("evidence times must be timezone-aware")
    if ts.tzinfo is not UTC:
        ts = ts.astimezone(UTC)
    # isoformat is several times cheaper than strftime, and pads years below 1000 as RFC 3339
    # requires; every decision formats its time.
    return ts.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def digest_text(raw: bytes) -> str:
    """``sha256:<hex>`` of 32 raw hash bytes."""
    return DIGEST_PREFIX + raw.hex()


def payload_commitment(salt: bytes, body: bytes) -> bytes:
    """``HMAC-SHA256(salt, "clearance/payload/v1\\n" || body)`` where body is JCS of the payload.

    The random salt makes the commitment hiding, so a pruned payload cannot be confirmed by
    guessing its content from the permanent header.

    ``hmac.new`` rather than the one-shot ``hmac.digest``: the one-shot form always releases the
    GIL, and with many deciding threads each release costs a wait to get it back; hashlib keeps
    the GIL for messages this small.
    """
    return hmac.new(salt, PAYLOAD_DOMAIN + body, "sha256").digest()


def build_header(
    *,
    log: str,
    index: int,
    prev: bytes | None,
    time: str,
    kind: str,
    fields: Mapping[str, Any],
    retention: tuple[str, str] | None = None,
    payload: tuple[bytes, int] | None = None,
) -> dict[str, Any]:
    """Assemble a header dict; ``payload`` is ``(commitment, size)``, ``retention`` ``(class, until)``."""
    clash = RESERVED_FIELDS.intersection(fields)
    if clash:
        raise EntryError(
            f"header fields `{', '.join(sorted(clash))}` are set by the log, not the caller"
        )
    header: dict[str, Any] = dict(fields)
    header["v"] = VERSION
    header["log"] = log
    header["index"] = index
    header["prev"] = None if prev is None else DIGEST_PREFIX + prev.hex()
    header["time"] = time
    header["kind"] = kind
    if retention is not None:
        header["retention"] = {"class": retention[0], "until": retention[1]}
    header["payload"] = (
        None
        if payload is None
        else {"commit": DIGEST_PREFIX + payload[0].hex(), "enc": "none", "size": payload[1]}
    )
    return header


def header_bytes(header: Mapping[str, Any]) -> bytes:
    """Canonical (RFC 8785) bytes of a header, checked against the size limit of tlog-tiles."""
    try:
        raw = canonical_bytes(dict(header))
    except (ValueError, TypeError) as exc:
        raise EntryError(f"header cannot be canonicalised: {exc}") from exc
    if len(raw) > MAX_HEADER_BYTES:
        raise EntryError(f"header is {len(raw)} bytes; the limit is {MAX_HEADER_BYTES}")
    return raw


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise EntryError(f"duplicate member name `{k[:40]}`")
        if not _KEY_RE.match(k):
            raise EntryError(f"member name `{k[:40]}` is not an ASCII identifier")
        out[k] = v
    return out


def _reject_float(text: str) -> Any:
    raise EntryError(f"number `{text[:30]}` is not an integer; headers hold integers only")


def loads_strict(raw: bytes) -> Any:
    """JSON with duplicate names, non-identifier names, floats and NaN/Infinity rejected."""
    try:
        return json.loads(
            raw,
            object_pairs_hook=_reject_duplicates,
            parse_float=_reject_float,
            parse_constant=_reject_float,
        )
    except EntryError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise EntryError(f"not valid JSON: {exc}") from exc


def check_canonical(value: Any, raw: bytes) -> None:
    """Raise unless ``raw`` is the canonical serialisation of ``value``."""
    try:
        if canonical_bytes(value) != raw:
            raise EntryError("bytes are not the canonical (RFC 8785) serialisation")
    except ValueError as exc:
        raise EntryError(f"value cannot be canonicalised: {exc}") from exc


def _require(header: Mapping[str, Any], key: str, typ: type) -> Any:
    """The field's value if it has exactly type ``typ`` (parsers return exact types; no bool for int)."""
    value = header.get(key)
    if type(value) is not typ:
        raise EntryError(f"field `{key}` is missing or has the wrong type")
    return value


def validate_header(header: Mapping[str, Any]) -> None:
    """Check the v1 field rules (types, formats); raise ``EntryError`` naming the field."""
    _validate_fields(header)
    try:
        check_strict(dict(header))
    except StrictJSONError as exc:
        raise EntryError(str(exc)) from exc


def _validate_fields(header: Mapping[str, Any]) -> None:
    # Exact type checks and one anchored regex per formatted string: this runs for every entry the
    # verifier replays, so it avoids per-field helpers where an inline test says the same.
    version = header.get("v")
    if type(version) is not int or version != VERSION:
        raise EntryError(f"unknown entry version `{version}`")
    _require(header, "log", str)
    index = _require(header, "index", int)
    if index < 0:
        raise EntryError("field `index` is negative")
    prev = header.get("prev")
    if index == 0:
        if prev is not None:
            raise EntryError("entry 0 must have `prev` null")
    elif type(prev) is not str or not _DIGEST_RE.match(prev):
        raise EntryError("field `prev` is not a `sha256:<hex>` digest")
    if not _TIME_RE.match(_require(header, "time", str)):
        raise EntryError("field `time` is not RFC 3339 UTC with microseconds")
    kind = _require(header, "kind", str)
    if kind not in KINDS and not _KIND_RE.match(kind):  # the named kinds need no regex
        raise EntryError("field `kind` is not a dotted lowercase name")
    retention = header.get("retention")
    if retention is not None:
        _check_retention(retention)
    payload = header.get("payload")
    if payload is not None:
        _check_payload_ref(payload)
    for key in _DIGEST_FIELDS:
        value = header.get(key)
        if value is not None and (type(value) is not str or not _DIGEST_RE.match(value)):
            raise EntryError(f"field `{key}` is not a `sha256:<hex>` digest")


def _check_retention(retention: Any) -> None:
    if (
        type(retention) is not dict
        or retention.keys() != _RETENTION_MEMBERS
        or type(retention["class"]) is not str
        or type(retention["until"]) is not str
        or not _DATE_RE.match(retention["until"])
    ):
        raise EntryError("field `retention` is not {class, until: YYYY-MM-DD}")


def _check_payload_ref(payload: Any) -> None:
    if (
        type(payload) is not dict
        or payload.keys() != _PAYLOAD_MEMBERS
        or type(payload["commit"]) is not str
        or not _DIGEST_RE.match(payload["commit"])
        or payload["enc"] not in _ENCRYPTIONS
        or type(payload["size"]) is not int
        or payload["size"] < 0
    ):
        raise EntryError("field `payload` is not {commit: sha256:<hex>, enc, size}")


def parse_header(raw: bytes) -> dict[str, Any]:
    """Parse, validate and check canonical form of stored header bytes."""
    if len(raw) > MAX_HEADER_BYTES:
        raise EntryError(f"header is {len(raw)} bytes; the limit is {MAX_HEADER_BYTES}")
    try:
        value = loads_canonical(raw)
    except StrictJSONError as exc:
        raise EntryError(str(exc)) from exc
    if type(value) is not dict:
        raise EntryError("header is not a JSON object")
    _validate_fields(value)
    return value
