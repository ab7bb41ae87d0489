"""What happened after a permitted call was dispatched."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from clearance.model._base import Value

#: Characters of a tool's output an adapter reports (as text). The gate scans all of them for
#: injections and records the values in them for provenance, so the cap is far above what an
#: audit record keeps: an injection or an attacker's account number placed after the first
#: screenful of a fetched page must still be seen. At most 6 bytes per character once escaped as
#: JSON, a report stays under the sidecar's default 1 MiB body limit.
REPORTED_OUTPUT_CHARS = 131_072
#: Characters of the output the audit log keeps (after masking); the size is kept in full.
AUDITED_OUTPUT_CHARS = 1_000


class ActionResult(Value):
    """The outcome of a dispatched call, reported against its decision.

    ``output`` is what the tool returned, up to ``REPORTED_OUTPUT_CHARS`` characters;
    ``output_size`` the size of all of it in bytes.
    """

    decision_id: str
    success: bool
    output_size: int = Field(default=0, ge=0)
    output: Any = None
    error: str | None = Field(default=None, max_length=4096)
