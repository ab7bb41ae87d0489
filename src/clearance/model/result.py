"""What happened after a permitted call was dispatched."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from clearance.model._base import Value


class ActionResult(Value):
    """The outcome of a dispatched call, reported against its decision."""

    decision_id: str
    success: bool
    output_size: int = Field(default=0, ge=0)
    output: Any = None
    error: str | None = Field(default=None, max_length=4096)
