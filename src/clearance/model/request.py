"""What an agent asks: DESIGN.md section 2."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from pydantic import ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from clearance.formats.canonical import (
    NotCanonicalError,
    representable,
    request_digest,
)
from clearance.model._base import Value


class Request(Value):
    """One tool call an agent wants to make.

    ``agent_id`` comes from authentication, never from the request body; everything that grants
    authority (task, environment, principal, grants) lives on the session, not here.

    A request is refused while it is built when any of its values cannot be written as canonical
    JSON (NaN, Infinity, an integer beyond +/-(2**53 - 1), a lone UTF-16 surrogate, a non-JSON
    type): its digest and its audit entry could not be computed, so the gate could only fail in
    the middle of a decision. The error names the path (``args.amount``) and what to send instead.
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

    @model_validator(mode="after")
    def _representable(self) -> Request:
        """Compute the digest now (the decision needs it anyway), so a bad value fails here.

        Typed text fields need no walk: pydantic already refuses lone surrogates in ``str``
        fields. ``args`` holds any JSON, and only the canonical walk looks at all of it.
        """
        try:
            _ = self.digest
        except NotCanonicalError as exc:
            # A stable error type (``not_canonical``) whose message is ours, with no prefix.
            raise PydanticCustomError("not_canonical", "{message}", {"message": str(exc)}) from None
        return self

    def recordable(self) -> Request:
        """This request with every value canonical JSON cannot carry replaced by text naming it.

        Only for the record of a refusal: a request built without validation (``model_construct``,
        ``model_copy(update=...)``) can still reach the gate, which denies it and logs this
        stand-in (``"<not representable: NaN>"``), since the original cannot be logged at all.
        It skips validation on purpose: its markers may be longer than the field limits.
        """
        fields = {name: representable(getattr(self, name)) for name in type(self).model_fields}
        return type(self).model_construct(**fields)

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
