"""Who is calling: an agent key, an orchestrator key or an operator's dashboard session.

The three are different principals with different credentials (DESIGN section 7):

* **agent keys** (``clr_agent_...``) are 256 random bits, shown once, stored as SHA-256, scoped to
  one agent and one environment, revocable. The agent id of every decision comes from the key,
  never from a request body.
* **orchestrator keys** (``clr_orch_...``) open and close sessions in one environment; they cannot
  decide, approve or read the operator API.
* **operators** log in with a password (argon2id) and, when enrolled, a TOTP code; the dashboard
  session cookie is 256 random bits stored as SHA-256 and paired with a CSRF token.

Every check here raises ``AuthenticationError`` (opaque on the wire on purpose: which part was
wrong goes to the log only) or returns the authenticated principal::

    service = IdentityService(identity_store(store), clock)
    minted = service.create_agent_key("billing-bot", created_by="alice")
    principal = service.authenticate_key(minted.secret)      # AgentPrincipal("billing-bot", ...)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from clearance.errors import ClearanceError, ConfigError, ConflictError
from clearance.gate.clock import Clock, iso
from clearance.model.session import Environment
from clearance.store.identity_sql import (
    AgentRecord,
    ApiKeyRecord,
    DashboardSessionRecord,
    IdentitySQL,
    KeyKind,
    OperatorRecord,
)

log = logging.getLogger("clearance.server.identity")

_PREFIX = {KeyKind.AGENT: "clr_agent_", KeyKind.ORCHESTRATOR: "clr_orch_"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")
MIN_PASSWORD_LENGTH = 12


class Role(StrEnum):
    """Operator roles. Admin includes approver, approver includes viewer; break-glass is separate."""

    VIEWER = "viewer"
    APPROVER = "approver"
    ADMIN = "admin"
    BREAK_GLASS = "break-glass"


class AuthenticationError(ClearanceError):
    """The credential is missing, unknown, revoked, expired or wrong; deliberately not which."""

    code = "unauthenticated"

    def __init__(self, reason: str) -> None:
        super().__init__(
            "authentication failed",
            hint="send a valid key as `Authorization: Bearer <key>`, or log in again",
        )
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AgentPrincipal:
    """An agent authenticated by its key."""

    agent_id: str
    environment: Environment
    key_id: str


@dataclass(frozen=True, slots=True)
class OrchestratorPrincipal:
    """A trusted orchestrator that opens sessions in one environment."""

    key_id: str
    environment: Environment
    label: str


@dataclass(frozen=True, slots=True)
class OperatorPrincipal:
    """A logged-in operator; ``csrf_token`` must accompany every state-changing request."""

    username: str
    roles: frozenset[Role]
    csrf_token: str
    session_hash: str


Principal = AgentPrincipal | OrchestratorPrincipal | OperatorPrincipal


@dataclass(frozen=True, slots=True)
class MintedKey:
    """A new API key. ``secret`` is shown once and exists nowhere else afterwards."""

    key_id: str
    secret: str
    record: ApiKeyRecord


@dataclass(frozen=True, slots=True)
class LoginResult:
    """A new dashboard session: the cookie value (shown once) and its CSRF token."""

    cookie: str
    csrf_token: str
    expires_at: str
    operator: OperatorPrincipal


def token_digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret, as stored (keys and session cookies)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def csrf_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison of a presented CSRF token with the session's."""
    if not presented:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8"))


def _check_name(kind: str, name: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"{kind} `{name}` is not a valid name",
            hint="use 1-128 letters, digits, `.`, `_`, `@` or `-`, starting with a letter or digit",
        )


class IdentityService:
    """Mints, verifies and revokes the credentials of agents, orchestrators and operators."""

    def __init__(
        self,
        records: IdentitySQL,
        clock: Clock,
        *,
        session_ttl_s: int = 8 * 3600,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.records = records
        self.clock = clock
        self.session_ttl_s = session_ttl_s
        self._hasher = hasher or PasswordHasher()
        # A hash of a random password, verified when the user does not exist, so a login for an
        # unknown name costs the same time as one with a wrong password.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def _now(self) -> str:
        return iso(self.clock.now())

    # agents and keys -----------------------------------------------------------------------
    def register_agent(
        self, agent_id: str, *, environment: Environment | str, description: str, created_by: str
    ) -> AgentRecord:
        """Register an agent in one environment (its keys and sessions are bound to it)."""
        _check_name("agent id", agent_id)
        record = AgentRecord(
            agent_id=agent_id,
            environment=Environment(environment).value,
            description=description,
            created_at=self._now(),
            created_by=created_by,
        )
        self.records.add_agent(record)
        return record

    def create_agent_key(self, agent_id: str, *, created_by: str, label: str = "") -> MintedKey:
        """Mint a key for a registered agent, scoped to the agent's environment."""
        agent = self.records.get_agent(agent_id)
        if agent is None:
            raise ConfigError(
                f"no agent `{agent_id}`",
                hint="register it first: `clearance users add-agent ID --environment ENV`",
            )
        if agent.disabled_at is not None:
            raise ConflictError(f"agent `{agent_id}` is disabled")
        return self._mint(KeyKind.AGENT, agent_id, agent.environment, created_by, label)

    def create_orchestrator_key(
        self, label: str, *, environment: Environment | str, created_by: str
    ) -> MintedKey:
        """Mint a key that may open and close sessions in ``environment``."""
        _check_name("orchestrator label", label)
        return self._mint(
            KeyKind.ORCHESTRATOR, None, Environment(environment).value, created_by, label
        )

    def _mint(
        self, kind: KeyKind, agent_id: str | None, environment: str, created_by: str, label: str
    ) -> MintedKey:
        key_id = "key_" + secrets.token_hex(8)
        secret = _PREFIX[kind] + secrets.token_urlsafe(32)
        record = ApiKeyRecord(
            key_id=key_id,
            kind=kind,
            agent_id=agent_id,
            environment=environment,
            key_hash=token_digest(secret),
            label=label,
            created_at=self._now(),
            created_by=created_by,
        )
        self.records.add_key(record)
        return MintedKey(key_id=key_id, secret=secret, record=record)

    def revoke_key(self, key_id: str) -> None:
        """Revoke a key at once; the next request with it is refused."""
        if not self.records.revoke_key(key_id, self._now()):
            raise ConfigError(f"no active key `{key_id}`", hint="list keys with `users list-keys`")

    def authenticate_key(self, secret: str) -> AgentPrincipal | OrchestratorPrincipal:
        """The principal holding ``secret``; ``AuthenticationError`` otherwise."""
        if not secret.startswith(tuple(_PREFIX.values())) or len(secret) > 128:
            raise AuthenticationError("not a clearance key")
        record = self.records.key_by_hash(token_digest(secret))
        if record is None:
            raise AuthenticationError("unknown key")
        if record.revoked_at is not None:
            raise AuthenticationError(f"key {record.key_id} is revoked")
        environment = Environment(record.environment)
        if record.kind is KeyKind.ORCHESTRATOR:
            return OrchestratorPrincipal(record.key_id, environment, record.label)
        if record.agent_id is None:
            raise AuthenticationError(f"agent key {record.key_id} names no agent")
        agent = self.records.get_agent(record.agent_id)
        if agent is None or agent.disabled_at is not None:
            raise AuthenticationError(f"agent {record.agent_id} is unknown or disabled")
        return AgentPrincipal(record.agent_id, environment, record.key_id)

    # operators ------------------------------------------------------------------------------
    def create_operator(
        self, username: str, password: str, roles: set[Role], *, with_totp: bool = False
    ) -> str | None:
        """Create an operator; return the TOTP secret to enrol (shown once) when asked for one."""
        _check_name("user name", username)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ConfigError(
                f"the password is shorter than {MIN_PASSWORD_LENGTH} characters",
                hint="use a passphrase from a password manager",
            )
        if not roles:
            raise ConfigError("an operator needs at least one role", hint="e.g. --role approver")
        totp_secret = pyotp.random_base32() if with_totp else None
        self.records.add_operator(
            OperatorRecord(
                username=username,
                password_hash=self._hasher.hash(password),
                roles=tuple(sorted(r.value for r in roles)),
                totp_secret=totp_secret,
                created_at=self._now(),
            )
        )
        return totp_secret

    def login(self, username: str, password: str, totp_code: str | None) -> LoginResult:
        """Check password (and TOTP when enrolled) and open a dashboard session."""
        operator = self.records.get_operator(username)
        stored_hash = operator.password_hash if operator is not None else self._dummy_hash
        try:
            self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            raise AuthenticationError(f"wrong password for {username!r}") from None
        if operator is None:
            raise AuthenticationError(f"unknown operator {username!r}")
        if operator.disabled_at is not None:
            raise AuthenticationError(f"operator {username!r} is disabled")
        if operator.totp_secret is not None:
            totp = pyotp.TOTP(operator.totp_secret)
            if not totp_code or not totp.verify(
                totp_code, for_time=self.clock.now(), valid_window=1
            ):
                raise AuthenticationError(f"wrong or missing TOTP code for {username!r}")
        if self._hasher.check_needs_rehash(stored_hash):
            self.records.set_password_hash(username, self._hasher.hash(password))
        cookie = secrets.token_urlsafe(32)
        now = self.clock.now()
        record = DashboardSessionRecord(
            token_hash=token_digest(cookie),
            username=username,
            csrf_token=secrets.token_urlsafe(32),
            created_at=iso(now),
            expires_at=iso(now + timedelta(seconds=self.session_ttl_s)),
        )
        self.records.add_session(record)
        return LoginResult(
            cookie=cookie,
            csrf_token=record.csrf_token,
            expires_at=record.expires_at,
            operator=self._operator_principal(operator, record),
        )

    def authenticate_session(self, cookie: str) -> OperatorPrincipal:
        """The operator whose dashboard cookie is ``cookie``; ``AuthenticationError`` otherwise."""
        if not cookie or len(cookie) > 128:
            raise AuthenticationError("no session cookie")
        record = self.records.session_by_hash(token_digest(cookie), now=self._now())
        if record is None:
            raise AuthenticationError("unknown or expired session")
        operator = self.records.get_operator(record.username)
        if operator is None or operator.disabled_at is not None:
            raise AuthenticationError(f"operator {record.username!r} is gone or disabled")
        return self._operator_principal(operator, record)

    def logout(self, principal: OperatorPrincipal) -> None:
        """End a dashboard session."""
        self.records.delete_session(principal.session_hash)

    @staticmethod
    def _operator_principal(
        operator: OperatorRecord, session: DashboardSessionRecord
    ) -> OperatorPrincipal:
        roles = frozenset(Role(r) for r in operator.roles if r in Role._value2member_map_)
        return OperatorPrincipal(
            username=operator.username,
            roles=roles,
            csrf_token=session.csrf_token,
            session_hash=session.token_hash,
        )
