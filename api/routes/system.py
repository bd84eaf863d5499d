"""Health and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response, status

from ...tenants import DEFAULT
from ..deps import get_metrics, get_tenant
from ..metrics import Metrics

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness; never needs the API key."""
    return {"status": "ok"}


@router.get("/metrics", response_class=Response)
def metrics(
    metrics: Metrics = Depends(get_metrics), tenant: str = Depends(get_tenant)
) -> Response:
    """Prometheus text format: request counts and latencies, ingest counters. They count
    every tenant's requests, so they are the operator's: a key of the default tenant."""
    if tenant != DEFAULT:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "metrics cover every tenant: use a default tenant's key"
        )
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")
