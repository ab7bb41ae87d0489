"""The red team's HTTP target: attack a running gate through its agent and operator APIs.

``HttpTarget`` implements ``clearance.gate.redteam.Target`` with nothing but the public API of a
served gate (``clearance serve``), as its real callers use it:

* sessions are opened with **orchestrator keys** (``POST /v1/sessions``), one per environment the
  attack suite opens sessions in (a key works in one environment only);
* every attack agent is **registered and given its own key** by an admin operator
  (``POST /v1/ops/agents``, ``POST /v1/ops/agents/{id}/keys``), so the per-agent breakers never
  hide a case, and decides with that key (``POST /v1/decide``, ``/v1/tokens/redeem``);
* approvals are voted by **operators** logged in with a password (``POST /v1/ops/login``: a
  session cookie plus the CSRF token every write carries), and claimed by the agent
  (``POST /v1/approvals/{id}/status``); halts and resumes go through
  ``POST /v1/ops/control/kill-switch``, which halts everything, an agent, a tool or an
  environment.

Credentials are given explicitly (``Credentials``), never read from a data directory, and checked
before anything is created on the gate (``HttpTarget.connect``): a wrong key or password ends the
run before its first attack. ``close`` revokes every key the run minted and logs the operators
out; the agents stay registered (the API cannot remove them) and every session, decision,
approval vote and halt stays in the gate's audit log, which is why the ``--url`` mode is meant for
a staging gate.

Anything that is not an answer the attacks can judge (the gate unreachable, a 5xx that is not a
decision, a route refused) raises ``RedTeamTargetError``: the run stops, it never passes.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from clearance.approvals.rules import approver_group, required_approvals
from clearance.approvals.settings import approval_settings
from clearance.control.scope import Scope
from clearance.errors import ClearanceError, ConfigError
from clearance.gate.redteam import HALT_REASON, RequestRefusedError
from clearance.model.decision import Decision, Outcome
from clearance.model.request import Request
from clearance.model.result import ActionResult
from clearance.model.session import Environment, Session
from clearance.policy.redteam import Suite

log = logging.getLogger("clearance.integrations.redteam_http")

ORCHESTRATOR_KEYS_ENV = "CLEARANCE_REDTEAM_ORCHESTRATOR_KEYS"
OPERATORS_ENV = "CLEARANCE_REDTEAM_OPERATORS"
PASSWORD_ENV_PREFIX = "CLEARANCE_REDTEAM_PASSWORD_"  # noqa: S105 - a variable name, not a secret
DEFAULT_TIMEOUT_S = 30.0

_DECISION_STATUSES = frozenset({200, 202, 403, 503})
_REFUSED_STATUSES = frozenset({400, 413, 422})
_RETRIES = 5
_APPROVER_ROLES = frozenset({"approver", "admin"})
_USER_AGENT = "clearance-redteam/1"
_NO_AGENT = "-redteam-credential-check"
_CREATE_ORCHESTRATOR = (
    "create one on the gate's host with `clearance users orchestrator-key redteam "
    "--environment {env}` and pass it as `--orchestrator-key {env}=KEY` (or in "
    f"`{ORCHESTRATOR_KEYS_ENV}`)"
)
_CREATE_OPERATOR = (
    "create it on the gate's host with `clearance users add-operator NAME --role admin` "
    "(password on stdin, no TOTP), pass `--operator NAME` and the password in `{env}`"
)


class RedTeamSetupError(ConfigError):
    """The credentials or the target of a ``--url`` run are missing or wrong: nothing was attacked."""

    code = "redteam_setup"


class RedTeamTargetError(ClearanceError):
    """The gate under attack answered something the red team cannot judge; the run stopped."""

    code = "redteam_target_failed"
    exit_code = 2


def password_env(username: str) -> str:
    """The environment variable holding ``username``'s password (``op-bob``: ``..._OP_BOB``)."""
    return PASSWORD_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", username).upper()


@dataclass(frozen=True)
class OperatorLogin:
    """An operator's user name and password (kept out of ``repr``)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Credentials:
    """What a ``--url`` run authenticates with: orchestrator keys per environment, operators."""

    orchestrator_keys: Mapping[Environment, str] = field(repr=False)
    operators: tuple[OperatorLogin, ...]

    @classmethod
    def from_options(
        cls, orchestrator_keys: Iterable[str], operators: Iterable[str], environ: Mapping[str, str]
    ) -> Credentials:
        """Parse ``ENV=KEY`` items and operator names; each password comes from ``environ``.

        Raises ``RedTeamSetupError`` naming the malformed item or the missing variable.
        """
        keys: dict[Environment, str] = {}
        for item in orchestrator_keys:
            env, sep, key = item.partition("=")
            known = {e.value for e in Environment}
            if not sep or env not in known or not key.strip():
                raise RedTeamSetupError(
                    "an orchestrator key must be given as ENV=KEY",
                    hint=f"ENV is one of {', '.join(sorted(known))}, e.g. "
                    "`--orchestrator-key staging=clr_orch_...`",
                )
            keys[Environment(env)] = key.strip()
        logins: list[OperatorLogin] = []
        for name in dict.fromkeys(operators):
            variable = password_env(name)
            password = environ.get(variable, "")
            if not password:
                raise RedTeamSetupError(
                    f"no password for operator `{name}`: `{variable}` is not set",
                    hint=f"export {variable}=... (the operator's dashboard password)",
                )
            logins.append(OperatorLogin(name, password))
        return cls(orchestrator_keys=keys, operators=tuple(logins))


def active_digest(url: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """The digest of the policy the gate at ``url`` decides with, from its ``/readyz``.

    Raises ``RedTeamSetupError`` when the gate cannot be reached or is not ready to decide.
    """
    try:
        with httpx.Client(base_url=url, timeout=timeout, headers=_headers()) as http:
            response = http.get("/readyz")
    except httpx.HTTPError as exc:
        raise RedTeamSetupError(
            f"the gate at {url} could not be reached: {exc}",
            hint="check --url and that `clearance serve` is running there",
        ) from exc
    try:
        body = response.json()
        checks = body["checks"]
        ready = bool(body["ready"])
    except (ValueError, KeyError, TypeError):
        raise RedTeamSetupError(
            f"{url}/readyz answered HTTP {response.status_code} without a readiness report",
            hint="--url must be the base address of a clearance gate (the one `serve` prints)",
        ) from None
    if not ready:
        raise RedTeamSetupError(
            f"the gate at {url} is not ready to decide: {checks}",
            hint="every check must be ok and a policy active before it can be attacked",
        )
    return str(checks["policy"])


def _headers(key: str | None = None) -> dict[str, str]:
    headers = {"User-Agent": _USER_AGENT}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _code(response: httpx.Response) -> str | None:
    """The ``code`` of an error body, or None."""
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("code")) if isinstance(body, dict) else None


def _problem(response: httpx.Response) -> str:
    """``HTTP 403 forbidden: message (hint)`` from an error body, or the status alone."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or "message" not in body:
        return f"HTTP {response.status_code}"
    hint = f" ({body['hint']})" if body.get("hint") else ""
    return f"HTTP {response.status_code} {body.get('code', '')}: {body['message']}{hint}"


@dataclass
class _Operator:
    """A logged-in operator: its own cookie jar and the CSRF token its writes carry."""

    username: str
    roles: frozenset[str]
    http: httpx.Client
    csrf: str

    def post(self, path: str, body: Mapping[str, Any]) -> httpx.Response:
        return _send(self.http, "POST", path, body, headers={"X-CSRF-Token": self.csrf})

    def delete(self, path: str) -> httpx.Response:
        return _send(self.http, "DELETE", path, None, headers={"X-CSRF-Token": self.csrf})


@dataclass(frozen=True)
class _Agent:
    environment: Environment
    key_id: str
    secret: str = field(repr=False)


def _send(
    http: httpx.Client,
    method: str,
    path: str,
    body: Mapping[str, Any] | str | None,
    *,
    headers: Mapping[str, str],
) -> httpx.Response:
    """One request (``body`` as JSON, or JSON text as is); 429 is waited out (``Retry-After``),
    a transport failure stops the run."""
    content, data = (body, None) if isinstance(body, str) else (None, body)
    for _ in range(_RETRIES):
        try:
            response = http.request(method, path, content=content, json=data, headers=dict(headers))
        except httpx.HTTPError as exc:
            raise RedTeamTargetError(
                f"{method} {path}: the gate could not be reached: {exc}",
                hint="the run stopped; check that the gate is up and run it again",
            ) from exc
        if response.status_code != 429:
            return response
        time.sleep(min(float(response.headers.get("retry-after", "1") or 1), 30.0))
    raise RedTeamTargetError(
        f"{method} {path}: still rate limited after {_RETRIES} tries",
        hint="raise the gate's rate limits for the staging run",
    )


class HttpTarget:
    """A running gate attacked over HTTP; see the module docstring.

    ``connect`` checks every credential first; ``close`` (or leaving the ``with`` block) revokes
    the run's agent keys and logs the operators out.
    """

    def __init__(
        self,
        url: str,
        credentials: Credentials,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.url = url.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout
        self._digest = ""
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=_headers())
        self._operators: list[_Operator] = []
        self._admin: _Operator | None = None
        self._agents: dict[str, _Agent] = {}

    def __enter__(self) -> HttpTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- setup ----------------------------------------------------------------------------
    def connect(self, suite: Suite, digest: str) -> None:
        """Log the operators in and check every credential the run of ``suite`` needs.

        Nothing is created on the gate here: a missing or wrong credential raises
        ``RedTeamSetupError`` before the first attack.
        """
        self._digest = digest
        self._check_orchestrators(_environments(suite))
        if not self.credentials.operators:
            raise RedTeamSetupError(
                "no operator given: the run needs an admin to register its agents, mint their "
                "keys and halt and resume, and approvers to vote",
                hint=_CREATE_OPERATOR.format(env=password_env("NAME")),
            )
        for login in self.credentials.operators:
            self._operators.append(self._login(login))
        self._admin = next((o for o in self._operators if "admin" in o.roles), None)
        if self._admin is None:
            raise RedTeamSetupError(
                "none of the operators is an admin: registering the red team's agents, minting "
                "their keys and resuming halts need the admin role",
                hint=_CREATE_OPERATOR.format(env=password_env("NAME")),
            )
        self._check_approvers(suite)

    def _check_orchestrators(self, environments: Sequence[Environment]) -> None:
        keys = self.credentials.orchestrator_keys
        missing = [e.value for e in environments if e not in keys]
        if missing:
            raise RedTeamSetupError(
                f"the attacks open sessions in {', '.join(e.value for e in environments)}; "
                f"no orchestrator key for {', '.join(missing)}",
                hint=_CREATE_ORCHESTRATOR.format(env=missing[0]),
            )
        for env in environments:
            # An agent id no agent can have (ids start with a letter or digit): a valid key for
            # `env` gets 404 and nothing is opened.
            probe = {"agent_id": _NO_AGENT, "task": "-", "environment": env.value}
            response = _send(self._http, "POST", "/v1/sessions", probe, headers=_headers(keys[env]))
            if response.status_code == 404:
                continue
            why = (
                "is not a valid key (unknown, revoked or mistyped)"
                if response.status_code == 401
                else f"cannot open sessions in {env.value} ({_problem(response)})"
            )
            raise RedTeamSetupError(
                f"the orchestrator key given for {env.value} {why}",
                hint=_CREATE_ORCHESTRATOR.format(env=env.value),
            )

    def _login(self, login: OperatorLogin) -> _Operator:
        http = httpx.Client(base_url=self.url, timeout=self.timeout, headers=_headers())
        body = {"username": login.username, "password": login.password}
        response = _send(http, "POST", "/v1/ops/login", body, headers={})
        if response.status_code != 200:
            http.close()
            raise RedTeamSetupError(
                f"operator `{login.username}` could not log in: {_problem(response)}",
                hint=f"check the password in `{password_env(login.username)}`; operators enrolled "
                "in TOTP cannot be used by an unattended run, "
                + _CREATE_OPERATOR.format(env=password_env(login.username)),
            )
        data = response.json()
        return _Operator(login.username, frozenset(data["roles"]), http, str(data["csrf_token"]))

    def _check_approvers(self, suite: Suite) -> None:
        """Every approval the stateful attacks ask for can be granted by the given operators."""
        settings = approval_settings(suite.policy)
        approvers = [o.username for o in self._operators if o.roles & _APPROVER_ROLES]
        for w in suite.witnesses:
            if w.verdict.outcome is not Outcome.APPROVAL:
                continue
            group = approver_group(w.verdict, settings)
            members = settings.groups.get(group, frozenset()) if group is not None else None
            able = [a for a in approvers if members is None or a in members]
            need = required_approvals(w.verdict, w.tool, settings)
            if len(able) < need:
                listed = ", ".join(sorted(members or ())) or "nobody"
                raise RedTeamSetupError(
                    f"`{w.tool}` ({w.verdict.rule}) needs {need} approver(s) of the group "
                    f"`{group}`, which lists {listed}; the operators given include {len(able)}",
                    hint="pass members of the group with `--operator` (role approver or admin), "
                    "each with its password in CLEARANCE_REDTEAM_PASSWORD_<NAME>",
                )

    def close(self) -> None:
        """Revoke every agent key this run minted, log out, close the connections.

        Raises ``RedTeamTargetError`` naming the keys still valid when a revocation failed.
        """
        left: list[str] = []
        try:
            for agent in self._agents.values():
                if self._admin is None:
                    break
                try:
                    response = self._admin.delete(f"/v1/ops/keys/{agent.key_id}")
                except RedTeamTargetError:
                    left.append(agent.key_id)
                    continue
                if response.status_code != 204:
                    left.append(agent.key_id)
            self._agents.clear()
            for operator in self._operators:
                try:
                    operator.post("/v1/ops/logout", {})
                except RedTeamTargetError:
                    log.warning("could not log %s out of the gate", operator.username)
        finally:
            for operator in self._operators:
                operator.http.close()
            self._operators.clear()
            self._http.close()
        if left:
            raise RedTeamTargetError(
                f"{len(left)} red-team agent key(s) could not be revoked: {', '.join(left[:5])}",
                hint="revoke them with `clearance users revoke KEY_ID` on the gate's host",
            )

    # -- the Target protocol ---------------------------------------------------------------
    @property
    def digest(self) -> str:
        """The gate's active digest, as checked when the run connected."""
        return self._digest

    def _admin_post(self, path: str, body: Mapping[str, Any], expected: int) -> dict[str, Any]:
        if self._admin is None:
            raise RedTeamTargetError("the target is not connected", hint="call connect() first")
        response = self._admin.post(path, body)
        if response.status_code != expected:
            raise RedTeamTargetError(
                f"POST {path} as `{self._admin.username}`: {_problem(response)}",
                hint="the admin operator must be able to register agents, mint keys and halt",
            )
        result: dict[str, Any] = response.json()
        return result

    def _agent(self, agent_id: str, environment: Environment) -> _Agent:
        agent = self._agents.get(agent_id)
        if agent is not None:
            return agent
        self._admin_post(
            "/v1/ops/agents",
            {
                "agent_id": agent_id,
                "environment": environment.value,
                "description": "clearance redteam attack agent",
            },
            201,
        )
        minted = self._admin_post(
            f"/v1/ops/agents/{agent_id}/keys", {"label": "clearance redteam"}, 201
        )
        agent = _Agent(environment, str(minted["key_id"]), str(minted["secret"]))
        self._agents[agent_id] = agent
        return agent

    def open_session(self, agent_id: str, task: str, environment: str, principal: str) -> Session:
        """Register the agent on first use, then open the session with the orchestrator key."""
        env = Environment(environment)
        self._agent(agent_id, env)
        body = {"agent_id": agent_id, "task": task, "environment": env.value}
        body["principal"] = principal
        key = self.credentials.orchestrator_keys[env]
        response = _send(self._http, "POST", "/v1/sessions", body, headers=_headers(key))
        if response.status_code != 201:
            raise RedTeamTargetError(
                f"opening a {env.value} session for `{agent_id}`: {_problem(response)}",
                hint="the orchestrator key must stay valid for the whole run",
            )
        return Session.model_validate(response.json())

    def decide(self, request: Request) -> Decision:
        """``POST /v1/decide`` (``/v1/tokens/redeem`` with a token) with the agent's key."""
        body = {
            k: v
            for k, v in request.model_dump(mode="json", exclude={"agent_id"}).items()
            if v is not None
        }
        path = "/v1/decide" if request.approval_token is None else "/v1/tokens/redeem"
        return self._decision(request.agent_id, path, json.dumps(body))

    def decide_body(self, agent_id: str, body: Mapping[str, Any]) -> Decision:
        """``POST /v1/decide`` with ``body`` as written (``NaN`` included, as Python writes it)."""
        return self._decision(agent_id, "/v1/decide", json.dumps(body))

    def _decision(self, agent_id: str, path: str, text: str) -> Decision:
        headers = {**_headers(self._agents[agent_id].secret), "Content-Type": "application/json"}
        response = _send(self._http, "POST", path, text, headers=headers)
        if response.status_code in _REFUSED_STATUSES:
            raise RequestRefusedError(f"the gate refused the request: {_problem(response)}")
        if response.status_code in _DECISION_STATUSES:
            try:
                return Decision.model_validate(response.json())
            except ValueError:
                pass
        if response.status_code == 500 and _code(response) == "internal_error":
            # The gate's own handler answered: it failed on this request and decided nothing.
            # A finding for the report (a 4xx was due), not a reason to stop the run.
            raise RequestRefusedError(
                f"the gate failed on the request: {_problem(response)}",
                deviation="the gate failed with an internal error (HTTP 500) instead of "
                "refusing the request (4xx); nothing was dispatched",
            )
        raise RedTeamTargetError(
            f"POST {path} for `{agent_id}` answered no decision: {_problem(response)}",
            hint="a gate answers every call with a decision (PERMIT 200, APPROVAL 202, DENY 403, "
            "SILENCE 503)",
        )

    def report(self, result: ActionResult, agent_id: str) -> None:
        """``POST /v1/results`` with the agent's key."""
        agent = self._agents[agent_id]
        body = result.model_dump(mode="json")
        response = _send(self._http, "POST", "/v1/results", body, headers=_headers(agent.secret))
        if response.status_code != 202:
            raise RedTeamTargetError(
                f"reporting a result for `{agent_id}`: {_problem(response)}",
                hint="the gate must record reported results (its session taint depends on them)",
            )

    def approve(self, decision: Decision, request: Request) -> str | None:
        """Vote with each approver in turn until approved; claim the token as the agent."""
        approval_id, intent = decision.approval_id, decision.intent
        if approval_id is None or intent is None:
            return None
        for operator in self._operators:
            if not operator.roles & _APPROVER_ROLES:
                continue
            path = f"/v1/ops/approvals/{approval_id}/approve"
            response = operator.post(path, {"comment": "clearance redteam"})
            if response.status_code >= 500:
                raise RedTeamTargetError(f"POST {path}: {_problem(response)}")
            if response.status_code == 200 and response.json().get("state") == "approved":
                break
        agent = self._agents[request.agent_id]
        body = {"session_id": request.session_id, "intent": intent}
        path = f"/v1/approvals/{approval_id}/status"
        response = _send(self._http, "POST", path, body, headers=_headers(agent.secret))
        if response.status_code >= 500:
            raise RedTeamTargetError(f"POST {path}: {_problem(response)}")
        if response.status_code != 200:
            return None
        token = response.json().get("token")
        return str(token) if token else None

    def can_halt(self, scope: Scope) -> bool:
        """The kill-switch API halts every scope: everything, an agent, a tool, an environment."""
        return scope.kind in ("agent", "tool", "environment", "all")

    def halt(self, scope: Scope) -> None:
        """Engage the kill switch on ``scope`` as the admin."""
        self._kill_switch(scope, engaged=True)

    def resume(self, scope: Scope) -> None:
        """Lift the kill switch from ``scope`` as the admin."""
        self._kill_switch(scope, engaged=False)

    def _kill_switch(self, scope: Scope, *, engaged: bool) -> None:
        if not self.can_halt(scope):
            raise RedTeamTargetError(f"the kill-switch API cannot halt `{scope.key}`")
        body: dict[str, Any] = {"engaged": engaged, "reason": HALT_REASON}
        if scope.kind != "all":
            body["agent_id" if scope.kind == "agent" else scope.kind] = scope.value
        self._admin_post("/v1/ops/control/kill-switch", body, 200)


def _environments(suite: Suite) -> list[Environment]:
    """Every environment the suite opens a session in, in the enum's order."""
    used = {c.environment for c in suite.cases} | {w.environment for w in suite.witnesses}
    return [e for e in Environment if e.value in used]
