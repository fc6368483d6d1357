"""Liveness, readiness and the Prometheus endpoint (no API key: probes and scrapers call these)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.responses import JSONResponse, Response

from .. import metrics
from ..runtime import Runtime, get_runtime

router = APIRouter(tags=["Health"])


@router.get("/health/liveness", summary="The process is up")
async def liveness() -> Response:
    return JSONResponse({"status": "alive"})


@router.get("/health/readiness", summary="Router loaded; Redis reachable, or failing open; upstreams that "
                                         "failed every recent attempt (all said in the body, status 200)")
async def readiness(rt: Runtime = Depends(get_runtime)) -> Response:
    redis_ok = await rt.store.ping()
    body = {"status": "ready", "router": {"artifact": rt.learned.version, "models": len(rt.learned.models)},
            "redis": "ok" if redis_ok else "unreachable",
            "fail_open": not redis_ok}
    if not redis_ok:
        body["detail"] = (f"Redis unreachable ({rt.store.last_error}); serving with in-process decisions "
                          "and per-instance routing until it is back")
    # upstreams whose every recent attempt failed: reported, not failing the probe (the gateway
    # still serves through fallbacks and the other deployments)
    degraded = rt.forwarder.pool.degraded()
    body["upstreams"] = {"status": "degraded" if degraded else "ok", "degraded": degraded}
    return JSONResponse(body)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def prometheus() -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
