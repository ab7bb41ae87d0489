"""The composition root's data directory: where the store, keys and policy of one gate live.

Layout of a data directory (created by ``clearance init``)::

    .clearance/
      clearance.db        the embedded SQLite store (sessions, bundles, decisions, approvals, ...)
      audit.db            the audit shard of this node (hash chain, Merkle tree, checkpoints);
                          on PostgreSQL the shards live in the shared database instead, one per
                          replica id (see ``open_audit_storage``)
      keys/audit.key      Ed25519 audit signing key, mode 0600
      keys/mask.key       HMAC masking key, mode 0600
      keys/audit.pub      the deployment verifier key (vkey) an auditor needs, shareable
      keys/intent.key     Ed25519 key signing approval intents and break-glass records, mode 0600
      secrets/<env>.json  local credential backend: secret values per environment, mode 0600
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from clearance.approvals import ApprovalService, BreakGlass, DecayOverride, IntentKey, LogNotifier
from clearance.approvals.settings import (
    ApprovalSettings,
    BreakGlassSettings,
    approval_settings,
    breakglass_settings,
)
from clearance.audit.log import AuditLog
from clearance.audit.retention import retention_in_force
from clearance.audit.sign import AuditKey, MaskKey
from clearance.cli.otel import enable_tracing
from clearance.control.killswitch import agent_hook
from clearance.control.plane import ControlPlane
from clearance.credentials import CredentialBroker, CredentialSpec, credential_specs
from clearance.credentials.config import CredentialSettings, open_backends
from clearance.errors import ConfigError
from clearance.gate.clock import Clock, SystemClock
from clearance.gate.config import GateConfig
from clearance.gate.evidence import AuditRecorder, PolicyRedactor
from clearance.gate.gate import Gate
from clearance.gate.taint import SessionTaint
from clearance.sandbox import Sandbox
from clearance.store import Store, open_store
from clearance.store.audit_sqlite import SQLiteAuditStorage
from clearance.store.notify import notifier_for

if TYPE_CHECKING:
    from clearance.store.audit_postgres import PostgresAuditStorage

DEFAULT_DATA_DIR = Path(".clearance")
REPLICA_ID_ENV = "CLEARANCE_REPLICA_ID"
_alerts = logging.getLogger("clearance.alerts")


@dataclass
class Runtime:
    """Everything one gate process needs, built from a data directory."""

    data_dir: Path
    store: Store
    gate: Gate
    audit_key: AuditKey
    audit_log: AuditLog
    approvals: ApprovalService
    breakglass: BreakGlass
    control: ControlPlane
    sandbox: Sandbox
    credentials: CredentialBroker
    audit_storage: SQLiteAuditStorage | PostgresAuditStorage
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Stop the appender, release the shard, close the store (the log drains first)."""
        for close in reversed(self.closers):
            close()
        self.audit_log.close()
        self.audit_storage.close()
        self.store.close()


def store_url_for(data_dir: Path, store_url: str | None) -> str:
    """The store URL: explicit, or the embedded SQLite file of the data directory."""
    return store_url or f"sqlite:///{data_dir / 'clearance.db'}"


def is_postgres_url(url: str) -> bool:
    """Whether ``url`` names the shared PostgreSQL store (several replicas) rather than SQLite."""
    return url.startswith(("postgresql://", "postgres://"))


def open_audit_storage(
    data_dir: Path, store: Store, store_url: str
) -> SQLiteAuditStorage | PostgresAuditStorage:
    """Where this process's audit shard lives.

    On PostgreSQL every replica's shard is in the shared database, so one ``audit verify --db URL``
    sees all of them and each replica can anchor the others' checkpoints; the shard's advisory
    lock and epoch fence keep two processes with one replica id from both appending. On SQLite
    the shard is the data directory's ``audit.db``.
    """
    if is_postgres_url(store_url):
        from clearance.store.audit_postgres import PostgresAuditStorage
        from clearance.store.postgres import PostgresStore

        if not isinstance(store, PostgresStore):  # open_store chose the backend by the same URL
            raise ConfigError(f"store `{type(store).__name__}` does not match a PostgreSQL URL")
        return PostgresAuditStorage(store)
    return SQLiteAuditStorage(data_dir / "audit.db")


def gate_config(deployment: str, replica_id: str | None) -> GateConfig:
    """The gate's config for this replica, or ``ConfigError`` naming a malformed replica id."""
    try:
        return GateConfig(deployment=deployment, replica_id=replica_id or "node")
    except ValidationError as exc:
        raise ConfigError(
            f"replica id `{replica_id}` is not valid: {exc.errors()[0]['msg']}",
            hint="use lowercase letters, digits, `.` and `-`, e.g. `gate-a`",
        ) from exc


def key_paths(data_dir: Path) -> tuple[Path, Path, Path]:
    """``(audit key, masking key, public vkey)`` paths of a data directory."""
    keys = data_dir / "keys"
    return keys / "audit.key", keys / "mask.key", keys / "audit.pub"


def create_keys(data_dir: Path, deployment: str) -> AuditKey:
    """Create the audit and masking keys (0600) unless they exist; return the audit key."""
    audit_path, mask_path, pub_path = key_paths(data_dir)
    audit_path.parent.mkdir(parents=True, exist_ok=True)
    audit_path.parent.chmod(0o700)
    if not audit_path.exists():
        AuditKey.generate(deployment).save(audit_path)
    if not mask_path.exists():
        MaskKey.generate("k1").save(mask_path)
    key = AuditKey.load(audit_path)
    pub_path.write_text(key.vkey + "\n", encoding="utf-8")
    return key


def _retention_days(gate: Gate) -> tuple[int, int] | None:
    """The active policy's ``retention`` periods in days (default, high-risk), if one is active."""
    bundle = gate.bundle
    if bundle is None:
        return None
    periods = bundle.compiled.retention
    return (periods.default.days, periods.high_risk.days)


def open_runtime(
    data_dir: Path,
    *,
    store_url: str | None = None,
    config: GateConfig | None = None,
    clock: Clock | None = None,
    require_policy: bool = True,
    credentials: CredentialSettings | None = None,
    replica_id: str | None = None,
) -> Runtime:
    """Open the gate of ``data_dir``: store, audit shard, keys, and the active policy.

    ``replica_id`` names this process's audit shard (``D/<replica>/<period>``) when ``config`` is
    not given: the argument, else ``$CLEARANCE_REPLICA_ID``, else ``node``, which suits one gate.
    Processes sharing a PostgreSQL store need one id each (operator commands too, e.g.
    ``CLEARANCE_REPLICA_ID=ops``): a second process with a taken id refuses to start.
    """
    if store_url is None and not (data_dir / "clearance.db").exists():
        raise ConfigError(
            f"no clearance data directory at `{data_dir}`",
            hint="create one with `clearance init` or pass `--data-dir`",
        )
    clock = clock or SystemClock()
    audit_path, mask_path, _ = key_paths(data_dir)
    key = AuditKey.load(audit_path)
    mask_key = MaskKey.load(mask_path)
    config = config or gate_config(key.name, replica_id or os.environ.get(REPLICA_ID_ENV))
    url = store_url_for(data_dir, store_url)
    store = open_store(url)
    period = str(clock.now().year)
    gate = Gate(store, config=config, clock=clock)
    try:
        audit_storage = open_audit_storage(data_dir, store, url)
        try:
            log = AuditLog(
                audit_storage,
                key,
                f"{key.name}/{config.replica_id}/{period}",
                clock.now,
                PolicyRedactor(mask_key, lambda: gate.bundle),
                retention_for=retention_in_force(lambda: _retention_days(gate)),
            )
        except BaseException:
            audit_storage.close()
            raise
    except BaseException:
        store.close()
        raise
    recorder = AuditRecorder(log, key)
    gate.audit = recorder
    intent_key = IntentKey.load_or_create(data_dir / "keys" / "intent.key")

    def approvals_in_force() -> ApprovalSettings:
        bundle = gate.bundle
        return approval_settings(bundle.compiled) if bundle is not None else ApprovalSettings()

    def breakglass_in_force() -> BreakGlassSettings:
        bundle = gate.bundle
        return breakglass_settings(bundle.compiled) if bundle is not None else BreakGlassSettings()

    notifiers = [LogNotifier()]
    approvals = ApprovalService(
        store, key=intent_key, audit=recorder, settings=approvals_in_force, notifiers=notifiers
    )
    breakglass = BreakGlass(
        store,
        key=intent_key,
        audit=recorder,
        settings=breakglass_in_force,
        alert=lambda title, details: _alerts.critical("%s: %s", title, details),
    )
    decay = DecayOverride(store, settings=approvals_in_force, notifiers=notifiers)
    gate.approvals = approvals
    taint = SessionTaint(
        store, policies=lambda digest: gate.bundle_by_digest(digest).compiled, clock=clock
    )
    gate.provenance = taint
    # LISTEN/NOTIFY on PostgreSQL: a halt on any replica reaches this one within milliseconds
    # (the kill switch still re-reads its version row every poll, should a notice be lost).
    notifier = notifier_for(store)
    control = ControlPlane(
        store,
        clock=clock,
        audit=recorder,
        pending=approvals,
        replica=config.replica_id,
        notifier=notifier,
    )
    control.killswitch.on_halt("approvals.cancelled", agent_hook(approvals.cancel_for))
    control.killswitch.on_halt("tokens.revoked", agent_hook(approvals.revoke_tokens_for))
    # The agent's sandboxed jobs run in this process: each replica kills its own (local hook).
    sandbox = Sandbox()
    control.killswitch.on_halt(
        "sandbox.killed",
        agent_hook(lambda agent_id, _now: len(sandbox.kill_owner(agent_id))),
        local=True,
    )

    # Credentials: only against a PERMIT or a token, never while a stop covers the call, and
    # every live lease of a halted agent is revoked (a shared hook: leases live in the store).
    def credentials_in_force() -> dict[str, CredentialSpec]:
        bundle = gate.bundle
        return dict(credential_specs(bundle.compiled)) if bundle is not None else {}

    broker = CredentialBroker(
        store,
        backends=open_backends(credentials or CredentialSettings(), data_dir=data_dir),
        specs=credentials_in_force,
        audit=recorder,
        tokens=approvals,
        stops=control.killswitch,
    )
    control.killswitch.on_halt("credentials.revoked", agent_hook(broker.revoke_for))
    # The kill switch runs before anything else; breakers' overrides after break-glass, so an
    # override never lifts an unusual-sequence approval.
    gate.pre_checks[:0] = control.pre_checks
    gate.overrides.extend([breakglass, decay, *control.overrides])
    gate.observers.extend([taint, decay, *control.observers])
    gate.on_activate.append(lambda bundle: control.configure(bundle.compiled))
    runtime = Runtime(
        data_dir=data_dir,
        store=store,
        gate=gate,
        audit_key=key,
        audit_log=log,
        approvals=approvals,
        breakglass=breakglass,
        control=control,
        sandbox=sandbox,
        credentials=broker,
        audit_storage=audit_storage,
        closers=[notifier.close],
    )
    try:
        stop_tracing = enable_tracing(gate, os.environ)  # CLEARANCE_OTEL=1 and the OTEL_* variables
    except BaseException:
        runtime.close()
        raise
    if stop_tracing is not None:
        runtime.closers.append(stop_tracing)
    if require_policy:
        try:
            gate.load_active()
        except BaseException:
            runtime.close()
            raise
    return runtime
