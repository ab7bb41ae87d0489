"""What an agent asks: DESIGN.md section 2."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from pydantic import ConfigDict, Field

from clearance.formats.canonical import request_digest
from clearance.model._base import Value


class Request(Value):
    """One tool call an agent wants to make.

    ``agent_id`` comes from authentication, never from the request body; everything that grants
    authority (task, environment, principal, grants) lives on the session, not here.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", ignored_types=(cached_property,))

    agent_id: str = Field(min_length=1, max_length=256)
    session_id: str = Field(min_length=1, max_length=256)
    tool: str = Field(min_length=1, max_length=256)
    action: str = Field(default="call", min_length=1, max_length=128)
    args: dict[str, Any] = Field(default_factory=dict)
    target: str | None = Field(default=None, max_length=2048)
    reasoning: str | None = Field(default=None, max_length=65536)
    context_hash: str | None = Field(default=None, max_length=256)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)
    approval_token: str | None = Field(default=None, max_length=4096)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Request:
        """A copy with ``update`` applied; its digest is recomputed, never carried over.

        The digest is cached on first use; a copy with other arguments must not inherit the
        original's digest, or an approval for one request would match a swapped one.
        """
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("digest", None)
        return copy

    @cached_property
    def digest(self) -> str:
        """The request digest (``sha256:<hex>``) that approvals, tokens and receipts bind to."""
        return request_digest(
            agent_id=self.agent_id,
            session_id=self.session_id,
            tool=self.tool,
            action=self.action,
            args=self.args,
            target=self.target,
        )
