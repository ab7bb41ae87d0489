"""Gate plain Python tools: a decorator and a context manager, sync and async.

The function runs only after a PERMIT for exactly the arguments it is called with; otherwise the
caller gets ``Denied``, ``ApprovalPending`` or ``GateUnavailable`` and the function is not called.
Afterwards its outcome (success or failure, output size and summary) is reported to the gate,
which feeds breakers and taint::

    guard = Guard(InProcessTransport(gate, approvals=service), SessionHandle("fin-1", session_id))

    @guard.tool()
    def transfer_funds(amount: float, to_account: str) -> str:
        return bank.transfer(amount, to_account)

    transfer_funds(amount=10.0, to_account="acc-1")                      # PERMIT: runs
    transfer_funds(5000.0, "acc-9", clearance=CallOptions(approval_token=token))   # after approval

    with guard.call("send_email", {"to": "a@b.example"}) as call:         # any block of code
        call.output = mailer.send("a@b.example")

A decision with a ``sandbox`` obligation is honoured or refused, never ignored: tools declared
with ``job=True`` return a :class:`clearance.sandbox.Job` that the guard runs in the sandbox
(the caller gets the ``JobResult``); any other tool raises ``SandboxRequired``.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from clearance.errors import ConfigError, RequestError
from clearance.integrations.errors import SandboxRequired
from clearance.integrations.mapping import (
    ApprovalLink,
    SessionHandle,
    build_request,
    result_of,
    sandbox_obligation,
    sandbox_plan,
)
from clearance.integrations.transport import Transport, authorize, report
from clearance.model.decision import Decision
from clearance.sandbox import Job, JobResult, Sandbox

P = ParamSpec("P")
R = TypeVar("R")

OPTIONS_KWARG = "clearance"


@dataclass(frozen=True, slots=True)
class CallOptions:
    """Per-call extras a caller passes as ``clearance=CallOptions(...)`` to a guarded tool."""

    approval_token: str | None = None
    idempotency_key: str | None = None
    target: str | None = None
    reasoning: str | None = None


class GuardedCall:
    """A call the gate permitted; set ``output`` in the ``with`` block to have it reported."""

    def __init__(self, decision: Decision, args: dict[str, Any]) -> None:
        self.decision = decision
        self.args = args
        self.output: Any = None


class Guard:
    """Gates tools for one trusted session through one transport."""

    def __init__(
        self,
        transport: Transport,
        session: SessionHandle,
        *,
        approval_url: ApprovalLink | None = None,
        approval_wait_s: float = 0.0,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.transport = transport
        self.session = session
        self.approval_url = approval_url
        self.approval_wait_s = approval_wait_s
        self._sandbox = sandbox

    # the decision ---------------------------------------------------------------------------
    def authorize(
        self, tool: str, args: Mapping[str, Any], options: CallOptions | None = None
    ) -> Decision:
        """The PERMIT for this call, or the ``ToolRefused`` that says why it may not run."""
        opts = options or CallOptions()
        request = build_request(
            self.session,
            tool,
            args,
            target=opts.target,
            reasoning=opts.reasoning,
            idempotency_key=opts.idempotency_key,
            approval_token=opts.approval_token,
        )
        return authorize(
            self.transport, request, approval_url=self.approval_url, wait_s=self.approval_wait_s
        )

    def record(
        self, decision: Decision, *, output: Any = None, error: BaseException | None = None
    ) -> None:
        """Report the outcome of a permitted call."""
        result = result_of(
            decision,
            success=error is None,
            output=output,
            error=None if error is None else f"{type(error).__name__}: {error}",
        )
        report(self.transport, result, agent_id=self.session.agent_id)

    # context managers -----------------------------------------------------------------------
    @contextmanager
    def call(
        self, tool: str, args: Mapping[str, Any], options: CallOptions | None = None
    ) -> Iterator[GuardedCall]:
        """Run the ``with`` block only if the gate permits ``tool(args)``; report how it went."""
        decision = self.authorize(tool, args, options)
        if sandbox_obligation(decision) is not None:
            raise SandboxRequired(tool, decision)
        call = GuardedCall(decision, dict(args))
        try:
            yield call
        except BaseException as exc:
            self.record(decision, error=exc)
            raise
        self.record(decision, output=call.output)

    @asynccontextmanager
    async def acall(
        self, tool: str, args: Mapping[str, Any], options: CallOptions | None = None
    ) -> AsyncIterator[GuardedCall]:
        """``call`` for asyncio: the gate is asked from a worker thread."""
        decision = await asyncio.to_thread(self.authorize, tool, args, options)
        if sandbox_obligation(decision) is not None:
            raise SandboxRequired(tool, decision)
        call = GuardedCall(decision, dict(args))
        try:
            yield call
        except BaseException as exc:
            await asyncio.to_thread(self.record, decision, error=exc)
            raise
        await asyncio.to_thread(self.record, decision, output=call.output)

    # the decorator --------------------------------------------------------------------------
    def tool(
        self, name: str | None = None, *, job: bool = False
    ) -> Callable[[Callable[P, R]], Callable[..., Any]]:
        """Decorate a function (or coroutine function) so every call goes through the gate.

        The gated arguments are the call's arguments bound to the signature, defaults included, so
        a default can no more slip past policy than an explicit value. ``job=True`` marks a tool
        that returns a sandbox ``Job``: the guard runs it in the sandbox and returns the result.
        """

        def decorate(fn: Callable[P, R]) -> Callable[..., Any]:
            signature = inspect.signature(fn)
            if OPTIONS_KWARG in signature.parameters:
                raise ConfigError(
                    f"`{fn.__qualname__}` has a parameter named `{OPTIONS_KWARG}`",
                    hint="that keyword carries the execution token and idempotency key; rename it",
                )
            tool_name = name or fn.__name__
            if inspect.iscoroutinefunction(fn):
                return self._async_wrapper(fn, tool_name, signature, job=job)
            return self._sync_wrapper(fn, tool_name, signature, job=job)

        return decorate

    def _sync_wrapper(
        self, fn: Callable[..., Any], tool: str, signature: inspect.Signature, *, job: bool
    ) -> Callable[..., Any]:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            options = kwargs.pop(OPTIONS_KWARG, None)
            bound = _bind(signature, tool, args, kwargs)
            decision = self.authorize(tool, _gated_args(bound), options)
            _check_sandbox(tool, decision, job=job)
            try:
                output = fn(*bound.args, **bound.kwargs)
                if job:
                    output = self._run_job(tool, decision, output)
            except BaseException as exc:
                self.record(decision, error=exc)
                raise
            self.record(decision, output=_reported(output))
            return output

        return guarded

    def _async_wrapper(
        self,
        fn: Callable[..., Awaitable[Any]],
        tool: str,
        signature: inspect.Signature,
        *,
        job: bool,
    ) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(fn)
        async def guarded(*args: Any, **kwargs: Any) -> Any:
            options = kwargs.pop(OPTIONS_KWARG, None)
            bound = _bind(signature, tool, args, kwargs)
            decision = await asyncio.to_thread(self.authorize, tool, _gated_args(bound), options)
            _check_sandbox(tool, decision, job=job)
            try:
                output = await fn(*bound.args, **bound.kwargs)
                if job:
                    output = await asyncio.to_thread(self._run_job, tool, decision, output)
            except BaseException as exc:
                await asyncio.to_thread(self.record, decision, error=exc)
                raise
            await asyncio.to_thread(self.record, decision, output=_reported(output))
            return output

        return guarded

    # the sandbox ----------------------------------------------------------------------------
    @property
    def sandbox(self) -> Sandbox:
        """The sandbox jobs run in (created on first use; it checks a backend really works)."""
        if self._sandbox is None:
            self._sandbox = Sandbox()
        return self._sandbox

    def _run_job(self, tool: str, decision: Decision, job: object) -> JobResult:
        if not isinstance(job, Job):
            raise RequestError(
                f"`{tool}` is declared with job=True but returned {type(job).__name__}, not a Job"
            )
        obligation = sandbox_obligation(decision)
        plan = sandbox_plan(obligation) if obligation is not None else None
        return self.sandbox.run(
            job,
            plan.limits if plan else None,
            plan.egress if plan else None,
            owner=self.session.agent_id,
        )


def _bind(
    signature: inspect.Signature, tool: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> inspect.BoundArguments:
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise RequestError(f"bad arguments for `{tool}`: {exc}") from exc
    bound.apply_defaults()
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_POSITIONAL and bound.arguments.get(param.name):
            raise RequestError(
                f"`{tool}` got extra positional arguments, which have no names to check",
                hint="pass them by keyword",
            )
    return bound


def _gated_args(bound: inspect.BoundArguments) -> dict[str, Any]:
    """Named arguments as the gate sees them; ``**kwargs`` spread into the top level."""
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is not inspect.Parameter.VAR_POSITIONAL:
            out[name] = value
    return out


def _check_sandbox(tool: str, decision: Decision, *, job: bool) -> None:
    if sandbox_obligation(decision) is not None and not job:
        raise SandboxRequired(tool, decision)


def _reported(output: Any) -> Any:
    if isinstance(output, JobResult):
        return {"exit_code": output.exit_code, "stopped": output.stopped, "stdout": output.stdout}
    return output
