"""What every request meets before any route reads its body: a request id, the API key and
the tenant it belongs to, the tenant's request rate, the size limits, and one line in the
access log. Without API keys, also: the `Host` must name this server (against DNS rebinding)
and writes must come from its own origin (against cross-site forms). Every /v1 answer says
`Cache-Control: no-store`.

The tenant is resolved here, once per request, and left in the request's state
(`request.state.tenant`): routes take it through the `get_tenant` dependency, MCP tools from
the request their call came in on. Without keys, every request is `settings.tenant`'s.

A pure ASGI middleware, so that a request without the key, or with a body over the limit, is
answered before the body is received (a route's dependencies run only after FastAPI has read
and parsed the whole body, multipart uploads included).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from ..config import Settings
from ..errors import printable
from ..tenants import KeyRing
from .urls import API, DOCUMENTS

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("scanrag.access")
access_log.propagate = False  # its own stream, never mixed into the error log ("scanrag")

#: Routes anyone may call: liveness, the static web page, the API's own documentation.
PUBLIC = re.compile(
    r"^/(healthz|static/[\w.-]+|docs|docs/oauth2-redirect|docs/static/[\w.-]+|redoc|openapi\.json)?$"
)
WRITES = ("POST", "PUT", "PATCH", "DELETE")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
JSON_BODY_LIMIT = 1 << 20  # queries, searches, extract and ingest requests are small
UPLOAD_OVERHEAD = 1 << 20  # multipart headers and boundaries
KEY_HINT = "missing or wrong API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


def presented_key(headers: dict[str, str]) -> str | None:
    if "x-api-key" in headers:
        return headers["x-api-key"]
    scheme, _, credentials = headers.get("authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def body_limit(settings: Settings, method: str, path: str) -> int:
    if method == "POST" and path == DOCUMENTS:
        per_file = settings.max_upload_mb << 20
        return per_file * settings.max_upload_files + UPLOAD_OVERHEAD
    return JSON_BODY_LIMIT


def no_store(headers: list[tuple[bytes, bytes]]) -> bytes:
    """`no-store`, after the route's own directives (an event stream's `no-cache`)."""
    given = [v for k, v in headers if k.lower() == b"cache-control" and v != b"no-store"]
    return b", ".join([*given, b"no-store"])


def safe_path(raw: bytes) -> str:
    """The request path as sent (still percent-encoded), so a log line stays one line."""
    return raw.decode("latin-1").encode("unicode_escape").decode("ascii")[:2000]


NO_KEY_WARNING = (
    "no API key (SCANRAG_API_KEY, SCANRAG_API_KEYS): anyone who can reach this server can "
    "read, upload and delete documents. It answers only to localhost, IP addresses and "
    "SCANRAG_ALLOWED_HOSTS, and refuses writes from other web origins; listen on 127.0.0.1 "
    "unless the network is trusted"
)


class RateLimits:
    """Requests per minute, per tenant (a moving window, in this process's memory)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def retry_after(self, tenant: str) -> int | None:
        """None when the request may go on (it is counted), else seconds to wait."""
        per_minute = self.settings.limits_for(tenant).requests_per_minute
        if per_minute is None:
            return None
        rate = RateLimitItemPerMinute(per_minute)
        if self.limiter.hit(rate, "requests", tenant):
            return None
        reset = self.limiter.get_window_stats(rate, "requests", tenant).reset_time
        return max(1, int(reset - time.time()) + 1)


class Guard:
    def __init__(self, app: ASGIApp, settings: Settings, keys: KeyRing) -> None:
        self.app = app
        self.settings = settings
        self.keys = keys
        self.rates = RateLimits(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500  # unless a response starts

        private = scope["path"].startswith(f"{API}/")  # documents' text, images: never cached

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                replaced = {b"x-request-id", b"cache-control"} if private else {b"x-request-id"}
                headers = message.get("headers", [])
                message["headers"] = [
                    *[(k, v) for k, v in headers if k.lower() not in replaced],
                    (b"x-request-id", request_id.encode()),
                    *([(b"cache-control", no_store(headers))] if private else []),
                ]
            await send(message)

        try:
            refusal = self.refuse(scope, headers) or self.limit(scope)
            if refusal is not None:
                code, detail, extra = refusal
                await self.answer(send_with_id, code, detail, extra)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
            method = scope["method"]
            access_log.info(
                "%s %s %s %d %.1fms", request_id, method, safe_path(raw), status, elapsed * 1000
            )
            state = getattr(getattr(scope.get("app"), "state", None), "scanrag", None)
            if state is not None:  # per route template, so ids do not explode the label set
                route = getattr(scope.get("route"), "path", "unmatched")
                state.metrics.requests.labels(method, route, str(status)).inc()
                state.metrics.latency.labels(method, route).observe(elapsed)

    def refuse(
        self, scope: Scope, headers: dict[str, str]
    ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        path, method = scope["path"], scope["method"]
        public = method == "OPTIONS" or bool(PUBLIC.match(path))
        if not public:
            tenant = (
                self.keys.tenant_of(presented_key(headers)) if self.keys else self.settings.tenant
            )
            if tenant is None:
                return 401, KEY_HINT, [(b"www-authenticate", b"Bearer")]
            scope.setdefault("state", {})["tenant"] = tenant
        if not self.keys and path != "/healthz":
            refusal = self.refuse_keyless(scope, headers)
            if refusal is not None:
                return refusal
        limit = body_limit(self.settings, method, path)
        length = headers.get("content-length")
        if method in ("POST", "PUT", "PATCH"):
            if length is None and headers.get("transfer-encoding"):
                return 411, "send the body with a Content-Length header", []
            if length is not None and (not length.isdigit() or int(length) > limit):
                return 413, too_large(limit, path, self.settings), []
        return None

    def limit(self, scope: Scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """429 with Retry-After when the tenant has sent its requests for this minute."""
        tenant = scope.get("state", {}).get("tenant")
        wait = self.rates.retry_after(tenant) if tenant is not None else None
        if wait is None:
            return None
        detail = (
            f"tenant {tenant!r} sent more than its limit of requests per minute "
            f"(SCANRAG_TENANT_REQUESTS_PER_MINUTE); retry in {wait} s"
        )
        return 429, detail, [(b"retry-after", str(wait).encode())]

    def refuse_keyless(
        self, scope: Scope, headers: dict[str, str]
    ) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """With no key, anything that reaches the server may use it; a web page elsewhere
        must not: not through a DNS name rebound to this server (a foreign `Host`), nor by
        posting a form or a fetch from its own origin (a foreign `Origin`)."""
        host = headers.get("host")
        if host is not None and not host_allowed(host, scope, self.settings.allowed_hosts):
            return (
                400,
                f"this server does not answer to the host {printable(host)[:100]!r}: without an "
                "API key it answers to localhost, IP addresses and SCANRAG_ALLOWED_HOSTS",
                [],
            )
        origin = headers.get("origin")
        if (
            scope["method"] in WRITES
            and origin is not None
            and urlsplit(origin).netloc.lower() != (host or "").lower()
            and origin not in self.settings.cors_origins
        ):
            return (
                403,
                f"a write from another origin ({printable(origin)[:100]}) without an API key; "
                "set SCANRAG_API_KEY, or list the origin in SCANRAG_CORS_ORIGINS",
                [],
            )
        return None

    @staticmethod
    async def answer(send: Send, code: int, detail: str, extra: list) -> None:
        kind = "RateLimited" if code == 429 else "RequestRefused"
        body = json.dumps({"detail": detail, "type": kind}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": code, "headers": headers + extra})
        await send({"type": "http.response.body", "body": body})


def host_allowed(host: str, scope: Scope, allowed: list[str]) -> bool:
    """True when a `Host` header names this server: localhost, an IP address (a rebound DNS
    name is never one), the address the request came in on, or a listed name."""
    name = host.strip().lower()
    if name.startswith("["):  # [::1]:8000
        name = name[1 : name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    name = name.rstrip(".")
    if name == "localhost" or name.endswith(".localhost") or "*" in allowed:
        return True
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    server = scope.get("server") or ("", None)
    return name == str(server[0]).lower() or name in {entry.lower() for entry in allowed}


def too_large(limit: int, path: str, settings: Settings) -> str:
    if path == DOCUMENTS:
        return (
            f"the upload is larger than {limit >> 20} MB in all ({settings.max_upload_files} "
            f"files of at most {settings.max_upload_mb} MB: SCANRAG_MAX_UPLOAD_FILES, "
            "SCANRAG_MAX_UPLOAD_MB)"
        )
    return f"the request body is larger than {limit >> 10} KB"


def configure_access_log(settings: Settings) -> logging.Handler | None:
    """Attach the access log's handler (stderr or a file); the caller removes it again."""
    target = settings.access_log.strip()
    if target.lower() == "off":
        return None
    handler: logging.Handler = (
        logging.StreamHandler(sys.stderr)
        if target.lower() == "stderr"
        else logging.FileHandler(target, encoding="utf-8")
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    return handler
