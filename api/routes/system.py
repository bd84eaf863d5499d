"""Health and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from ..deps import get_metrics, require_api_key
from ..metrics import Metrics

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness; never needs the API key."""
    return {"status": "ok"}


@router.get("/metrics", response_class=Response, dependencies=[Depends(require_api_key)])
def metrics(metrics: Metrics = Depends(get_metrics)) -> Response:
    """Prometheus text format: request counts and latencies, ingest counters."""
    return Response(metrics.render(), media_type="text/plain; version=0.0.4")
