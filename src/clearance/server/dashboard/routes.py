"""The operator dashboard: server-rendered pages, plain forms, a little script.

Every page works without JavaScript (forms post and redirect back); ``static/dashboard.js`` only
adds the expiry countdowns and refreshes the live feed. Every state-changing form carries the
session's CSRF token in a hidden ``csrf_token`` field, checked by ``Authorizer.operator``; the
login form, which has no session yet, uses a double-submit cookie instead.

Pages: ``/approvals`` (pending with context, batch, second approver), ``/feed`` (live decisions
with filters), ``/charts`` (outcomes over time per surface), ``/agents`` (state and kill switch),
``/review`` (access review findings with suggested diffs, approval fatigue per approver and rule,
sign-off), ``/policy`` (versions and activations; an admin uploads a policy, sees how it would have decided
recent traffic next to what was decided, and activates it by digest), ``/audit`` (verification
status, receipt lookup). An approval's own page shows where each argument value came from.
"""

# No `from __future__ import annotations` here: FastAPI must evaluate the route annotations,
# which use dependency aliases local to `router()`.

import hmac
import json
import secrets
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, File, Form, Query, UploadFile
from fastapi import Request as HttpRequest
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from clearance.approvals.service import ApprovalService
from clearance.control.killswitch import KillSwitch
from clearance.control.operator import Operator as ControlOperator
from clearance.control.scope import Scope
from clearance.errors import ClearanceError
from clearance.gate.fatigue import fatigue_since
from clearance.gate.review import DEFAULT_DAYS, AccessReview, review_gate, sign_off
from clearance.model.decision import Outcome
from clearance.model.session import Environment as SessionEnvironment
from clearance.server.authorize import CSRF_FIELD, Permission, permissions_of
from clearance.server.dashboard.provenance import value_origins
from clearance.server.identity import OperatorPrincipal
from clearance.server.operator_api import (
    approval_json,
    approval_operator,
    archive_policy,
    archived,
    bundle_diff,
    dry_run,
    login,
    search_decisions,
    set_session_cookie,
)
from clearance.server.wire import ApiError, ErrorCode, status_of

if TYPE_CHECKING:
    from clearance.server.app import ServerContext

LOGIN_CSRF_COOKIE = "clearance_login_csrf"
_OUTCOMES = [o.value for o in Outcome]

_templates = Environment(
    loader=PackageLoader("clearance.server.dashboard", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def login_url(next_path: str) -> str:
    """The login page, returning to ``next_path`` (a local path only) afterwards."""
    return "/login?" + urlencode({"next": _local(next_path)})


def _local(path: str) -> str:
    # Only same-site absolute paths: never `//host` or a scheme, so `next` cannot redirect away.
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/approvals"
    return path


def render(name: str, *, http_status: int = 200, **values: Any) -> HTMLResponse:
    """Render a template to an HTML response."""
    return HTMLResponse(_templates.get_template(name).render(**values), status_code=http_status)


def error_page(status: int, code: str, message: str, hint: str | None) -> HTMLResponse:
    """An HTML error page for dashboard routes (the API answers JSON instead)."""
    return render(
        "error.html",
        http_status=status,
        status=status,
        code=code,
        message=message,
        hint=hint,
        me=None,
    )


def mount(app: FastAPI, ctx: "ServerContext") -> None:
    """Add the dashboard routes and its static files to ``app``."""
    static = resources.files("clearance.server.dashboard").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.include_router(_router(ctx))


def _after(path: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'msg': message})}", status_code=303)


def _after_error(path: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'error': message})}", status_code=303)


def _countdown(expires_at: str, now: datetime) -> int:
    expires = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    return max(0, int((expires - now).total_seconds()))


def _svg_chart(rows: list[dict[str, Any]], now: datetime, buckets: int = 12) -> dict[str, Any]:
    """Per tool: outcome counts in ``buckets`` five-minute slots ending now, as bar geometry."""
    slot = timedelta(minutes=5)
    start = now - slot * buckets
    per_tool: dict[str, list[Counter[str]]] = defaultdict(
        lambda: [Counter() for _ in range(buckets)]
    )
    for row in rows:
        at = datetime.fromisoformat(str(row["time"]).replace("Z", "+00:00"))
        if at < start:
            continue
        index = min(buckets - 1, int((at - start) / slot))
        per_tool[str(row["tool"])][index][str(row["outcome"])] += 1
    charts = []
    for tool, counts in sorted(per_tool.items()):
        peak = max((sum(c.values()) for c in counts), default=1) or 1
        bars = []
        for i, counter in enumerate(counts):
            y = 100.0
            for outcome in _OUTCOMES:
                height = 100.0 * counter[outcome] / peak
                if height:
                    y -= height
                    bars.append(
                        {"x": i * 20 + 2, "y": round(y, 2), "h": round(height, 2), "o": outcome}
                    )
        totals = Counter[str]()
        for counter in counts:
            totals.update(counter)
        charts.append({"tool": tool, "bars": bars, "totals": dict(totals), "peak": peak})
    return {"charts": charts, "width": buckets * 20, "minutes": buckets * 5}


def _router(ctx: "ServerContext") -> APIRouter:
    web = APIRouter(include_in_schema=False)
    auth = ctx.authorizer
    gate = ctx.gate
    viewer = Annotated[OperatorPrincipal, Depends(auth.operator(Permission.READ, page=True))]
    approver = Annotated[OperatorPrincipal, Depends(auth.operator(Permission.APPROVE, page=True))]
    killer = Annotated[
        OperatorPrincipal, Depends(auth.operator(Permission.ENGAGE_KILL_SWITCH, page=True))
    ]
    admin = Annotated[OperatorPrincipal, Depends(auth.operator(Permission.ADMIN, page=True))]

    def page(
        name: str, me: OperatorPrincipal, *, http_status: int = 200, **values: Any
    ) -> HTMLResponse:
        return render(
            name,
            http_status=http_status,
            me=me,
            csrf=me.csrf_token,
            csrf_field=CSRF_FIELD,
            can=permissions_of(me.roles),
            Permission=Permission,
            **values,
        )

    def refused(me: OperatorPrincipal, exc: ClearanceError, prefix: str = "") -> HTMLResponse:
        status = status_of(exc)
        return page(
            "error.html",
            me,
            http_status=status,
            status=status,
            code=exc.code,
            message=prefix + exc.message,
            hint=exc.hint,
        )

    def approvals() -> ApprovalService:
        if ctx.services.approvals is None:
            raise ApiError(
                501, ErrorCode.NOT_AVAILABLE, "approvals are not configured on this gate"
            )
        return ctx.services.approvals

    # login ----------------------------------------------------------------------------------
    @web.get("/login")
    async def login_form(next: str = "/approvals", error: str | None = None) -> HTMLResponse:
        token = secrets.token_urlsafe(32)
        response = render(
            "login.html",
            http_status=401 if error else 200,
            me=None,
            next=_local(next),
            error=error,
            login_csrf=token,
            csrf_field=CSRF_FIELD,
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            max_age=900,
            httponly=True,
            secure=ctx.settings.tls,
            samesite="strict",
            path="/login",
        )
        return response

    @web.post("/login")
    async def login_submit(
        request: HttpRequest,
        username: Annotated[str, Form(max_length=128)],
        password: Annotated[str, Form(max_length=1024)],
        csrf_token: Annotated[str, Form(max_length=128)] = "",
        totp: Annotated[str, Form(max_length=16)] = "",
        next: Annotated[str, Form(max_length=2048)] = "/approvals",
    ) -> Response:
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(expected, csrf_token):
            raise ApiError(
                403,
                ErrorCode.CSRF_FAILED,
                "the login form expired or was not sent by this site",
                "reload the login page and try again",
            )
        try:
            result = login(ctx, request, username, password, totp or None)
        except ApiError as exc:
            if exc.status != 401:
                raise
            return RedirectResponse(
                login_url(next) + "&error=" + quote("wrong user name, password or code"),
                status_code=303,
            )
        response = RedirectResponse(_local(next), status_code=303)
        set_session_cookie(ctx, response, result.cookie)
        response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
        return response

    @web.post("/logout")
    async def logout(me: viewer) -> Response:
        ctx.identity.logout(me)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie("clearance_session", path="/")
        return response

    @web.get("/")
    async def home() -> Response:
        return RedirectResponse("/approvals", status_code=303)

    # approvals ------------------------------------------------------------------------------
    @web.get("/approvals")
    async def approvals_page(me: viewer, msg: str | None = None) -> HTMLResponse:
        now = gate.clock.now()
        items = [approval_json(v) for v in approvals().list_pending(approval_operator(me), now)]
        for item in items:
            item["seconds_left"] = _countdown(item["expires_at"], now)
            item["args_text"] = json.dumps(item["request"].get("args", {}), indent=2)
        return page("approvals.html", me, items=items, msg=msg)

    @web.get("/approvals/{approval_id}")
    async def approval_page(approval_id: str, me: viewer) -> HTMLResponse:
        item = approval_json(approvals().show(approval_id, approval_operator(me)))
        item["seconds_left"] = _countdown(item["expires_at"], gate.clock.now())
        args = item["request"].get("args", {})
        item["args_text"] = json.dumps(args, indent=2)
        origins = value_origins(gate.store, item["session_id"], args)
        return page("approval.html", me, item=item, origins=origins)

    def vote(approval_id: str, me: OperatorPrincipal, action: str, comment: str) -> Response:
        service = approvals()
        who, now = approval_operator(me), gate.clock.now()
        try:
            if action == "approve":
                view = service.approve(approval_id, who, now, comment=comment or None)
            elif action == "deny":
                view = service.deny(approval_id, who, now, comment=comment or None)
            else:
                view = service.explain(approval_id, who, comment or "please explain", now)
        except ClearanceError as exc:
            return refused(me, exc)
        row = view.row
        if action == "approve" and row.state == "pending":
            message = (
                f"approval recorded ({len(view.approvers)} of {row.required}); "
                "a second approver is required"
            )
        else:
            message = f"{row.tool}: {action} recorded, request is {row.state}"
        return _after("/approvals", message)

    @web.post("/approvals/batch")
    async def batch_page(
        me: approver,
        action: Annotated[str, Form(pattern="^(approve|deny)$")],
        approval_id: Annotated[list[str], Form(max_length=100)],
    ) -> Response:
        service = approvals()
        decide = service.approve_batch if action == "approve" else service.deny_batch
        try:
            decide(approval_id, approval_operator(me), gate.clock.now())
        except ClearanceError as exc:
            return refused(me, exc, prefix="nothing in the batch was decided: ")
        return _after("/approvals", f"{action} recorded for {len(approval_id)} requests")

    @web.post("/approvals/{approval_id}/{action}")
    async def vote_page(
        approval_id: str,
        action: str,
        me: approver,
        comment: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        if action not in {"approve", "deny", "explain"}:
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no action `{action}`")
        return vote(approval_id, me, action, comment)

    # feed and charts ------------------------------------------------------------------------
    def feed_rows(agent: str | None, tool: str | None, outcome: str | None) -> list[dict[str, Any]]:
        chosen = Outcome(outcome) if outcome in _OUTCOMES else None
        return search_decisions(
            ctx, agent_id=agent or None, tool=tool or None, outcome=chosen, limit=100
        )

    @web.get("/feed")
    async def feed_page(
        me: viewer,
        agent: Annotated[str | None, Query(max_length=128)] = None,
        tool: Annotated[str | None, Query(max_length=256)] = None,
        outcome: Annotated[str | None, Query(max_length=16)] = None,
    ) -> HTMLResponse:
        filters = {"agent": agent or "", "tool": tool or "", "outcome": outcome or ""}
        return page(
            "feed.html",
            me,
            rows=feed_rows(agent, tool, outcome),
            filters=filters,
            outcomes=_OUTCOMES,
            query=urlencode({k: v for k, v in filters.items() if v}),
        )

    @web.get("/feed/rows")
    async def feed_fragment(
        me: viewer,
        agent: Annotated[str | None, Query(max_length=128)] = None,
        tool: Annotated[str | None, Query(max_length=256)] = None,
        outcome: Annotated[str | None, Query(max_length=16)] = None,
    ) -> HTMLResponse:
        return page("feed_rows.html", me, rows=feed_rows(agent, tool, outcome))

    @web.get("/charts")
    async def charts_page(me: viewer) -> HTMLResponse:
        rows = search_decisions(ctx, agent_id=None, tool=None, outcome=None, limit=5000)
        return page("charts.html", me, outcomes=_OUTCOMES, **_svg_chart(rows, gate.clock.now()))

    # agents and kill switch -----------------------------------------------------------------
    def kill_switch() -> KillSwitch:
        if ctx.services.control is None:
            raise ApiError(
                501, ErrorCode.NOT_AVAILABLE, "the kill switch is not configured on this gate"
            )
        return ctx.services.control

    @web.get("/agents")
    async def agents_page(me: viewer, msg: str | None = None) -> HTMLResponse:
        switch = ctx.services.control
        agents = []
        for record in ctx.identity.records.list_agents():
            stop = switch.stop_for_agent(record.agent_id) if switch is not None else None
            agents.append(
                {
                    "agent_id": record.agent_id,
                    "environment": record.environment,
                    "description": record.description,
                    "disabled": record.disabled_at is not None,
                    "stop": None if stop is None else f"{stop.level}: {stop.reason}",
                    "agent_keys": ctx.identity.records.list_keys(agent_id=record.agent_id),
                }
            )
        stops = [] if switch is None else [s.stop for s in switch.status(history=0).stops]
        return page(
            "agents.html",
            me,
            agents=agents,
            stops=stops,
            environments=[e.value for e in SessionEnvironment],
            msg=msg,
            kill_switch=switch is not None,
        )

    @web.post("/control/{action}")
    async def scope_action(
        action: str,
        me: killer,
        scope: Annotated[str, Form(min_length=1, max_length=300)],
        name: Annotated[str, Form(max_length=256)] = "",
        reason: Annotated[str, Form(min_length=1, max_length=1024)] = "stopped from the dashboard",
    ) -> Response:
        """Halt everything, a tool or an environment (``scope`` is the kind, ``name`` its name),
        or resume any stop in force (``scope`` is its key)."""
        if action not in {"halt", "resume"}:
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no action `{action}`")
        switch = kill_switch()
        who = ControlOperator(me.username, frozenset(r.value for r in me.roles))
        try:
            if action == "halt":
                target = Scope.parse(scope if scope == "all" else f"{scope}:{name.strip()}")
                await run_in_threadpool(
                    partial(switch.halt, target, operator=who, reason=reason, now=gate.clock.now())
                )
            else:
                target = Scope.parse(scope)
                switch.resume(target, operator=who, reason=reason, now=gate.clock.now())
        except ClearanceError as exc:
            return refused(me, exc)
        return _after("/agents", f"{target.key}: {action} recorded")

    @web.post("/agents/{agent_id}/{action}")
    async def agent_action(
        agent_id: str,
        action: str,
        me: killer,
        reason: Annotated[str, Form(min_length=1, max_length=1024)] = "stopped from the dashboard",
    ) -> Response:
        if action not in {"halt", "resume"}:
            raise ApiError(404, ErrorCode.NOT_FOUND, f"no action `{action}`")
        switch = kill_switch()
        who = ControlOperator(me.username, frozenset(r.value for r in me.roles))
        try:
            if action == "halt":  # halt hooks do I/O (lease revocation): off the event loop
                await run_in_threadpool(
                    partial(
                        switch.halt,
                        Scope.agent(agent_id),
                        operator=who,
                        reason=reason,
                        now=gate.clock.now(),
                    )
                )
            else:
                switch.resume(
                    Scope.agent(agent_id), operator=who, reason=reason, now=gate.clock.now()
                )
        except ClearanceError as exc:
            return refused(me, exc)
        return _after("/agents", f"{agent_id}: {action} recorded")

    # policy and audit -----------------------------------------------------------------------
    @web.get("/policy")
    async def policy_page(
        me: viewer, msg: str | None = None, error: str | None = None
    ) -> HTMLResponse:
        active = gate.store.active_digest()
        return page(
            "policy.html",
            me,
            versions=gate.store.list_bundles(),
            activations=gate.store.activations(),
            active=active,
            msg=msg,
            error=error,
        )

    @web.post("/policy/upload")
    async def policy_upload(
        me: admin,
        policy_file: Annotated[UploadFile | None, File()] = None,
        policy_text: Annotated[str, Form(max_length=4 * 1024 * 1024)] = "",
    ) -> Response:
        if policy_file is not None and policy_file.filename:
            source_name = policy_file.filename
            raw = await policy_file.read()
        else:
            source_name, raw = "dashboard.yaml", policy_text.encode("utf-8")
        if not raw.strip():
            return _after_error("/policy", "choose a policy file or paste the policy text")
        try:
            bundle = archive_policy(ctx, raw.decode("utf-8"), source_name[:256])
        except UnicodeDecodeError:
            return _after_error("/policy", "the policy file is not UTF-8 text")
        except ClearanceError as exc:
            return page(
                "policy_error.html",
                me,
                http_status=status_of(exc),
                source_name=source_name,
                error=str(exc),
            )
        return RedirectResponse(f"/policy/candidates/{bundle.digest}", status_code=303)

    @web.get("/policy/candidates/{digest}")
    async def policy_candidate(digest: str, me: admin) -> HTMLResponse:
        candidate = archived(ctx, digest)
        active = gate.bundle
        shadow = await run_in_threadpool(dry_run, ctx, candidate, ctx.settings.shadow_sample)
        return page(
            "policy_candidate.html",
            me,
            candidate=candidate,
            active=active,
            shadow=shadow,
            diff=bundle_diff(active, candidate),
        )

    @web.post("/policy/activate")
    async def policy_activate(
        me: admin, digest: Annotated[str, Form(pattern=r"^sha256:[0-9a-f]{64}$")]
    ) -> Response:
        bundle = archived(ctx, digest)
        try:
            gate.activate(bundle, by=me.username)
        except ClearanceError as exc:
            return refused(me, exc)
        return _after("/policy", f"activated {bundle.digest}")

    @web.get("/audit")
    async def audit_page(
        me: viewer,
        decision_id: Annotated[str | None, Query(max_length=64)] = None,
    ) -> HTMLResponse:
        audit = ctx.services.audit
        verification = (
            None
            if audit is None
            else await run_in_threadpool(audit.verification_status, gate.clock.now())
        )
        found = None
        if decision_id:
            record = gate.store.get_decision(decision_id.strip())
            found = (
                None
                if record is None
                else {
                    "decision": record.decision,
                    "request": record.request,
                    "receipt": json.dumps(record.decision.get("receipt"), indent=2),
                }
            )
        return page(
            "audit.html",
            me,
            verification=verification,
            decision_id=decision_id or "",
            found=found,
        )

    # access review and approval fatigue -----------------------------------------------------
    def reviewed(days: int) -> tuple[AccessReview | None, str]:
        try:
            return review_gate(gate, days=days), ""
        except ClearanceError as exc:
            return None, exc.message

    @web.get("/review")
    async def review_page(
        me: viewer,
        days: Annotated[int, Query(ge=1, le=3650)] = DEFAULT_DAYS,
        msg: str | None = None,
        error: str | None = None,
    ) -> HTMLResponse:
        review, problem = await run_in_threadpool(reviewed, days)
        fatigue = None
        if ctx.services.approvals is not None:
            audit = ctx.services.audit
            since = gate.clock.now() - timedelta(days=days)
            report = await run_in_threadpool(
                partial(
                    fatigue_since,
                    ctx.services.approvals.store,
                    None if audit is None else audit.log.storage,
                    since=since,
                )
            )
            fatigue = {
                "approvers": sorted(report.approvers.values(), key=lambda s: (not s.flags, s.key)),
                "rules": sorted(report.rules.values(), key=lambda s: (not s.flags, s.key)),
            }
        return page(
            "review.html",
            me,
            days=days,
            review=review,
            problem=problem,
            fatigue=fatigue,
            msg=msg,
            error=error,
            can_sign=Permission.ADMIN in permissions_of(me.roles),
        )

    @web.post("/review/sign-off")
    async def review_sign_off(
        me: admin,
        days: Annotated[int, Form(ge=1, le=3650)],
        digest: Annotated[str, Form(max_length=80)],
    ) -> Response:
        review, problem = await run_in_threadpool(reviewed, days)
        if review is None:
            return _after_error("/review", problem)
        if review.digest != digest:
            # New decisions changed the report since it was shown: sign only what was read.
            return _after_error("/review", "the report changed since you opened it; review again")
        try:
            sign_off(gate.audit, review, operator=me.username)
        except ClearanceError as exc:
            return refused(me, exc)
        return RedirectResponse(
            f"/review?{urlencode({'days': days, 'msg': f'signed off report {digest}'})}",
            status_code=303,
        )

    return web
