"""The FastAPI application factory.

uvicorn --factory scanrag.api.app:create_app      # or: scanrag serve
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from ..config import Settings
from ..errors import ScanragError, printable
from ..retrieval.index import Index
from .deps import AppState, get_tenant
from .guard import NO_KEY_WARNING, Guard, access_log, configure_access_log
from .jobs import JobManager
from .mcp_server import mount as mount_mcp
from .metrics import Metrics
from .paths import HidePaths
from .routes import chat, documents, images, ingest, jobs, query, system, web

log = logging.getLogger("scanrag.api")

DESCRIPTION = """
Ask questions over scanned documents; every answer cites the page regions it came from.

**Coordinates.** `bbox` is `[x0, y0, x1, y1]` in pixels of the stored page image
(`page_width` × `page_height`), origin at the top-left corner. `bbox_norm` is the same box as
integers 0–1000 (x scaled by the page width, y by the page height), the GLM-OCR / GLM-V
convention. Region ids read `{doc_id}:p{page}:r{index}`.

**Auth and tenants.** When the server has API keys (`SCANRAG_API_KEY`, `SCANRAG_API_KEYS`,
a keys file), send one as `Authorization: Bearer <key>` or `X-API-Key: <key>` on every route
but `/healthz`, the web page and these docs. Each key belongs to a tenant, and every route
answers for that tenant alone: its documents, jobs, images, search results and answers.
Another tenant's ids answer 404, as unknown ids do. A tenant over its requests per minute gets
429 with `Retry-After`; an upload that would take it over its documents or pages, 429.

**Without keys** the server answers only requests whose `Host` is localhost, an IP address
or in `SCANRAG_ALLOWED_HOSTS` (400 otherwise), and refuses writes from another origin (403).

**Metadata.** Documents carry the `metadata` given at upload (a form field holding a JSON
object) or ingest, returned in listings and citations; `filters: {"metadata": {"dept":
"finance"}}` selects on it, and `PATCH /v1/documents/{doc_id}` changes it.

**Limits.** A JSON body is at most 1 MB; an upload at most `SCANRAG_MAX_UPLOAD_FILES` files of
`SCANRAG_MAX_UPLOAD_MB` each (413 from `Content-Length` before the body is read, and as soon
as one file's bytes pass the limit); pages and pixels are checked per file
(`SCANRAG_MAX_PAGES`, `SCANRAG_MAX_PIXELS`); highlighted pages and crops decode at most
`SCANRAG_IMAGE_MAX_PIXELS`. `?wait=true` waits at most `SCANRAG_WAIT_TIMEOUT` seconds (then
202 with the job). Every response carries `X-Request-ID`; `/v1` answers are `no-store`.

**Jobs** are recorded before their 202 and survive a restart of the server (`resumed` counts
how often one was picked up again).
"""

def create_app(
    settings: Settings | None = None, *, open_index: Callable[[Settings], Index] = Index
) -> FastAPI:
    """The app; `open_index` opens its index at every start (an Index with parts of one's
    own: a shared encoder, a store, a runner)."""
    settings = settings or Settings()
    keys = settings.key_ring()  # a bad keys file fails here, not at a request

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        handler = configure_access_log(settings)
        if not keys:
            log.warning(NO_KEY_WARNING)
        index = open_index(settings)
        index.data.clear_incoming()
        metrics = Metrics()
        manager = JobManager(index, on_report=metrics.record_ingest)
        app.state.scanrag = AppState(settings=settings, index=index, jobs=manager, metrics=metrics)
        try:
            async with mcp_sessions():
                yield
        finally:
            if manager.close(settings.shutdown_timeout):  # else the worker still uses the index
                index.close()
            if handler is not None:
                access_log.removeHandler(handler)
                handler.close()

    app = FastAPI(
        title="scanrag",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by routes/web.py from installed files, not from a CDN
        redoc_url=None,
    )
    secured = [Depends(get_tenant)]
    for module in (documents, ingest, jobs, images, query, chat):
        app.include_router(module.router, dependencies=secured)
    app.include_router(system.router)
    app.include_router(web.router)  # the page at / (static, no data: no key needed)
    mcp_sessions = mount_mcp(app)  # MCP at /mcp, behind the same middleware (the lifespan runs it)

    @app.exception_handler(ScanragError)
    async def scanrag_error(request: Request, exc: ScanragError) -> JSONResponse:
        return JSONResponse(
            {"detail": str(exc), "type": type(exc).__name__}, status_code=exc.http_status
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """FastAPI's 422 without the `input` echoed back: a NaN, an infinity or a lone
        surrogate sent in would make the answer itself unencodable (a 500)."""
        detail = [
            {
                "type": error["type"],
                "loc": [printable(str(part)) for part in error["loc"]],
                "msg": printable(str(error["msg"])),
            }
            for error in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "")
        log.exception(
            "unhandled error on %s %s (request id %s)", request.method, request.url.path, request_id
        )
        return JSONResponse(
            {
                "detail": f"internal error (request id {request_id}); see the server log",
                "type": "InternalError",
            },
            status_code=500,
            headers={"X-Request-ID": request_id},
        )

    # Outermost first: CORS answers preflights (which carry no key), then the guard checks the
    # key and the body size before anything reads the body; answers leave without the
    # server's own paths.
    app.add_middleware(HidePaths, settings=settings)
    app.add_middleware(Guard, settings=settings, keys=keys)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "PATCH", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            allow_credentials=False,  # the key travels in a header, never in a cookie
            max_age=600,
        )
    return app
