"""Health and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from ..deps import AppState, get_state, require_api_key

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness; never needs the API key."""
    return {"status": "ok"}


@router.get("/metrics", response_class=Response, dependencies=[Depends(require_api_key)])
def metrics(state: AppState = Depends(get_state)) -> Response:
    """Prometheus text format: request counts and latencies, ingest counters."""
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")
