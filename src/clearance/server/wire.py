"""Request and response types of the HTTP API (version 1) and its stable error codes.

Every body the service accepts is a ``...V1`` model with ``extra="forbid"``: an unknown field is a
422 ``invalid_request``, never silently dropped (a dropped ``agent_id`` would hide an attempt to
act as another agent). Responses that are model values (``Decision``, ``Session``) are returned
as those values, so the wire and the model cannot drift apart.

Every error body is ``ErrorV1`` (``{code, message, hint}``); codes are part of the API and only
grow. ``ApiError`` carries one to the exception handler in ``app.py``.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from clearance.control.errors import ControlError
from clearance.errors import (
    ApprovalError,
    ApprovalExpiredError,
    ApproverNotAllowedError,
    AuthorizationError,
    ClearanceError,
    ConfigError,
    ConflictError,
    CredentialError,
    EvidenceUnavailableError,
    InvalidTokenError,
    PolicyError,
    RequestError,
    SelfApprovalError,
    StoreUnavailableError,
)
from clearance.model.decision import Outcome
from clearance.model.session import Environment
from clearance.model.tools import RiskTier


class ErrorCode(StrEnum):
    """Stable machine-readable error codes."""

    MALFORMED_JSON = "malformed_json"
    INVALID_REQUEST = "invalid_request"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    BODY_TOO_LARGE = "body_too_large"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    CSRF_FAILED = "csrf_failed"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"
    RATE_LIMITED = "rate_limited"
    NOT_AVAILABLE = "not_available"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal_error"


class ApiError(Exception):
    """An HTTP error with a stable code; rendered as ``ErrorV1`` by the app's handler."""

    def __init__(
        self,
        status: int,
        code: ErrorCode | str,
        message: str,
        hint: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = str(code)
        self.message = message
        self.hint = hint
        self.headers = headers

    def body(self) -> dict[str, str | None]:
        """The ``ErrorV1`` JSON body."""
        return {"code": self.code, "message": self.message, "hint": self.hint}


def not_available(feature: str) -> ApiError:
    """501 for a route whose backing part is not part of this deployment (yet)."""
    return ApiError(
        501,
        ErrorCode.NOT_AVAILABLE,
        f"{feature} is not available in this deployment",
        "the part that provides it is not configured on this gate",
    )


# Most specific first: the first class the error is an instance of decides the status.
_STATUS_OF_ERROR: tuple[tuple[type[ClearanceError], int], ...] = (
    (InvalidTokenError, 403),
    (SelfApprovalError, 403),
    (ApproverNotAllowedError, 403),
    (ApprovalExpiredError, 410),
    (ApprovalError, 409),
    (EvidenceUnavailableError, 404),
    (AuthorizationError, 403),
    (ConflictError, 409),
    (StoreUnavailableError, 503),
    (PolicyError, 422),
    (RequestError, 400),
    (ConfigError, 400),
    (CredentialError, 403),
    (ControlError, 409),
)


def status_of(error: ClearanceError) -> int:
    """The HTTP status for a ``ClearanceError`` raised by a part behind a route."""
    for cls, status in _STATUS_OF_ERROR:
        if isinstance(error, cls):
            return status
    return 500


class WireModel(BaseModel):
    """Base of every request body: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ErrorV1(WireModel):
    """Every error response."""

    code: str
    message: str
    hint: str | None = None


_MAX_SAFE_INT = 2**53 - 1
_MAX_DEPTH = 64


def _check_text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "text holds a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape); "
                "send valid Unicode text and encode binary data as base64"
            ) from None


def _check_json(value: Any, depth: int = 0) -> None:
    """Raise ``ValueError`` for what RFC 8785 cannot hash: huge integers, NaN/Infinity, lone
    surrogates in text, deep nests."""
    if depth > _MAX_DEPTH:
        raise ValueError(f"nested deeper than {_MAX_DEPTH} levels")
    if isinstance(value, str):
        _check_text(value)
        return
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise ValueError("integers must lie within +/-(2**53 - 1); send larger ones as strings")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("NaN and Infinity are not JSON numbers")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_json(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)


def _canonical_args(args: dict[str, Any]) -> dict[str, Any]:
    _check_json(args)
    return args


CanonicalArgs = Annotated[dict[str, Any], AfterValidator(_canonical_args)]
"""Tool arguments the request digest can be computed over (else 422, not a SILENCE)."""


class DecideRequestV1(WireModel):
    """``POST /v1/decide``: a tool call the agent wants to make.

    The fields are ``Request``'s minus ``agent_id``, which the gate takes from the API key (a test
    pins the two field sets together).
    """

    session_id: str = Field(min_length=1, max_length=256)
    tool: str = Field(min_length=1, max_length=256)
    action: str = Field(default="call", min_length=1, max_length=128)
    args: CanonicalArgs = Field(default_factory=dict)
    target: str | None = Field(default=None, max_length=2048)
    reasoning: str | None = Field(default=None, max_length=65536)
    context_hash: str | None = Field(default=None, max_length=256)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=256)
    approval_token: str | None = Field(default=None, max_length=4096)


class RedeemRequestV1(DecideRequestV1):
    """``POST /v1/tokens/redeem``: the approved request again, with its execution token."""

    approval_token: str = Field(min_length=1, max_length=4096)


class ApprovalStatusRequestV1(WireModel):
    """``POST /v1/approvals/{id}/status``: the signed intent from the APPROVAL decision."""

    session_id: str = Field(min_length=1, max_length=256)
    intent: str = Field(min_length=1, max_length=4096)


class ApprovalStatusV1(BaseModel):
    """The agent's view of its approval; ``token`` is present once, right after approval."""

    approval_id: str
    state: str
    expires_at: str
    token: str | None = None
    token_expires: str | None = None
    reason: str | None = None
    questions: list[str] = Field(default_factory=list)


class ApprovalAnswerV1(WireModel):
    """The agent's answer to an operator's question (untrusted text, shown to approvers)."""

    session_id: str = Field(min_length=1, max_length=256)
    text: str = Field(min_length=1, max_length=2000)


class CredentialRequestV1(WireModel):
    """``POST /v1/credentials``: exchange one grant for the tool's short-lived credential.

    The grant is exactly one of the id of a recent PERMIT decision for this session and tool, or
    a live execution token from an approval of such a call.
    """

    session_id: str = Field(min_length=1, max_length=256)
    tool: str = Field(min_length=1, max_length=256)
    decision_id: str | None = Field(default=None, min_length=1, max_length=64)
    approval_token: str | None = Field(default=None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _one_grant(self) -> CredentialRequestV1:
        if (self.decision_id is None) == (self.approval_token is None):
            raise ValueError("send exactly one of `decision_id` and `approval_token`")
        return self


class CredentialV1(BaseModel):
    """A credential for one tool call. ``secret`` is in this response only and never logged."""

    lease_id: str
    tool: str
    environment: str
    expires_at: str
    secret: str


class ReceiptV1(BaseModel):
    """A decision's signed receipt and the inclusion proof of its audit entry.

    Verify both with the deployment's public key alone:
    ``python -m clearance.audit.verify receipt receipt.json --proof proof.txt --keys audit.pub``.
    """

    decision_id: str
    receipt: dict[str, Any]
    proof: str = Field(description="c2sp tlog-proof text naming a signed checkpoint")


class GrantsV1(BaseModel):
    """The tools a session's task grants under the active policy (for hiding, never deciding)."""

    session_id: str
    policy: str | None = Field(description="digest of the policy the grants come from")
    tools: list[str]


class OpenSessionRequestV1(WireModel):
    """``POST /v1/sessions``: an orchestrator opens a session for a registered agent."""

    agent_id: str = Field(min_length=1, max_length=128)
    task: str = Field(min_length=1, max_length=256)
    environment: Environment | None = Field(
        default=None, description="defaults to the orchestrator's environment; must equal it"
    )
    principal: str | None = Field(default=None, max_length=256)
    instruction: str | None = Field(default=None, max_length=65536)
    delegation: list[str] = Field(default_factory=list, max_length=32)
    attended: bool = True
    labels: dict[str, str] = Field(default_factory=dict, max_length=32)


class LoginRequestV1(WireModel):
    """``POST /v1/ops/login``."""

    username: str = Field(min_length=1, max_length=128)
    password: str = Field(min_length=1, max_length=1024)
    totp: str | None = Field(default=None, max_length=16)


class LoginResponseV1(BaseModel):
    """A dashboard session was opened; the cookie is set, the CSRF token is returned here."""

    username: str
    roles: list[str]
    csrf_token: str
    expires_at: str


class CommentV1(WireModel):
    """An optional comment on an approval decision (a denial's reason reaches the agent)."""

    comment: str | None = Field(default=None, max_length=4096)


class QuestionV1(WireModel):
    """A question for the agent about a pending approval."""

    question: str = Field(min_length=1, max_length=2000)


class BatchDecisionV1(WireModel):
    """Approve or deny exactly the approvals the operator saw, all or none."""

    approval_ids: list[str] = Field(min_length=1, max_length=100)
    action: Literal["approve", "deny"]


class KillSwitchV1(WireModel):
    """Engage or release the kill switch for everyone, one agent, one tool or one environment."""

    engaged: bool
    agent_id: str | None = Field(default=None, min_length=1, max_length=128)
    tool: str | None = Field(
        default=None, min_length=1, max_length=256, description="one tool, for every agent"
    )
    environment: Environment | None = Field(
        default=None, description="every call in one environment"
    )
    reason: str = Field(min_length=1, max_length=1024)

    @model_validator(mode="after")
    def _one_scope(self) -> KillSwitchV1:
        named = [k for k in ("agent_id", "tool", "environment") if getattr(self, k) is not None]
        if len(named) > 1:
            raise ValueError(
                f"name at most one scope (got {', '.join(named)}); none means everything"
            )
        return self


class BreakGlassOpenV1(WireModel):
    """Open a break-glass override: a reason, a scope inside a policy grant, a bounded duration."""

    reason: str = Field(min_length=8, max_length=2000)
    minutes: int = Field(ge=1, le=24 * 60, description="at most the policy grant's max_duration")
    agent: str = Field(default="*", min_length=1, max_length=128, description="agent id or *")
    tool: str = Field(default="*", min_length=1, max_length=256, description="tool name or *")
    tiers: list[RiskTier] = Field(min_length=1, max_length=8)


class CloseV1(WireModel):
    """Close an object early (no fields yet; sent as ``{}``)."""


class BreakGlassV1(BaseModel):
    """A break-glass override as stored and signed, with its use count."""

    override_id: str
    operator_id: str
    reason: str
    scope: dict[str, Any]
    opened_at: str
    expires_at: str
    closed_at: str | None
    closed_by: str | None
    uses: int
    signature: str


class PolicyUploadV1(WireModel):
    """A policy document (YAML text) to archive as a bundle; activation is a separate step."""

    source_name: str = Field(min_length=1, max_length=256)
    text: str = Field(min_length=1, max_length=4 * 1024 * 1024)


class PolicyActivateV1(WireModel):
    """Activate an archived bundle by its digest."""

    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


class PolicyVersionV1(BaseModel):
    """An archived bundle."""

    digest: str
    source_name: str
    created_at: str
    active: bool


class ActivationV1(BaseModel):
    """One entry of the activation history."""

    seq: int
    digest: str
    activated_at: str
    activated_by: str


class DryRunV1(BaseModel):
    """How a candidate bundle would have decided recent traffic, next to what was decided."""

    digest: str
    replayed: int
    changed: int
    by_outcome: dict[str, dict[str, int]]
    examples: list[dict[str, Any]]


class PolicyDiffV1(BaseModel):
    """A unified diff of two archived bundles' canonical text."""

    old: str
    new: str
    diff: str


class CreateAgentV1(WireModel):
    """Register an agent in one environment."""

    agent_id: str = Field(min_length=1, max_length=128)
    environment: Environment
    description: str = Field(default="", max_length=1024)


class AgentV1(BaseModel):
    """A registered agent and its keys' metadata (never the keys)."""

    agent_id: str
    environment: str
    description: str
    created_at: str
    disabled: bool
    keys: list[dict[str, Any]]


class CreateKeyV1(WireModel):
    """Mint a key for an agent."""

    label: str = Field(default="", max_length=128)


class MintedKeyV1(BaseModel):
    """A new key. ``secret`` is shown in this response only."""

    key_id: str
    secret: str
    agent_id: str | None
    environment: str


class AuditStatusV1(BaseModel):
    """Whether the audit log verifies, as of the last check."""

    available: bool
    detail: dict[str, Any]


class ReadyV1(BaseModel):
    """``/readyz``: each dependency and whether it is ready."""

    ready: bool
    checks: dict[str, str]


OUTCOME_STATUS: dict[Outcome, int] = {
    Outcome.PERMIT: 200,
    Outcome.DENY: 403,
    Outcome.APPROVAL: 202,
    Outcome.SILENCE: 503,
}
"""The HTTP status of a decision: a plain ``curl`` of a refused call sees 403."""
