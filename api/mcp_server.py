"""scanrag as an MCP server (the official `mcp` SDK, 2.x): tools `search`, `ask`,
`get_region_image` and `list_documents` over the same index as the HTTP API.

    scanrag mcp --data-dir DIR                  # stdio: an assistant (Claude Desktop...) spawns it
    scanrag mcp --transport http --port 8000    # streamable HTTP at http://127.0.0.1:8000/mcp
    scanrag serve                               # the HTTP API, with the same endpoint at /mcp

The tools answer with the HTTP API's own objects: `search` the hits of /v1/search, `ask` the
answer and citations of /v1/query as structured content (and as text for models that read only
text), `get_region_image` the JPEG of /v1/regions/{id}/crop as image content, so a model can
look at the evidence. Over HTTP the endpoint sits behind the API's guard (API key, keyless host
and origin checks, body limit) and its path hiding, both standalone and inside `serve`.

Tools act for a tenant: over HTTP the caller's, as the guard found it from the API key and
left in the request's state; over stdio the one `scanrag mcp --tenant` names.

It lives in `api/` because it is one more way in over a wire: it reuses the guard, the crop
encoding and the app's lifespan; `connectors/` holds the in-process framework adapters.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.routing import Route

from .. import __version__
from ..config import Settings
from ..errors import ConfigError, ScanragError
from ..retrieval.index import Index
from ..retrieval.reports import DocumentInfo
from ..retrieval.store import SearchFilters
from .guard import (
    NO_KEY_WARNING,
    ASGIApp,
    Guard,
    Receive,
    Scope,
    Send,
    configure_access_log,
)
from .imaging import jpeg_bytes
from .paths import HidePaths
from .schemas import QueryResponse, Question, SearchResponse

MISSING = "the MCP server needs the mcp package (2.x): pip install 'scanrag[mcp]'"
try:
    from mcp.server.mcpserver import Context, Image, MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.server.transport_security import TransportSecuritySettings
    from mcp.types import CallToolResult, TextContent, ToolAnnotations
except ImportError:  # the `mcp` extra is not installed (or an mcp 1.x is)
    MCPServer = None  # type: ignore[assignment,misc]

INSTRUCTIONS = """\
Search and question answering over scanned documents (invoices, receipts, forms, letters; \
English and Chinese) indexed by scanrag. `ask` answers with [n] markers, each a citation of a \
page region: its document, page, region id and box (`bbox` in pixels of the page image, origin \
top-left; `bbox_norm` the same box in 0-1000). `get_region_image` shows a cited region so you \
can check the evidence. `search` returns ranked passages with their regions. `list_documents` \
lists what is indexed; pass a `doc_id` in `filters` to ask about one document, or \
`{"metadata": {"key": "value"}}` to ask within the documents that carry that metadata."""

TopK = Annotated[int, Field(ge=1, le=50, description="Passages to read.")]
RegionId = Annotated[
    str, Field(max_length=128, description="{doc_id}:p{page}:r{index}, from ask or search.")
]
_T = TypeVar("_T")


class DocumentList(BaseModel):
    documents: list[DocumentInfo]


def _checked(step: Callable[[], _T]) -> _T:
    """scanrag's own errors reach the model as their one-line message (an anticipated
    `ToolError`); anything else is a crash the SDK reports without details and logs."""
    try:
        return step()
    except ScanragError as exc:
        raise ToolError(str(exc)) from exc


def answer_text(answer: QueryResponse) -> str:
    """The answer, then one line per citation: where it is and what it says."""
    lines = [answer.answer]
    for c in answer.citations:
        box = ",".join(str(v) for v in c.bbox)
        lines.append(
            f"[{c.n}] {c.source} page {c.page}, region {c.region_id} ({c.label}, bbox {box}): "
            f"{' '.join(c.text.split())}"
        )
    return "\n".join(lines)


#: The index a tool call works on, given the HTTP request it came in (None over stdio).
IndexFor = Callable[[Any], Index]


def build_server(index_for: IndexFor) -> MCPServer:
    """The MCP server over the index `index_for(request)` returns for each tool call: the
    HTTP API hands over the index its lifespan opens, acting for the request's tenant."""
    if MCPServer is None:
        raise ConfigError(MISSING)
    server = MCPServer(
        "scanrag", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    def index(ctx: Context) -> Index:
        return index_for(ctx.request_context.request)

    @server.tool(annotations=read_only)
    def search(
        ctx: Context, query: Question, top_k: TopK = 5, filters: SearchFilters | None = None
    ) -> SearchResponse:
        """Ranked passages for a query (dense + keyword search), each with the page regions it
        came from: region ids, labels, boxes and the lines inside them."""
        hits = _checked(lambda: index(ctx).search(query, top_k, filters))
        return SearchResponse(query=query, hits=hits)

    @server.tool(annotations=read_only)
    def ask(
        ctx: Context, question: Question, top_k: TopK = 5, filters: SearchFilters | None = None
    ) -> Annotated[CallToolResult, QueryResponse]:
        """Answer a question from the documents. Every [n] in the answer is a citation of a
        page region (document, page, region id, box, the lines that answer); an answer the
        documents do not hold says so, with no citations."""
        result = QueryResponse.of(_checked(lambda: index(ctx).ask(question, top_k, filters)))
        return CallToolResult(
            content=[TextContent(type="text", text=answer_text(result))],
            structured_content=result.model_dump(mode="json"),
        )

    @server.tool(annotations=read_only)
    def get_region_image(
        ctx: Context,
        region_id: RegionId,
        pad: Annotated[int, Field(ge=0, le=500, description="Pixels of margin.")] = 0,
    ) -> Image:
        """A region cut out of its page image (JPEG), to look at the evidence of a citation."""
        try:
            crop = _checked(lambda: index(ctx).region_image(region_id, pad))
        except ValueError:  # not a region id at all
            crop = None
        if crop is None:
            raise ToolError(f"no region {region_id!r}; take region ids from ask or search")
        return Image(data=jpeg_bytes(crop), format="jpeg")

    @server.tool(annotations=read_only)
    def list_documents(ctx: Context) -> DocumentList:
        """Every indexed document: its id (for `filters`), file, pages, status and metadata."""
        return DocumentList(documents=_checked(lambda: index(ctx).documents()))

    return server


def tenant_of(request: Any) -> str:
    """The tenant the guard found for an HTTP request (it never lets one through without)."""
    tenant = getattr(getattr(request, "state", None), "tenant", None)
    if tenant is None:
        raise ToolError("no tenant for this request")
    return tenant


def _sessions(server: MCPServer) -> Callable[[], contextlib.AbstractAsyncContextManager[None]]:
    """What an app's lifespan enters to serve MCP: the SDK's streamable-HTTP session manager,
    stateless (every POST stands alone, so nothing outlives a key check). A session manager
    runs once, so each start of the app makes a new one. The guard checks `Host` and `Origin`
    (with the API's own allowed hosts), so the SDK's localhost-only check is off."""

    @contextlib.asynccontextmanager
    async def sessions() -> AsyncIterator[None]:
        server.streamable_http_app(
            stateless_http=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        async with server.session_manager.run():
            yield

    return sessions


def _route(server: MCPServer) -> Route:
    """`/mcp`, POST only: a stateless server sends nothing unasked, so it offers no GET
    stream (405, as the MCP specification allows) — the SDK's would stay open forever."""
    return Route("/mcp", _Endpoint(server), methods=["POST"])


class _Endpoint:
    """An ASGI app (so Starlette's Route passes the raw request through): each request goes
    to the session manager of the app's current start."""

    def __init__(self, server: MCPServer) -> None:
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.server.session_manager.handle_request(scope, receive, send)


def http_app(server: MCPServer, settings: Settings) -> ASGIApp:
    """`scanrag mcp --transport http`: the endpoint behind the HTTP API's guard and path
    hiding, started as `serve` starts (a bad keys file fails here; no key is a warning)."""
    keys = settings.key_ring()
    if not keys:
        logging.getLogger("scanrag.api").warning(NO_KEY_WARNING)
    configure_access_log(settings)
    sessions = _sessions(server)
    app = Starlette(routes=[_route(server)], lifespan=lambda _: sessions())
    return Guard(HidePaths(app, settings), settings, keys)


def mount(app: FastAPI) -> Callable[[], contextlib.AbstractAsyncContextManager[Any]]:
    """Serve MCP at `/mcp` of the HTTP API, behind its middleware (the same key), over the
    index its lifespan opens. Returns what the lifespan must enter around serving. Without
    the `mcp` package, `/mcp` answers 501 saying what to install."""
    try:
        server = build_server(lambda request: app.state.scanrag.index.as_tenant(tenant_of(request)))
    except ConfigError as exc:
        detail = {"detail": str(exc), "type": "ConfigError"}

        async def unavailable(request: Any) -> JSONResponse:
            return JSONResponse(detail, status_code=501)

        app.router.routes.append(Route("/mcp", unavailable, methods=["POST"]))
        return contextlib.nullcontext
    app.router.routes.append(_route(server))
    return _sessions(server)
