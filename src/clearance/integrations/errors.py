"""Why an adapter did not run a tool: one family, raised instead of calling the function.

::

    ClearanceError
    └── ToolRefused                 the tool was not called; ``rule`` and ``reason`` say why
        ├── Denied                  a DENY decision, or a human denied the approval
        ├── ApprovalPending         a human must approve first (id, expiry, dashboard link)
        ├── GateUnavailable         SILENCE, or the gate could not be reached: fail closed
        ├── SandboxRequired         the decision demands the sandbox and the tool cannot run in it
        └── UnknownCaller           no session the authenticated caller owns: nothing was decided
    ConfigError
    ├── UngatedToolError            an adapter was asked to protect a tool it cannot gate
    └── PermissionRulesError        Claude Code permission rules with no policy translation

Every adapter maps these to its stack's own refusal (a tool error, a hook denial, an exception),
always carrying the rule and reason so the model can re-plan.
"""

from __future__ import annotations

from clearance.errors import ClearanceError, ConfigError
from clearance.model.decision import Decision


class ToolRefused(ClearanceError):  # noqa: N818 - the names adapters' users catch
    """The tool was not called. ``decision`` is the gate's answer when there was one."""

    code = "tool_refused"

    def __init__(
        self,
        message: str,
        *,
        rule: str,
        reason: str,
        decision: Decision | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.rule = rule
        self.reason = reason
        self.decision = decision


class Denied(ToolRefused):
    """A DENY decision (or a human's denial of the approval request)."""

    code = "denied"

    def __init__(self, *, rule: str, reason: str, decision: Decision | None = None) -> None:
        super().__init__(
            f"denied by `{rule}`: {reason}", rule=rule, reason=reason, decision=decision
        )


class ApprovalPending(ToolRefused):
    """A human must approve this exact call; retry it unchanged with the execution token."""

    code = "approval_pending"

    def __init__(
        self, *, approval_id: str, expires_at: str, url: str | None, decision: Decision
    ) -> None:
        where = f" at {url}" if url else ""
        super().__init__(
            f"approval `{approval_id}` pending{where}, expires {expires_at}",
            rule=decision.rule,
            reason=decision.reason,
            decision=decision,
            hint="retry the identical call with the execution token once it is approved",
        )
        self.approval_id = approval_id
        self.expires_at = expires_at
        self.url = url


class GateUnavailable(ToolRefused):
    """The gate could not decide (SILENCE) or could not be reached; nothing was dispatched."""

    code = "gate_unavailable"

    def __init__(
        self, reason: str, *, rule: str = "unavailable", decision: Decision | None = None
    ) -> None:
        super().__init__(
            f"the gate did not permit the call ({rule}): {reason}",
            rule=rule,
            reason=reason,
            decision=decision,
        )


class SandboxRequired(ToolRefused):
    """The decision carries a sandbox obligation but the tool is a plain in-process function."""

    code = "sandbox_required"

    def __init__(self, tool: str, decision: Decision) -> None:
        super().__init__(
            f"the decision for `{tool}` requires the sandbox and this tool cannot run in it",
            rule=decision.rule,
            reason="the call must run in the sandbox",
            decision=decision,
            hint="declare the tool with `job=True` so it returns a sandbox Job instead of running code",
        )


class UngatedToolError(ConfigError):
    """An adapter was asked to protect a tool whose calls it cannot see before they run.

    Raised when the agent is set up, never during a run: an agent holding a tool the gate cannot
    stop must not start, or the gate's guarantee would silently not cover that tool.
    """

    code = "ungated_tool"

    def __init__(self, tool: str, why: str, *, hint: str) -> None:
        super().__init__(f"cannot gate `{tool}`: {why}", hint=hint)
        self.tool = tool


class UnknownCaller(ToolRefused):
    """The caller is authenticated but names no session it owns, so nothing can be decided."""

    code = "unknown_caller"

    def __init__(self, reason: str, *, hint: str | None = None) -> None:
        super().__init__(
            f"no clearance session for this caller: {reason}",
            rule="identity",
            reason=reason,
            hint=hint,
        )


class PermissionRulesError(ConfigError):
    """Claude Code permission rules that cannot be translated into policy; ``problems`` holds each.

    Raised by ``clearance import claude-permissions`` before anything is written: a rule that is
    dropped silently could turn a ``deny`` the user relied on into a permit.
    """

    code = "permission_rules_error"

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        first = problems[0]
        super().__init__(first.message, location=first.location, hint=first.hint)

    def __str__(self) -> str:
        return "\n".join(ConfigError.__str__(p) for p in self.problems)
