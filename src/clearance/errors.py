"""The public error hierarchy of clearance.

Every error carries a stable ``code``, a one-sentence ``message`` (lowercase, no final period), an
optional ``location`` (file, line, key path) and an optional ``hint``. ``str(err)`` renders them on one
line so the CLI can print it as is and the HTTP API can return ``{code, message, hint}``.

::

    ClearanceError
    ├── ConfigError                 bad settings, missing keys, unusable data directory
    ├── RequestError                a malformed request (missing tool, args not an object, too large)
    ├── PolicyError
    │   ├── PolicySyntaxError       YAML that does not parse
    │   ├── PolicySchemaError       unknown keys, wrong types, bad references (aggregates all problems)
    │   └── ExpressionError         CEL that does not compile or fails at evaluation
    ├── StoreError
    │   ├── StoreUnavailableError   the database cannot be reached or written
    │   │   └── TaintUnrecordedError   untrusted content was not recorded: the session's taint is unknown
    │   ├── ConflictError           a uniqueness or compare-and-swap conflict
    │   └── MigrationError
    ├── AuditError
    │   ├── AuditWriteError         an entry could not be durably committed (audit-or-refuse)
    │   ├── KeyFileError            a key file is missing, unreadable or too open
    │   └── EvidenceUnavailableError   no proof here: another shard, or pruned to its hash
    ├── ApprovalError
    │   ├── SelfApprovalError
    │   ├── ApprovalExpiredError
    │   ├── ApproverNotAllowedError
    │   └── InvalidTokenError       deliberately opaque: the precise reason goes to the audit log only
    ├── AuthorizationError          a principal called something its role does not allow
    ├── SandboxError
    └── CredentialError

``clearance.audit.verify.errors.VerificationError`` deliberately does not inherit from
``ClearanceError``: the verifier must run without the rest of clearance installed.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """Where a problem is: a file, a 1-based line and a dotted key path, each optional."""

    file: str | None = None
    line: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.line is not None:
            parts.append(str(self.line))
        if self.key:
            parts.append(self.key)
        return ":".join(parts)


class ClearanceError(Exception):
    """Base of every error clearance raises on purpose."""

    code: str = "clearance_error"
    exit_code: int = 1

    def __init__(
        self, message: str, *, location: Location | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        text = self.message
        if self.location is not None and str(self.location):
            text = f"{self.location}: {text}"
        if self.hint:
            text = f"{text} (hint: {self.hint})"
        return text

    def to_dict(self) -> dict[str, str | None]:
        """The wire shape used by the HTTP API: ``{code, message, hint}``."""
        return {"code": self.code, "message": str(self), "hint": self.hint}


class ConfigError(ClearanceError):
    """Settings, key files or the data directory are unusable."""

    code = "config_error"
    exit_code = 2


class RequestError(ClearanceError):
    """A request is malformed; it is refused before any policy runs."""

    code = "request_error"
    exit_code = 2


class PolicyError(ClearanceError):
    """A policy cannot be loaded or evaluated."""

    code = "policy_error"
    exit_code = 2


class PolicySyntaxError(PolicyError):
    """The policy file is not valid YAML."""

    code = "policy_syntax_error"


class PolicySchemaError(PolicyError):
    """The policy document breaks the schema; ``problems`` holds every problem found."""

    code = "policy_schema_error"

    def __init__(self, problems: list[PolicyError]) -> None:
        self.problems = sorted(
            problems,
            key=lambda p: (
                (p.location.file or "") if p.location else "",
                (p.location.line or 0) if p.location else 0,
            ),
        )
        first = self.problems[0] if self.problems else None
        super().__init__(
            first.message if first else "the policy is invalid",
            location=first.location if first else None,
            hint=first.hint if first else None,
        )

    def __str__(self) -> str:
        return "\n".join(ClearanceError.__str__(p) for p in self.problems) or self.message


class ExpressionError(PolicyError):
    """A CEL condition does not compile or fails while evaluating."""

    code = "expression_error"


class StoreError(ClearanceError):
    """The store failed."""

    code = "store_error"


class StoreUnavailableError(StoreError):
    """The store cannot be reached or written."""

    code = "store_unavailable"


class TaintUnrecordedError(StoreUnavailableError):
    """A tool's output could not be recorded as taint and provenance (store or scanner failure).

    Until that output is recorded, the session's taint is unknown and its decisions are SILENCE;
    the reporter gets this error (HTTP 503) so it knows to report the result again.
    """

    code = "taint_unrecorded"


class ConflictError(StoreError):
    """A uniqueness or compare-and-swap conflict."""

    code = "conflict"


class MigrationError(StoreError):
    """A schema migration failed or the schema is newer than this code."""

    code = "migration_error"


class AuditError(ClearanceError):
    """The audit log failed."""

    code = "audit_error"


class AuditWriteError(AuditError):
    """An audit entry could not be durably committed; the decision must be SILENCE."""

    code = "audit_write_failed"


class KeyFileError(AuditError):
    """A key file is missing, unreadable, malformed or readable by others."""

    code = "key_file_error"
    exit_code = 2


class EvidenceUnavailableError(AuditError):
    """This gate cannot produce the asked-for evidence (another shard wrote it, or it is pruned)."""

    code = "evidence_unavailable"


class ApprovalError(ClearanceError):
    """An approval action is not allowed."""

    code = "approval_error"


class SelfApprovalError(ApprovalError):
    """An approver tried to approve their own (or their own agent's) request."""

    code = "self_approval"


class ApprovalExpiredError(ApprovalError):
    """The approval request expired; it is a DENY."""

    code = "approval_expired"


class ApproverNotAllowedError(ApprovalError):
    """The operator is not in a group allowed to decide this approval, or already decided it."""

    code = "approver_not_allowed"


class InvalidTokenError(ApprovalError):
    """An execution token or signed intent is not valid; the reason is in the audit log only."""

    code = "invalid_token"

    def __init__(self) -> None:
        super().__init__("the token is not valid for this request")


class AuthorizationError(ClearanceError):
    """A principal called an operation its role does not allow."""

    code = "forbidden"


class SandboxError(ClearanceError):
    """The sandbox could not run a job safely; the job was not run."""

    code = "sandbox_error"


class CredentialError(ClearanceError):
    """A credential cannot be issued for this decision."""

    code = "credential_error"
