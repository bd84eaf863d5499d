"""Health and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response, status

from ...config import Settings
from ..deps import get_metrics, get_settings, get_tenant
from ..metrics import Metrics

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness; never needs the API key."""
    return {"status": "ok"}


@router.get("/metrics", response_class=Response)
def metrics(
    metrics: Metrics = Depends(get_metrics),
    tenant: str = Depends(get_tenant),
    settings: Settings = Depends(get_settings),
) -> Response:
    """Prometheus text format: request counts and latencies, ingest counters. They count
    every tenant's requests, so they are the operator's: the server's own tenant
    (`SCANRAG_TENANT`, `default` unless set; every caller of a server without keys)."""
    if tenant != settings.tenant:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"metrics cover every tenant: use a key of the server's tenant {settings.tenant!r}",
        )
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")
