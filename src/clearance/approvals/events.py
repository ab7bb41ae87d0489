"""Where approvals write their evidence: the slice of the gate's ``AuditSink`` they use."""

from __future__ import annotations

from typing import Any, Protocol


class EventSink(Protocol):
    """Appends non-decision events to the audit log (``AuditSink.record_event``)."""

    def record_event(self, kind: str, fields: dict[str, Any], payload: dict[str, Any]) -> None:
        """Append one event; raise when it cannot be committed (the change is then rolled back)."""
        ...
