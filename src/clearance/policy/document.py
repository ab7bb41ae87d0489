"""The typed schema of a policy document: every key a policy file may hold, and nothing else.

Each model forbids unknown keys and validates in strict mode (no ``"5"`` for ``5``), so a misspelt
or misplaced key is a load error naming its file, line and key instead of a setting silently
ignored. Sections that later parts of the gate consume (approvals, breakers, redaction, retention,
break-glass, sandbox, egress, credentials) are parsed here too, with their documented defaults, so
that a policy written today means the same thing once those parts read it.

Only shape and single-value rules live here; rules that relate one part of the document to another
(a rule naming an unknown tool, a CEL variable that does not exist) are checked in
``clearance.policy.compile``.

::

    >>> doc = Document.model_validate({
    ...     "version": "1", "name": "demo",
    ...     "tools": {"read_account": {"tier": "read-only"}},
    ...     "tasks": {"balance_check": {"tools": ["read_account"]}},
    ...     "environments": {"staging": {}, "production": {}},
    ... })
    >>> doc.default
    'deny'
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

Tier = Literal["read-only", "write-limited", "write-broad", "destructive"]
HIGH_RISK_TIERS: frozenset[str] = frozenset({"write-broad", "destructive"})
Mode = Literal["enforce", "shadow"]
ParamType = Literal["string", "integer", "number", "boolean", "array", "object"]
RuleOutcome = Literal["permit", "deny", "approval"]
EnvironmentName = Literal["development", "staging", "production"]
REQUIRED_ENVIRONMENTS: tuple[str, ...] = ("staging", "production")

#: Ids the gate itself uses for the ``rule`` of a verdict; a policy rule may not take them.
BUILTIN_RULE_IDS: frozenset[str] = frozenset(
    {"scope", "default", "constraint", "unknown-tool", "kill-switch", "idempotency-conflict"}
)

ToolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$")]
ToolPattern = Annotated[str, Field(pattern=r"^[A-Za-z0-9_*?\[\]!][A-Za-z0-9_.:/*?\[\]!-]{0,127}$")]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")]
RuleId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]
Scalar = bool | int | float | str
JsonValue = Any
FieldPath = Annotated[
    str, Field(pattern=r"^(args|output|target|reasoning)(\.([A-Za-z0-9_-]+|\*))*$")
]
DomainPattern = Annotated[
    str,
    Field(
        pattern=r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
    ),
]

_DURATION = re.compile(r"^([1-9][0-9]{0,8})(s|m|h|d|w|y)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_duration(value: object) -> object:
    """Turn ``"15m"``, ``"3y"`` ... into a ``timedelta``; leave anything else for pydantic to reject.

    Durations are written as text with one unit so that a policy reads the same to every reader;
    a bare number would leave the unit to guess.
    """
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("a duration is text such as `15m`, `60s`, `180d` or `3y`")  # noqa: TRY004
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(
            f"`{value}` is not a duration; write a whole number and one of s, m, h, d, w, y"
        )
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Section(BaseModel):
    """Base of every document model: immutable, strict, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


# --------------------------------------------------------------------------------------- tools


class Param(Section):
    """One parameter of a tool: its JSON type and the bounds its value must respect.

    Every bound applies only to the types it names; giving one to another type is an error rather
    than a bound that silently never fires.
    """

    type: ParamType
    description: str = ""
    required: bool = False
    enum: list[Scalar] | None = Field(default=None, min_length=1)
    min: float | None = None
    max: float | None = None
    pattern: str | None = Field(default=None, max_length=1024)
    min_length: int | None = Field(default=None, ge=0)
    max_length: int | None = Field(default=None, ge=0)
    max_items: int | None = Field(default=None, ge=0)
    max_bytes: int | None = Field(default=None, ge=0)

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"`{value}` is not a valid regular expression: {exc}") from None
        return value

    @field_validator("min", "max")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("bounds must be finite numbers")
        return value

    @model_validator(mode="after")
    def _bounds_fit_type(self) -> Param:
        allowed = {
            "min": ("integer", "number"),
            "max": ("integer", "number"),
            "pattern": ("string",),
            "min_length": ("string",),
            "max_length": ("string",),
            "max_items": ("array",),
            "max_bytes": ("string", "array", "object"),
        }
        for key, types in allowed.items():
            if getattr(self, key) is not None and self.type not in types:
                raise ValueError(f"`{key}` does not apply to a parameter of type `{self.type}`")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"`min` {self.min:g} is greater than `max` {self.max:g}")
        if (
            self.min_length is not None
            and self.max_length is not None
            and self.min_length > self.max_length
        ):
            raise ValueError("`min_length` is greater than `max_length`")
        for value in self.enum or ():
            if not _scalar_has_type(value, self.type):
                raise ValueError(f"enum value `{value!r}` is not of type `{self.type}`")
        return self


def _scalar_has_type(value: Scalar, type_: str) -> bool:
    if type_ == "string":
        return isinstance(value, str)
    if type_ == "boolean":
        return isinstance(value, bool)
    if type_ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_ == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return False


class Tool(Section):
    """One tool of the inventory: its risk tier, parameter schema and handling."""

    tier: Tier
    description: str = ""
    params: dict[Identifier, Param] = Field(default_factory=dict)
    additional_params: bool = False
    untrusted_source: bool = False
    code_execution: bool = False
    mode: Mode | None = None
    summary: str | None = Field(default=None, max_length=2048)


class Task(Section):
    """A task type and the tools a session of that task may call (names or globs)."""

    description: str = ""
    tools: list[ToolPattern] = Field(min_length=1)


class EnvironmentPolicy(Section):
    """Per-environment handling of risk tiers, applied before the rules."""

    description: str = ""
    approval_tiers: list[Tier] = Field(default_factory=list)
    deny_tiers: list[Tier] = Field(default_factory=list)


# --------------------------------------------------------------------------------------- rules


class ObligationSpec(Section):
    """Something the caller must do when it dispatches a call a rule let through."""

    kind: Name
    params: dict[str, JsonValue] = Field(default_factory=dict)


class Rule(Section):
    """One rule: where it applies (tools, tiers, environments, tasks), a condition, an outcome."""

    id: RuleId
    description: str = ""
    tools: list[ToolPattern] | None = Field(default=None, min_length=1)
    tiers: list[Tier] | None = Field(default=None, min_length=1)
    environments: list[EnvironmentName] | None = Field(default=None, min_length=1)
    tasks: list[Name] | None = Field(default=None, min_length=1)
    when: str | None = Field(default=None, min_length=1, max_length=8192)
    outcome: RuleOutcome
    approvers: Literal[1, 2] | None = None
    group: Name | None = None
    reason: str = Field(default="", max_length=1024)
    obligations: list[ObligationSpec] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _not_builtin(cls, value: str) -> str:
        if value in BUILTIN_RULE_IDS:
            raise ValueError(f"rule id `{value}` is reserved for the gate's own decisions")
        return value

    @model_validator(mode="after")
    def _approval_fields(self) -> Rule:
        if self.outcome != "approval":
            for key in ("approvers", "group"):
                if getattr(self, key) is not None:
                    raise ValueError(f"`{key}` applies only to rules with `outcome: approval`")
        if self.outcome == "deny" and self.obligations:
            raise ValueError("a deny rule cannot carry obligations: nothing is dispatched")
        return self


# ------------------------------------------------------------------------- operational sections


class Decay(Section):
    """Approvals that turn into notifications after ``after`` incident-free approvals."""

    after: int = Field(ge=1)
    tiers: list[Tier] = Field(default_factory=lambda: list[Tier](["write-limited"]))

    @field_validator("tiers")
    @classmethod
    def _never_high_risk(cls, value: list[str]) -> list[str]:
        risky = sorted(set(value) & HIGH_RISK_TIERS)
        if risky:
            raise ValueError(f"approvals of tier `{risky[0]}` never decay")
        return value


class Approvals(Section):
    """Who approves, how fast, and how many approvals may wait per agent."""

    timeout: Duration = timedelta(minutes=15)
    groups: dict[Name, list[Annotated[str, Field(min_length=1)]]] = Field(default_factory=dict)
    default_group: Name | None = None
    critical_tiers: list[Tier] = Field(default_factory=lambda: list[Tier](["destructive"]))
    max_pending_per_agent: int = Field(default=3, ge=1)
    decay: Decay | None = None

    @model_validator(mode="after")
    def _default_group_exists(self) -> Approvals:
        if self.default_group is not None and self.default_group not in self.groups:
            raise ValueError(f"`default_group` `{self.default_group}` is not one of `groups`")
        return self


BreakerAction = Literal["pause", "alert"]


class RateSpike(Section):
    """Trip when an agent's call rate exceeds ``factor`` times its baseline within ``window``."""

    enabled: bool = True
    factor: float = Field(default=3.0, gt=1)
    window: Duration = timedelta(seconds=60)
    action: BreakerAction = "pause"


class ConsecutiveFailures(Section):
    """Trip after more than ``threshold`` failed tool calls in a row."""

    enabled: bool = True
    threshold: int = Field(default=5, ge=1)
    action: BreakerAction = "pause"


class UnusualSequence(Section):
    """A tool never before called in this task type: the call needs approval (or is denied)."""

    enabled: bool = True
    action: Literal["approval", "deny", "alert"] = "approval"


class DataVolume(Section):
    """Trip when a tool's output exceeds ``factor`` times its normal size."""

    enabled: bool = True
    factor: float = Field(default=10.0, gt=1)
    action: BreakerAction = "pause"


class ApprovalBacklog(Section):
    """Trip when an agent has more pending approvals than ``approvals.max_pending_per_agent``."""

    enabled: bool = True
    action: BreakerAction = "pause"


class Breakers(Section):
    """Circuit-breaker thresholds; baselines are learned only after ``warmup_calls`` calls."""

    rate_spike: RateSpike = Field(default_factory=RateSpike)
    consecutive_failures: ConsecutiveFailures = Field(default_factory=ConsecutiveFailures)
    unusual_sequence: UnusualSequence = Field(default_factory=UnusualSequence)
    data_volume: DataVolume = Field(default_factory=DataVolume)
    approval_backlog: ApprovalBacklog = Field(default_factory=ApprovalBacklog)
    warmup_calls: int = Field(default=20, ge=0)
    floor_calls_per_window: int = Field(default=10, ge=1)
    floor_output_bytes: int = Field(default=65536, ge=1)


class RedactionRules(Section):
    """Field paths removed, or replaced by keyed hashes, before anything is stored."""

    remove: list[FieldPath] = Field(default_factory=list)
    hash: list[FieldPath] = Field(default_factory=list)


class Redaction(RedactionRules):
    """Masking applied to every entry, plus per-tool additions and secret detection."""

    detect_secrets: bool = True
    tools: dict[ToolName, RedactionRules] = Field(default_factory=dict)


class Retention(Section):
    """How long payloads are kept; leaf hashes are kept for ever."""

    default: Duration = timedelta(days=180)
    high_risk: Duration = Field(default=timedelta(days=3 * 365), alias="high-risk")


class BreakglassScope(Section):
    """What a break-glass override may cover; empty lists cover nothing."""

    agents: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    tools: list[ToolPattern] = Field(default_factory=list)
    tiers: list[Tier] = Field(default_factory=list)


class Breakglass(Section):
    """Which operators may override DENY/APPROVAL, for what, and for how long at most."""

    operators: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    scope: BreakglassScope = Field(default_factory=BreakglassScope)
    max_duration: Duration = timedelta(hours=1)


class SandboxLimits(Section):
    """Caps for one sandboxed job; every field left out keeps the default below it."""

    wall_time: Duration | None = None
    output_bytes: int | None = Field(default=None, ge=1)
    memory_mb: int | None = Field(default=None, ge=1)
    cpu_seconds: int | None = Field(default=None, ge=1)
    processes: int | None = Field(default=None, ge=1)
    tmp_mb: int | None = Field(default=None, ge=1)
    allow_degraded: bool | None = None


class Sandbox(Section):
    """Defaults for every code-execution tool, and per-tool overrides."""

    defaults: SandboxLimits = Field(
        default_factory=lambda: SandboxLimits(
            wall_time=timedelta(seconds=30),
            output_bytes=1_048_576,
            memory_mb=256,
            cpu_seconds=30,
            processes=32,
            tmp_mb=64,
            allow_degraded=False,
        )
    )
    tools: dict[ToolName, SandboxLimits] = Field(default_factory=dict)


class Egress(Section):
    """Domains sandboxed jobs may reach through the egress proxy (none unless listed)."""

    default: list[DomainPattern] = Field(default_factory=list)
    tools: dict[ToolName, list[DomainPattern]] = Field(default_factory=dict)
    allow_private_addresses: bool = False
    max_bytes_out: int = Field(default=10_485_760, ge=0)


class CredentialSpec(Section):
    """A credential a tool needs: a secret name (never its value), scope and environments."""

    secret: Name
    scope: str = Field(default="", max_length=256)
    environments: list[EnvironmentName] = Field(
        default_factory=lambda: list[EnvironmentName](["staging", "production"])
    )
    ttl: Duration = timedelta(minutes=5)


class Credentials(Section):
    """Per-tool credentials handed out by the broker only against a PERMIT or a token."""

    tools: dict[ToolName, CredentialSpec] = Field(default_factory=dict)


# ------------------------------------------------------------------------------------ document


class Document(Section):
    """A whole policy file."""

    version: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    default: Literal["deny", "approval"] = "deny"
    mode: Mode = "enforce"
    strict: bool = False
    tools: dict[ToolName, Tool] = Field(min_length=1)
    tasks: dict[Name, Task] = Field(min_length=1)
    environments: dict[EnvironmentName, EnvironmentPolicy]
    rules: list[Rule] = Field(default_factory=list)
    data: dict[Identifier, list[Scalar]] = Field(default_factory=dict)
    approvals: Approvals = Field(default_factory=Approvals)
    breakers: Breakers = Field(default_factory=Breakers)
    redaction: Redaction = Field(default_factory=Redaction)
    retention: Retention = Field(default_factory=Retention)
    breakglass: Breakglass = Field(default_factory=Breakglass)
    sandbox: Sandbox = Field(default_factory=Sandbox)
    egress: Egress = Field(default_factory=Egress)
    credentials: Credentials = Field(default_factory=Credentials)

    @field_validator("environments")
    @classmethod
    def _required_environments(
        cls, value: dict[str, EnvironmentPolicy]
    ) -> dict[str, EnvironmentPolicy]:
        missing = [name for name in REQUIRED_ENVIRONMENTS if name not in value]
        if missing:
            raise ValueError(
                f"environment `{missing[0]}` must be declared (it may be empty: `{{}}`)"
            )
        return value

    @field_validator("data")
    @classmethod
    def _homogeneous_data(cls, value: dict[str, list[Scalar]]) -> dict[str, list[Scalar]]:
        for name, items in value.items():
            kinds = {_kind(item) for item in items}
            if len(kinds) > 1:
                raise ValueError(f"data list `{name}` mixes {' and '.join(sorted(kinds))} values")
            for item in items:
                if isinstance(item, float) and not math.isfinite(item):
                    raise ValueError(f"data list `{name}` holds a non-finite number")
        return value


def _kind(value: Scalar) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    return "number"
