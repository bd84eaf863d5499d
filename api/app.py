"""The FastAPI application factory.

uvicorn --factory scanrag.api.app:create_app      # or: scanrag serve
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from ..config import Settings
from ..errors import ScanragError
from ..retrieval.index import Index
from .deps import AppState, require_api_key
from .jobs import JobManager
from .metrics import Metrics
from .routes import documents, images, ingest, jobs, query, system, web

log = logging.getLogger("scanrag.api")

DESCRIPTION = """
Ask questions over scanned documents; every answer cites the page regions it came from.

**Coordinates.** `bbox` is `[x0, y0, x1, y1]` in pixels of the stored page image
(`page_width` × `page_height`), origin at the top-left corner. `bbox_norm` is the same box as
integers 0–1000 (x scaled by the page width, y by the page height), the GLM-OCR / GLM-V
convention. Region ids read `{doc_id}:p{page}:r{index}`.

**Auth.** When the server has `SCANRAG_API_KEY`, send it as `Authorization: Bearer <key>` or
`X-API-Key: <key>` on every route but `/healthz`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        index = Index(settings)
        metrics = Metrics()
        manager = JobManager(index, on_report=metrics.record_ingest)
        app.state.scanrag = AppState(settings=settings, index=index, jobs=manager, metrics=metrics)
        try:
            yield
        finally:
            manager.close()
            index.close()

    app = FastAPI(title="scanrag", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    secured = [Depends(require_api_key)]
    for module in (documents, ingest, jobs, images, query):
        app.include_router(module.router, dependencies=secured)
    app.include_router(system.router)
    app.include_router(web.router)  # the page at / (static, no data: no key needed)

    @app.exception_handler(ScanragError)
    async def scanrag_error(request: Request, exc: ScanragError) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "type": type(exc).__name__}, status_code=exc.http_status
        )

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        request_id = getattr(request.state, "request_id", "")
        return JSONResponse(
            {
                "detail": f"internal error (request id {request_id}); see the server log",
                "type": "InternalError",
            },
            status_code=500,
        )

    @app.middleware("http")
    async def observe(request: Request, call_next):  # Starlette middleware signature
        request.state.request_id = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        state: AppState | None = getattr(request.app.state, "scanrag", None)
        if state is not None:
            elapsed = time.perf_counter() - started
            state.metrics.requests.labels(request.method, path, str(response.status_code)).inc()
            state.metrics.latency.labels(request.method, path).observe(elapsed)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    return app
