"""Server-sent events for routes that answer JSON or a stream (`/v1/query`, `/v1/chat/completions`).

FastAPI's own SSE support (`fastapi.sse`) adds the no-cache headers and `: ping` keep-alives only
to endpoints that *are* generators; these routes decide per request (`stream: true`), so they
return a response built here from FastAPI's pieces: its `EventSourceResponse` type, its event
formatter and its keep-alive comment, with the same headers it sends. Without the headers a
proxy (nginx) buffers the stream or a cache keeps it; without keep-alives a proxy or a client
drops a connection that stays quiet while the answerer thinks.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
from fastapi.sse import KEEPALIVE_COMMENT, EventSourceResponse, format_sse_event

from ..errors import ScanragError

log = logging.getLogger("scanrag.api")

#: What FastAPI sends with its own event streams.
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
#: Seconds of silence before a `: ping` comment (FastAPI's interval).
KEEPALIVE_SECONDS = 15.0
#: What a client is told of a failure that is not a ScanragError (the details are logged).
INTERNAL_ERROR = "internal error while answering; see the server log"


def sse_event(data: Any, event: str | None = None) -> bytes:
    """One event: `data` as JSON, under an `event:` name when given."""
    return format_sse_event(data_str=json.dumps(data, ensure_ascii=False), event=event)


def ending_in_error(frames: Iterator[bytes], error: Callable[[str, str], bytes]) -> Iterator[bytes]:
    """`frames`, and when they fail, one frame `error(message, kind)` and the end: the 200 is
    sent, so the app's error handlers can no longer answer. A ScanragError is told as it is
    (its message and class name); anything else is logged and told as INTERNAL_ERROR /
    `InternalError`, without its details. Each route keeps its own error frame's shape."""
    try:
        yield from frames
    except ScanragError as exc:
        yield error(str(exc), type(exc).__name__)
    except Exception:
        log.exception("the answer stream failed")
        yield error(INTERNAL_ERROR, "InternalError")


async def with_keepalive(frames: Iterator[bytes]) -> AsyncIterator[bytes]:
    """The frames of a blocking iterator (an answerer's stream), each pulled in a worker
    thread (anyio's, as Starlette streams a sync iterator), with a `: ping` comment whenever
    none came for KEEPALIVE_SECONDS.

    `asyncio.wait` with a timeout never cancels the pending pull, so no frame is lost to a
    ping. When the client goes away, the iterator is closed once its current pull returns."""
    end = object()

    def pull() -> asyncio.Future[Any]:
        return asyncio.ensure_future(anyio.to_thread.run_sync(next, frames, end))

    pending = pull()
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS)
            if not done:
                yield KEEPALIVE_COMMENT
                continue
            frame = pending.result()
            if frame is end:
                return
            yield frame
            pending = pull()
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            if pending.done():
                close()
            else:  # a generator cannot be closed while another thread runs it
                pending.add_done_callback(lambda _: close())


def event_stream(frames: Iterator[bytes]) -> EventSourceResponse:
    """A `text/event-stream` response of `frames`, with FastAPI's SSE headers and keep-alives."""
    return EventSourceResponse(with_keepalive(frames), headers=SSE_HEADERS)
