"""SIEM export: one JSON object per line with the standard audit field set plus decision fields.

Example::

    >>> for line in export_lines(storage):      # doctest: +SKIP
    ...     siem.send(line)

Every event carries the standard field set (``timestamp``, ``session_id``, ``agent_id``,
``action``, ``tool``, ``tool_input``, ``tool_output``, ``reasoning``, ``approval_status``,
``approver``, ``risk_tier``, ``context_hash``), the decision fields (``decision_id``, ``outcome``,
``rule``, ``reason``, ``policy``, ``request_digest``, ``shadow``) and where the event sits in the
log (``log``, ``index``, ``leaf_hash``, ``kind``, ``id``). Values come from the header first and
the masked payload second; a field the entry does not have is ``null``. Exported values are the
masked ones: export never sees what masking removed. ``payload_pruned`` says the payload is gone.
Context fields follow when the entry has them (``target``, ``principal``, ``environment``,
``approval_id``, ``operator``, ``success``, ``error``).

``format`` picks the shape of each line: ``clearance`` (the field set above), ``ocsf`` (OCSF API
Activity) or ``ecs`` (Elastic Common Schema); the SIEM mappings live in ``clearance.audit.siem``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

import orjson

from clearance.audit.siem import to_ecs, to_ocsf
from clearance.audit.storage import AuditStorage, StoredEntry
from clearance.errors import ConfigError

STANDARD_FIELDS = (
    "timestamp",
    "session_id",
    "agent_id",
    "action",
    "tool",
    "tool_input",
    "tool_output",
    "reasoning",
    "approval_status",
    "approver",
    "risk_tier",
    "context_hash",
)
DECISION_FIELDS = ("decision_id", "outcome", "rule", "reason", "policy", "request_digest", "shadow")
CONTEXT_FIELDS = (
    "target",
    "principal",
    "environment",
    "approval_id",
    "operator",
    "success",
    "error",
)
_CHUNK = 1000
_APPROVAL_KINDS = {
    "approval.created": "requested",
    "approval.approved": "approved",
    "approval.denied": "denied",
    "approval.expired": "expired",
    "approval.cancelled": "cancelled",
}


def _as_is(event: dict[str, Any], *, product_version: str) -> dict[str, Any]:
    del product_version
    return event


#: The shapes ``export_lines`` can write: the name of each and its mapping of one event.
FORMATS: Final[Mapping[str, Callable[..., dict[str, Any]]]] = {
    "clearance": _as_is,
    "ocsf": to_ocsf,
    "ecs": to_ecs,
}


def _approval_status(header: dict[str, Any], payload: dict[str, Any]) -> str | None:
    status = _APPROVAL_KINDS.get(header["kind"])
    if status is None and header.get("outcome") == "APPROVAL":
        status = "pending"
    return status or payload.get("approval_status")


def to_event(entry: StoredEntry) -> dict[str, Any] | None:
    """The export event of one stored entry (``None`` for a hash-only pruned entry)."""
    if entry.header is None:
        return None
    header = json.loads(entry.header)
    payload: dict[str, Any] = json.loads(entry.body) if entry.body is not None else {}

    def pick(name: str, *alts: str) -> Any:
        for source in (header, payload):
            for key in (name, *alts):
                if key in source:
                    return source[key]
        return None

    return {
        "timestamp": header["time"],
        "session_id": payload.get("session_id"),
        "agent_id": payload.get("agent_id"),
        "action": pick("action"),
        "tool": pick("tool"),
        "tool_input": payload.get("args"),
        "tool_output": payload.get("output", payload.get("output_summary")),
        "reasoning": payload.get("reasoning"),
        "approval_status": _approval_status(header, payload),
        "approver": payload.get("approver"),
        "risk_tier": pick("tier", "risk_tier"),
        "context_hash": payload.get("context_hash"),
        "decision_id": header.get("decision_id"),
        "outcome": header.get("outcome"),
        "rule": header.get("rule"),
        "reason": payload.get("reason"),
        "policy": header.get("policy"),
        "request_digest": header.get("request_digest"),
        "shadow": header.get("shadow"),
        "kind": header["kind"],
        "id": header.get("id"),
        "log": header["log"],
        "index": entry.idx,
        "leaf_hash": "sha256:" + entry.leaf_hash.hex(),
        "payload_pruned": header.get("payload") is not None and entry.body is None,
        **{name: pick(name) for name in CONTEXT_FIELDS},
    }


def export_events(
    storage: AuditStorage, origin: str | None = None, *, start: int = 0, end: int | None = None
) -> Iterator[dict[str, Any]]:
    """Events of one shard (or every shard) in log order, read in chunks."""
    for o in [origin] if origin else storage.origins():
        pos = start
        while end is None or pos < end:
            stop = pos + _CHUNK if end is None else min(pos + _CHUNK, end)
            rows = storage.entries(o, pos, stop)
            if not rows:
                break
            for row in rows:
                event = to_event(StoredEntry._make(row))
                if event is not None:
                    yield event
            pos = rows[-1][0] + 1


def mapper(format: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The mapping of one event for ``format``; ``ConfigError`` naming the known ones otherwise."""
    shape = FORMATS.get(format)
    if shape is None:
        raise ConfigError(
            f"unknown export format `{format}`", hint=f"use one of: {', '.join(FORMATS)}"
        )
    try:
        product_version = version("clearance")
    except PackageNotFoundError:
        product_version = "unknown"
    return lambda event: shape(event, product_version=product_version)


def export_lines(
    storage: AuditStorage, origin: str | None = None, *, start: int = 0, format: str = "clearance"
) -> Iterator[str]:
    """``export_events`` in ``format``, as JSON lines (no trailing newline)."""
    shape = mapper(format)
    for event in export_events(storage, origin, start=start):
        yield orjson.dumps(shape(event)).decode()


def tail(
    storage: AuditStorage,
    origin: str,
    *,
    last: int = 10,
    follow: bool = False,
    wait: Callable[[], bool] | None = None,
) -> Iterator[str]:
    """The last ``last`` events; with ``follow``, then new ones as they are committed.

    ``wait`` pauses between polls and returns False to stop following (the CLI sleeps; tests
    stop after a few rounds).
    """
    size = storage.size(origin)
    pos = max(size - last, 0)
    while True:
        for event in export_events(storage, origin, start=pos):
            pos = event["index"] + 1
            yield orjson.dumps(event).decode()
        if not follow or wait is None or not wait():
            return
