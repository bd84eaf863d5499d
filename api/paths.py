"""The server's own folders stay its own: in every JSON or event-stream answer, a file below
the data dir or below an allowed root is named relative to it (`uploads/3f9c…/scan.png`,
`invoices/2024/a.pdf`), never by its absolute path, in paths and in error messages alike.

An ASGI middleware over the whole body, so that no route, model or message can forget it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import Settings
from .guard import ASGIApp, Message, Receive, Scope, Send

TEXT_TYPES = (b"application/json", b"text/event-stream")


def replacements(settings: Settings) -> list[tuple[bytes, bytes]]:
    """(absolute prefix as it appears in JSON, what stands for it), longest first: the data
    dir and each allowed root, spelled as given and with links resolved."""
    folders = {Path(settings.data_dir), *settings.allowed_roots}
    spelled = {os.path.abspath(f) for f in folders} | {os.path.realpath(f) for f in folders}
    pairs: list[tuple[bytes, bytes]] = []
    for prefix in sorted((p for p in spelled if p != os.sep), key=len, reverse=True):
        inner = json.dumps(prefix, ensure_ascii=False)[1:-1].encode("utf-8", "surrogateescape")
        pairs += [(inner + b"/", b""), (b'"' + inner + b'"', b'"."')]
    return pairs


class HidePaths:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.pairs = replacements(settings)

    def hide(self, body: bytes) -> bytes:
        for prefix, replacement in self.pairs:
            body = body.replace(prefix, replacement)
        return body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: Message | None = None  # held until the body is known, to fix its length
        textual = sized = False
        held: list[bytes] = []

        async def send_hidden(message: Message) -> None:
            nonlocal start, textual, sized
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers", []))
                textual = headers.get(b"content-type", b"").split(b";")[0] in TEXT_TYPES
                sized = b"content-length" in headers
                if textual:
                    start = message
                    return
            elif message["type"] == "http.response.body" and textual:
                if sized:  # a body of known length: rewritten whole, its length fixed
                    held.append(message.get("body", b""))
                    if message.get("more_body", False):
                        return
                    body = self.hide(b"".join(held))
                    assert start is not None
                    start["headers"] = [
                        *[(k, v) for k, v in start["headers"] if k.lower() != b"content-length"],
                        (b"content-length", b"%d" % len(body)),
                    ]
                    message = {**message, "body": body}
                else:  # a stream: each event is sent whole, so rewritten on its own
                    message = {**message, "body": self.hide(message.get("body", b""))}
                if start is not None:
                    await send(start)
                    start = None
            await send(message)

        await self.app(scope, receive, send_hidden)
