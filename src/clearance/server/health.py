"""``/healthz`` (the process answers), ``/readyz`` (it can decide) and ``/metrics`` (Prometheus).

Readiness is strict because the gate is fail-closed: without a reachable store, a loaded policy
and a configured audit log every decision would be SILENCE, so a load balancer should not send
traffic yet. ``/metrics`` carries no secrets (labels come from closed sets), so it needs no key.
"""

import logging
from typing import TYPE_CHECKING

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from clearance.errors import ClearanceError
from clearance.server.wire import ReadyV1

if TYPE_CHECKING:
    from clearance.server.app import ServerContext

log = logging.getLogger("clearance.server.health")


def router(ctx: "ServerContext") -> APIRouter:
    """The health, readiness and metrics routes."""
    api = APIRouter(tags=["health"])
    gate = ctx.gate

    @api.get("/healthz", summary="The process is up")
    async def healthz() -> dict[str, str]:
        """Always ``ok`` while the process serves requests."""
        return {"status": "ok"}

    @api.get(
        "/readyz",
        response_model=ReadyV1,
        responses={503: {"model": ReadyV1}},
        summary="The gate can decide: store, audit log and policy are ready",
    )
    async def readyz() -> JSONResponse:
        """503 until the store answers, an audit log is configured and a policy is active."""
        checks: dict[str, str] = {}
        try:
            gate.store.ping()
            checks["store"] = "ok"
        except ClearanceError as exc:
            log.warning("readiness: store not ready: %s", exc)
            checks["store"] = exc.code
        checks["audit"] = "ok" if gate.audit is not None else "absent"
        checks["policy"] = gate.bundle.digest if gate.bundle is not None else "absent"
        ready = checks["store"] == "ok" and checks["audit"] == "ok" and gate.bundle is not None
        body = ReadyV1(ready=ready, checks=checks)
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    @api.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics() -> Response:
        """The service's metrics in the Prometheus text format."""
        registries = (ctx.metrics.registry, *ctx.services.metrics)
        body = b"".join(generate_latest(r) for r in registries)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return api
