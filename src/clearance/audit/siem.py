"""SIEM mappings of audit events: OCSF API Activity and Elastic Common Schema, one dict each.

Example::

    >>> event = {"kind": "decision", "outcome": "DENY", "timestamp": "2026-03-01T12:00:00.000000Z",
    ...          "log": "d/node/2026", "index": 4, "tool": "wire_abroad"}
    >>> ocsf = to_ocsf(event, product_version="0.1.0")
    >>> (ocsf["class_uid"], ocsf["action_id"], ocsf["disposition_id"])
    (6003, 2, 2)
    >>> to_ecs(event, product_version="0.1.0")["event"]["type"]
    ['denied']

Both mappers are pure: they read one export event (``clearance.audit.export.to_event``, the
masked view of one log entry) and return a new dict. They never see what masking removed, so a
secret the redactor replaced before storage cannot reach a SIEM through them.

Why these classes and ids:

* OCSF: every entry is an **API Activity** (``class_uid`` 6003, category 6) with the Security
  Control profile. A decision's ``action_id`` / ``disposition_id`` pair says what the control did:
  PERMIT 1/1 (Allowed), DENY 2/2 (Blocked), APPROVAL 1/14 (Delayed: allowed once a human agrees),
  an approval granted 1/8 (Approved), refused 2/25 (Rejected), SILENCE 2/27 (Error). Rejected
  and Error exist from OCSF 1.3 on; the export declares 1.6.0. ``actor.app_*`` is the AI agent,
  ``actor.user`` the principal it acts for, so the two never merge.
* ECS: ``event.category`` is ``api`` and ``event.type`` one of its allowed types (allowed, denied,
  creation, change, end, info). ECS ``agent.*`` describes the log shipper, so the AI agent goes
  under ``clearance.agent_id``, never ``agent.id``.

Entries that record no control decision (genesis, prune, questions, votes) carry no
``action_id`` / ``disposition_id``: saying "allowed" about them would be false.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

OCSF_VERSION: Final = "1.6.0"
ECS_VERSION: Final = "8.11.0"
PRODUCT: Final = "clearance"

API_ACTIVITY: Final = 6003
APPLICATION_ACTIVITY: Final = 6

# OCSF API Activity activity ids.
CREATE, READ, UPDATE, DELETE, OTHER = 1, 2, 3, 4, 99
_ACTIVITY_NAMES: Final = {CREATE: "Create", READ: "Read", UPDATE: "Update", DELETE: "Delete"}
_ACTIONS: Final = {
    "create": CREATE,
    "read": READ,
    "get": READ,
    "list": READ,
    "update": UPDATE,
    "delete": DELETE,
}
_TIERS: Final = {
    "read-only": READ,
    "write-limited": UPDATE,
    "write-broad": UPDATE,
    "destructive": DELETE,
}

# Security Control profile: action_id and disposition_id.
ALLOWED, DENIED = 1, 2
_ACTION_NAMES: Final = {ALLOWED: "Allowed", DENIED: "Denied"}
D_ALLOWED, D_BLOCKED, D_APPROVED, D_DELAYED, D_REJECTED, D_UNAUTHORIZED, D_ERROR = (
    1,
    2,
    8,
    14,
    25,
    26,
    27,
)
_DISPOSITION_NAMES: Final = {
    D_ALLOWED: "Allowed",
    D_BLOCKED: "Blocked",
    D_APPROVED: "Approved",
    D_DELAYED: "Delayed",
    D_REJECTED: "Rejected",
    D_UNAUTHORIZED: "Unauthorized",
    D_ERROR: "Error",
}

#: (action_id, disposition_id, ECS event.type) of each decision outcome.
DECISION_CONTROL: Final[Mapping[str, tuple[int, int, str]]] = {
    "PERMIT": (ALLOWED, D_ALLOWED, "allowed"),
    "DENY": (DENIED, D_BLOCKED, "denied"),
    "APPROVAL": (ALLOWED, D_DELAYED, "info"),
    "SILENCE": (DENIED, D_ERROR, "denied"),
}
#: The same for entries that end or use an approval.
EVENT_CONTROL: Final[Mapping[str, tuple[int, int, str]]] = {
    "approval.created": (ALLOWED, D_DELAYED, "creation"),
    "approval.approved": (ALLOWED, D_APPROVED, "allowed"),
    "approval.denied": (DENIED, D_REJECTED, "denied"),
    "approval.expired": (DENIED, D_BLOCKED, "denied"),
    "approval.cancelled": (DENIED, D_BLOCKED, "denied"),
    "approval.token-redeemed": (ALLOWED, D_ALLOWED, "allowed"),
    "approval.token-rejected": (DENIED, D_UNAUTHORIZED, "denied"),
    "auth.refused": (DENIED, D_UNAUTHORIZED, "denied"),
}
#: ECS event.type of entries that change the gate's configuration or state.
_CHANGES: Final = frozenset({"policy.activated", "policy.promoted", "killswitch", "breakglass"})

# OCSF severity ids: a kill switch, a break-glass override or a refused credential is what an
# on-call analyst should see first; a gate that could not decide comes next.
INFORMATIONAL, LOW, MEDIUM, HIGH = 1, 2, 3, 4
_SEVERITY_NAMES: Final = {
    INFORMATIONAL: "Informational",
    LOW: "Low",
    MEDIUM: "Medium",
    HIGH: "High",
}
_HIGH_KINDS: Final = frozenset({"killswitch", "breakglass"})
_MEDIUM_KINDS: Final = frozenset({"auth.refused", "approval.token-rejected"})


def _control(event: Mapping[str, Any]) -> tuple[int, int, str] | None:
    kind = event["kind"]
    if kind == "decision":
        if event.get("shadow"):
            # Shadow mode: the caller got PERMIT; the would-be outcome stays in `authorizations`.
            return DECISION_CONTROL["PERMIT"]
        return DECISION_CONTROL.get(str(event.get("outcome")))
    return EVENT_CONTROL.get(kind)


def _severity(event: Mapping[str, Any]) -> int:
    kind = event["kind"]
    if kind in _HIGH_KINDS:
        return HIGH
    if kind in _MEDIUM_KINDS or (kind == "decision" and event.get("outcome") == "SILENCE"):
        return MEDIUM
    return INFORMATIONAL


def _activity(event: Mapping[str, Any]) -> int:
    if event["kind"] != "decision":
        return OTHER
    action = str(event.get("action") or "").lower()
    return _ACTIONS.get(action) or _TIERS.get(str(event.get("risk_tier")), OTHER)


def _epoch_ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def _uid(event: Mapping[str, Any]) -> str:
    """A unique id of the entry: its own id, else its position in the log."""
    return str(event.get("id") or f"{event['log']}#{event['index']}")


def _correlation(event: Mapping[str, Any]) -> str | None:
    """What ties this entry to others: the approval, else the session, else the decision."""
    for key in ("approval_id", "session_id", "decision_id"):
        value = event.get(key)
        if value:
            return str(value)
    return None


#: Members whose value is the masked tool input: copied as they are, never compacted.
_VERBATIM: Final = frozenset({"data", "tool_input"})


def _compact(value: Any) -> Any:
    """Drop ``None`` members and empty containers (SIEMs index absent as absent).

    The masked tool input is left exactly as it was logged.
    """
    if isinstance(value, dict):
        out = {k: v if k in _VERBATIM else _compact(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_compact(v) for v in value if v is not None]
    return value


def _clearance_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    """Evidence a SIEM has no standard field for: where the entry sits and how to verify it."""
    return {
        "kind": event["kind"],
        "log": event["log"],
        "index": event["index"],
        "leaf_hash": event.get("leaf_hash"),
        "decision_id": event.get("decision_id"),
        "approval_id": event.get("approval_id"),
        "outcome": event.get("outcome"),
        "shadow": event.get("shadow"),
        "tier": event.get("risk_tier"),
        "environment": event.get("environment"),
        "operator": event.get("operator"),
        "payload_pruned": event.get("payload_pruned"),
    }


def to_ocsf(event: Mapping[str, Any], *, product_version: str) -> dict[str, Any]:
    """The OCSF API Activity record of one export event (see the module docstring for ids)."""
    activity = _activity(event)
    severity = _severity(event)
    tool = event.get("tool")
    operation = str(tool) if tool else event["kind"]
    agent = event.get("agent_id")
    principal = event.get("principal")
    record: dict[str, Any] = {
        "class_uid": API_ACTIVITY,
        "class_name": "API Activity",
        "category_uid": APPLICATION_ACTIVITY,
        "category_name": "Application Activity",
        "activity_id": activity,
        "activity_name": _ACTIVITY_NAMES.get(activity, event["kind"]),
        "type_uid": API_ACTIVITY * 100 + activity,
        "time": _epoch_ms(event["timestamp"]),
        "severity_id": severity,
        "severity": _SEVERITY_NAMES[severity],
        "message": event.get("reason"),
        "metadata": {
            "version": OCSF_VERSION,
            "uid": _uid(event),
            "correlation_uid": _correlation(event),
            "log_name": event["log"],
            "sequence": event["index"],
            "profiles": ["security_control"],
            "product": {"name": PRODUCT, "vendor_name": PRODUCT, "version": product_version},
        },
        "actor": {
            "app_name": agent,
            "app_uid": agent,
            "user": {"uid": principal, "name": principal} if principal else None,
            "session": {"uid": event.get("session_id")},
        },
        "src_endpoint": {"name": agent or PRODUCT},
        "api": {
            "operation": operation,
            "service": {"name": PRODUCT},
            "request": {"uid": event.get("request_digest"), "data": event.get("tool_input")},
        },
        "resources": [{"name": event["target"], "type": "target", "uid": event["target"]}]
        if event.get("target")
        else None,
        "unmapped": {"clearance": _clearance_fields(event)},
    }
    control = _control(event)
    if control is not None:
        action, disposition, _ = control
        record.update(
            action_id=action,
            action=_ACTION_NAMES[action],
            disposition_id=disposition,
            disposition=_DISPOSITION_NAMES[disposition],
        )
    rule, policy = event.get("rule"), event.get("policy")
    if rule or policy:
        record["policy"] = {"uid": policy, "name": rule, "version": policy}
        record["authorizations"] = [
            {"decision": event.get("outcome"), "policy": {"uid": policy, "name": rule}}
        ]
    if event["kind"] == "outcome":
        success = event.get("success")
        record["status_id"] = 1 if success else 2
        record["status"] = "Success" if success else "Failure"
        record["status_detail"] = event.get("error")
    return dict(_compact(record))


def _ecs_outcome(event: Mapping[str, Any], control: tuple[int, int, str] | None) -> str:
    if event["kind"] == "outcome":
        return "success" if event.get("success") else "failure"
    if control is None or control[1] == D_DELAYED:
        return "unknown"
    return "success" if control[0] == ALLOWED else "failure"


def _ecs_type(event: Mapping[str, Any], control: tuple[int, int, str] | None) -> str:
    if control is not None:
        return control[2]
    if event["kind"] == "outcome":
        return "end"
    return "change" if event["kind"] in _CHANGES else "info"


def to_ecs(event: Mapping[str, Any], *, product_version: str) -> dict[str, Any]:
    """The Elastic Common Schema document of one export event."""
    control = _control(event)
    principal = event.get("principal")
    tool = event.get("tool")
    record: dict[str, Any] = {
        "@timestamp": event["timestamp"],
        "ecs": {"version": ECS_VERSION},
        "message": event.get("reason"),
        "event": {
            "kind": "event",
            "category": ["api"],
            "type": [_ecs_type(event, control)],
            "action": str(tool) if tool else event["kind"],
            "outcome": _ecs_outcome(event, control),
            "id": _uid(event),
            "reason": event.get("reason"),
            "severity": _severity(event),
            "sequence": event["index"],
            "dataset": "clearance.audit",
            "module": PRODUCT,
            "provider": event["log"],
        },
        "rule": {
            "id": event.get("rule"),
            "name": event.get("rule"),
            "version": event.get("policy"),
        },
        "user": {"id": principal, "name": principal} if principal else None,
        "service": {"name": PRODUCT, "version": product_version},
        "related": {
            "hash": [h for h in (event.get("request_digest"), event.get("leaf_hash")) if h],
            "user": [u for u in (principal, event.get("operator")) if u],
        },
        "clearance": {
            **_clearance_fields(event),
            "agent_id": event.get("agent_id"),
            "session_id": event.get("session_id"),
            "request_digest": event.get("request_digest"),
            "target": event.get("target"),
            "tool_input": event.get("tool_input"),
        },
    }
    return dict(_compact(record))
