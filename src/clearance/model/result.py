"""What happened after a permitted call was dispatched."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from clearance.model._base import Value

#: Characters of a tool's output an adapter reports (as text). The gate scans all of them for
#: injections and records the values in them for provenance, so the cap is far above what an
#: audit record keeps: an injection or an attacker's account number placed after the first
#: screenful of a fetched page must still be seen. Beyond it nothing is scanned, which fails
#: closed where it matters: an untrusted source taints the session whatever it returned, and a
#: value seen nowhere is not trusted. The cap bounds the cost of one report (recording 100 KB
#: for provenance takes about 0.1 s of CPU) and keeps it under the sidecar's 1 MiB body limit.
REPORTED_OUTPUT_CHARS = 65_536
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
