"""The approval and break-glass settings a policy declares, as plain typed values.

These are what ``clearance.approvals`` reads; the policy package fills them from the ``approvals:``
and ``breakglass:`` sections of a loaded bundle. Templates are compiled when the settings are
built, so a bad template is a load-time error and never a surprise at approval time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TypeVar

from clearance.approvals.summary import Template, compile_template
from clearance.errors import ConfigError
from clearance.model.tools import RiskTier
from clearance.policy.compile import CompiledPolicy

DEFAULT_TIMEOUT = timedelta(minutes=15)
DEFAULT_TOKEN_TTL = timedelta(minutes=5)
DEFAULT_BACKLOG = 3

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ApprovalSettings:
    """How approvals work under one policy.

    Attributes:
        timeout: how long a request stays pending before it expires into a DENY.
        token_ttl: how long after approval the execution token can be claimed and redeemed.
        groups: approver group name -> operator ids in it.
        default_group: group for rules that name none; None lets any approver decide.
        templates: tool name -> compiled summary template.
        mask_fields: argument names always masked in displays and summaries.
        critical_tiers: tiers that always need two distinct approvers.
        critical_tools: bulk-operation and privilege-changing tools (two approvers).
        decay_after: incident-free approvals after which an approval of a decaying tier becomes
            a notification; None disables decay.
        decay_tiers: tiers that may decay (never write-broad or destructive).
        backlog_threshold: pending approvals per agent above which the agent is paused.
        history: how many of the session's recent decisions the approver sees.
    """

    timeout: timedelta = DEFAULT_TIMEOUT
    token_ttl: timedelta = DEFAULT_TOKEN_TTL
    groups: Mapping[str, frozenset[str]] = field(default_factory=dict)
    default_group: str | None = None
    templates: Mapping[str, Template] = field(default_factory=dict)
    mask_fields: frozenset[str] = frozenset()
    critical_tiers: frozenset[RiskTier] = frozenset({RiskTier.DESTRUCTIVE})
    critical_tools: frozenset[str] = frozenset()
    decay_after: int | None = None
    decay_tiers: frozenset[RiskTier] = frozenset({RiskTier.WRITE_LIMITED})
    backlog_threshold: int = DEFAULT_BACKLOG
    history: int = 10

    def __post_init__(self) -> None:
        for name, span in (("timeout", self.timeout), ("token_ttl", self.token_ttl)):
            if span <= timedelta(0):
                raise ConfigError(f"approvals.{name} must be positive, got {span}")
        if self.decay_after is not None and self.decay_after < 1:
            raise ConfigError(f"approvals.decay.after must be at least 1, got {self.decay_after}")
        risky = sorted(t.value for t in self.decay_tiers if t.is_high_risk)
        if risky:
            raise ConfigError(f"approvals of tier `{risky[0]}` never decay")
        if self.backlog_threshold < 1:
            raise ConfigError("approvals.max_pending_per_agent must be at least 1")
        if self.default_group is not None and self.default_group not in self.groups:
            raise ConfigError(f"approvals.default_group `{self.default_group}` is not a group")

    def decays(self, tier: RiskTier | None) -> bool:
        """True when approvals of ``tier`` may turn into notifications under this policy."""
        return self.decay_after is not None and tier is not None and tier in self.decay_tiers


@dataclass(frozen=True, slots=True)
class BreakGlassGrant:
    """Who may break glass, over what, for how long at most (the policy's ``breakglass:``).

    ``agents`` holds agent ids (``*`` for any), ``tools`` holds tool names or glob patterns and
    ``tiers`` the risk tiers an override may cover; empty sets cover nothing.
    """

    operators: frozenset[str]
    agents: frozenset[str] = frozenset()
    tools: frozenset[str] = frozenset()
    tiers: frozenset[RiskTier] = frozenset()
    max_duration: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.max_duration <= timedelta(0):
            raise ConfigError("breakglass.max_duration must be positive")


@dataclass(frozen=True, slots=True)
class BreakGlassSettings:
    """The policy's ``breakglass:`` section; no grants means nobody may break glass."""

    grants: tuple[BreakGlassGrant, ...] = ()


def resolve(source: _T | Callable[[], _T]) -> _T:
    """Settings given as a value or as a provider of the current value (policy reloads)."""
    if callable(source):
        return source()
    return source


def _tiers(names: Iterable[str]) -> frozenset[RiskTier]:
    return frozenset(RiskTier(name) for name in names)


def _masked_arg_names(paths: Iterable[str]) -> frozenset[str]:
    """``args.card.number`` -> ``number``: the argument names the redaction rules cover."""
    names = set()
    for path in paths:
        parts = path.split(".")
        if parts[0] == "args" and len(parts) > 1 and parts[-1] != "*":
            names.add(parts[-1])
    return frozenset(names)


def approval_settings(policy: CompiledPolicy) -> ApprovalSettings:
    """The approval settings a compiled policy declares (``approvals:``, tool summaries, redaction)."""
    doc = policy.document
    section = doc.approvals
    redaction = doc.redaction
    paths = [*redaction.remove, *redaction.hash]
    for rules in redaction.tools.values():
        paths += [*rules.remove, *rules.hash]
    return ApprovalSettings(
        timeout=section.timeout,
        groups={name: frozenset(members) for name, members in section.groups.items()},
        default_group=section.default_group,
        templates={
            name: compile_template(tool.summary, where=f"tools.{name}.summary")
            for name, tool in doc.tools.items()
            if tool.summary
        },
        mask_fields=_masked_arg_names(paths),
        critical_tiers=_tiers(section.critical_tiers),
        decay_after=section.decay.after if section.decay else None,
        decay_tiers=_tiers(section.decay.tiers) if section.decay else frozenset(),
        backlog_threshold=section.max_pending_per_agent,
    )


def breakglass_settings(policy: CompiledPolicy) -> BreakGlassSettings:
    """The break-glass grant a compiled policy declares (``breakglass:``); none without operators."""
    section = policy.document.breakglass
    if not section.operators:
        return BreakGlassSettings()
    return BreakGlassSettings(
        grants=(
            BreakGlassGrant(
                operators=frozenset(section.operators),
                agents=frozenset(section.scope.agents),
                tools=frozenset(section.scope.tools),
                tiers=_tiers(section.scope.tiers),
                max_duration=section.max_duration,
            ),
        )
    )
