"""The one model configuration: frozen, strict about unknown fields."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Value(BaseModel):
    """Base of every model value: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")
