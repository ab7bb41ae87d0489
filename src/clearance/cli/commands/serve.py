"""``clearance serve``: the gate as a sidecar HTTP service with the operator dashboard.

The composition root for the service: opens the data directory's runtime (store, audit shard,
approvals, break-glass), adds the control plane (kill switch first among the pre-checks, breakers,
monitor, metrics), and hands the lot to ``create_app`` as ``GateServices``.

Several replicas share one PostgreSQL store, each with its own replica id (which names its audit
shard)::

    clearance serve --store postgresql://clearance@db/clearance --replica-id gate-a --port 8700

One process serves with one uvicorn worker (``serve_app``): the breakers' call windows and failure
streaks, the agent rate limits and the audit appender live in the process, so several workers on
one data directory would split them (each breaker would see a fraction of an agent's traffic).
More throughput means more replicas, each with its own replica id and audit shard, on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from clearance.cli.runtime import DEFAULT_DATA_DIR, Runtime, open_runtime
from clearance.control.drift import DriftWatch, Watchdog, settings_digest
from clearance.control.plane import ControlPlane
from clearance.control.sources import SourceWatch
from clearance.gate.clock import Clock
from clearance.gate.evidence import AuditRecorder
from clearance.gate.fatigue import FatigueWatch
from clearance.server.app import GateServices
from clearance.server.embedded import uvicorn_options
from clearance.server.settings import ServerSettings, load_settings
from clearance.store.identity_sql import identity_store

if TYPE_CHECKING:
    from fastapi import FastAPI


def build_services(runtime: Runtime) -> tuple[GateServices, ControlPlane]:
    """Collect the parts of ``runtime`` the service exposes (the runtime composed the gate)."""
    plane = runtime.control
    recorder = runtime.gate.audit
    services = GateServices(
        gate=runtime.gate,
        approvals=runtime.approvals,
        control=plane.killswitch,
        audit=recorder if isinstance(recorder, AuditRecorder) else None,
        credentials=runtime.credentials,
        breakglass=runtime.breakglass,
        metrics=(plane.metrics.registry,) if plane.metrics is not None else (),
        sources=SourceWatch(identity_store(runtime.store), plane.alerts, clock=runtime.gate.clock),
    )
    return services, plane


def open_service(
    settings: ServerSettings, *, clock: Clock | None = None
) -> tuple[Runtime, GateServices]:
    """The runtime of ``settings.data_dir`` and the services built on it."""
    runtime = open_runtime(
        settings.data_dir,
        store_url=settings.store_url,
        clock=clock,
        replica_id=settings.replica_id,
        credentials=settings.credentials,
    )
    try:
        services, _ = build_services(runtime)
    except BaseException:
        runtime.close()
        raise
    return runtime, services


WATCH_INTERVAL_S = 5.0


def watch(
    runtime: Runtime,
    settings: ServerSettings,
    reload: Callable[[], ServerSettings] | None,
    *,
    interval_s: float = WATCH_INTERVAL_S,
) -> Watchdog:
    """Start the background checks of a serving gate: drift, store health, approval fatigue.

    ``reload`` reads the settings as versioned now (None when they come from no file); an idle
    gate thereby still reports a dead store, a missed activation or an edited settings file.
    """
    gate = runtime.gate
    drift = DriftWatch(
        runtime.control.alerts,
        clock=gate.clock,
        running_policy=lambda: gate.bundle.digest if gate.bundle is not None else None,
        active_policy=runtime.store.active_digest,
        running_config=settings_digest(settings),
        versioned_config=None if reload is None else lambda: settings_digest(reload()),
    )
    fatigue = FatigueWatch(
        runtime.approvals.store, runtime.audit_storage, runtime.control.alerts, clock=gate.clock
    )
    dog = Watchdog(
        [
            drift.check,
            lambda: runtime.control.monitor.check_store(runtime.store.ping),
            fatigue.check,
        ],
        interval_s=interval_s,
    )
    dog.start()
    return dog


def serve_app(app: FastAPI, settings: ServerSettings) -> None:
    """Serve ``app`` in this process until interrupted.

    Everything built so far (the gate, the compiled policy, the app and its libraries) lives as
    long as the process: ``gc.freeze()`` moves it out of the collector's reach, so the cyclic
    collector's full passes scan only what requests allocate instead of pausing a decision to walk
    the whole heap.
    """
    import gc

    import uvicorn

    gc.collect()
    gc.freeze()
    uvicorn.run(app, **uvicorn_options(settings.host, settings.port))


def serve(
    data_dir: Annotated[
        Path | None,
        typer.Option(help=f"Data directory made by `clearance init` [{DEFAULT_DATA_DIR}]."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    store: Annotated[
        str | None, typer.Option(help="Store URL (default: the data dir's SQLite).")
    ] = None,
    replica_id: Annotated[
        str | None,
        typer.Option(
            help="This replica's id, naming its audit shard: one per process sharing a "
            "PostgreSQL store (CLEARANCE_REPLICA_ID) [node]."
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="Settings file (TOML or YAML); CLEARANCE_* overrides it.")
    ] = None,
) -> None:
    """Serve the agent API, operator API, dashboard and /metrics over HTTP."""
    from clearance.server.app import create_app

    settings = load_settings(
        config, data_dir=data_dir, host=host, port=port, store_url=store, replica_id=replica_id
    )
    runtime, services = open_service(settings)

    def versioned() -> ServerSettings:
        return load_settings(
            config, data_dir=data_dir, host=host, port=port, store_url=store, replica_id=replica_id
        )

    watchdog = watch(runtime, settings, versioned if config is not None else None)
    try:
        app = create_app(services, settings)
        print(
            f"clearance serving on http://{settings.host}:{settings.port} "
            f"(audit shard {runtime.audit_log.origin})"
        )
        serve_app(app, settings)
    finally:
        watchdog.stop()
        runtime.close()


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the top-level command."""
    app.command("serve")(serve)
