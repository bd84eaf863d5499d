"""Test helpers: search hits built by hand, a fake OpenAI-compatible server, a live uvicorn.

`hit()` lays a chunk out the way `retrieval.chunking` does (regions joined by newlines, each
region's lines joined by newlines, character spans for regions and lines), so the answerers
see what a real search returns without OCR or an index.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from scanrag.ingest.model import BBox
from scanrag.retrieval.results import HitLine, HitRegion, SearchHit
from scanrag.testing import pdf_paragraph, text_pdf

A4 = (1654, 2339)


@dataclass
class R:
    """A region for `hit()`: its label and its lines as (text, (x0, y0, x1, y1))."""

    label: str
    lines: list[tuple[str, tuple[int, int, int, int]]]
    index: int | None = None


def hit(
    doc_id: str,
    regions: list[R],
    *,
    source: str | None = None,
    heading: str = "",
    score: float = 0.5,
    page: int = 1,
    size: tuple[int, int] = A4,
    chunk: int = 0,
) -> SearchHit:
    text = f"{heading}\n" if heading else ""
    out: list[HitRegion] = []
    for number, region in enumerate(regions):
        start = len(text)
        lines = []
        for i, (line_text, box) in enumerate(region.lines):
            if i:
                text += "\n"
            lines.append(HitLine(text=line_text, bbox=BBox(*box), start=len(text), end=0))
            text += line_text
            lines[-1].end = len(text)
        boxes = [BBox(*box) for _, box in region.lines]
        bbox = BBox(
            min(b.x0 for b in boxes),
            min(b.y0 for b in boxes),
            max(b.x1 for b in boxes),
            max(b.y1 for b in boxes),
        )
        index = region.index if region.index is not None else number
        out.append(
            HitRegion(
                region_id=f"{doc_id}:p{page}:r{index}",
                page=page,
                bbox=bbox,
                bbox_norm=bbox.to_norm(*size),
                label=region.label,
                start=start,
                end=len(text),
                page_width=size[0],
                page_height=size[1],
                lines=lines,
            )
        )
        text += "\n"
    return SearchHit(
        chunk_id=f"{doc_id}:c{chunk}",
        doc_id=doc_id,
        source=source or f"scans/{doc_id}.png",
        score=score,
        text=text.rstrip("\n"),
        heading=heading,
        pages=[page],
        regions=out,
    )


INVOICE = "3f9c0a1b2c3d4e5f"


def invoice_hits(doc_id: str = INVOICE, number: str = "INV-1001", total: str = "$2,448.50"):
    """An invoice as search returns it: its key–value block and totals in one chunk, the
    "Total due" key and its amount as two regions on one row, the line items in another."""
    head = hit(
        doc_id,
        [
            R("title", [(f"INVOICE {number}", (150, 150, 700, 210))]),
            R(
                "text",
                [
                    ("Seller: Orchid Logistics Ltd.", (150, 300, 545, 340)),
                    ("Date of issue: 25 June 2025", (150, 420, 555, 460)),
                    ("Payment due: 25 July 2025", (150, 480, 530, 520)),
                ],
            ),
            R("text", [("Total due:", (900, 880, 1060, 925))]),
            R("text", [(total, (1180, 880, 1330, 927))]),
            R(
                "text",
                [
                    ("Questions about this invoice should be sent to", (150, 1000, 820, 1040)),
                    ("Tariq Tanaka in the accounts department. Late", (150, 1050, 800, 1090)),
                    ("payments incur a fee of 2% per month.", (150, 1100, 700, 1140)),
                ],
            ),
        ],
        source=f"scans/invoice_{number}.png",
        heading=f"INVOICE {number}",
        score=0.9,
    )
    table = hit(
        doc_id,
        [
            R(
                "table",
                [
                    ("Item", (152, 594, 220, 624)),
                    ("Qty", (712, 594, 770, 624)),
                    ("Unit price", (912, 594, 1060, 624)),
                    ("Amount", (1192, 594, 1300, 624)),
                    ("Drill bit 6mm", (152, 654, 370, 684)),
                    ("25", (712, 654, 745, 684)),
                    ("$28.60", (912, 654, 1010, 684)),
                    ("$715.00", (1192, 654, 1310, 684)),
                    ("Fuse 10A", (152, 714, 290, 744)),
                    ("120", (712, 714, 760, 744)),
                    ("$4.55", (912, 714, 990, 744)),
                    ("$546.00", (1192, 714, 1310, 744)),
                ],
                index=5,
            )
        ],
        source=f"scans/invoice_{number}.png",
        heading=f"INVOICE {number}",
        score=0.6,
        chunk=1,
    )
    return [head, table]


AMOUNT = "$365,793.03"


def memo_pdf(path: Path) -> Path:
    """A born-digital memo (read by pdf-text, no OCR): a title, a header block, two paragraphs."""
    items = [(72, 80, "MEMORANDUM MEMO-87707", 18)]
    items += [(72, 130, "From: Rosa Santos", 11), (72, 148, "To: Chen Haddad", 11)]
    items += pdf_paragraph(
        72,
        200,
        f"The steering committee approved a budget of {AMOUNT} for Project Falcon-31. "
        "Spending is reviewed every quarter by the finance office.",
        450,
    )
    items += pdf_paragraph(
        72,
        300,
        "The kickoff meeting for Project Falcon-31 takes place in Room 252 on 3 March 2025.",
        450,
    )
    return text_pdf([items], path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- a fake OpenAI-compatible server ----------------------------------------------------------


@dataclass
class Reply:
    """What the fake server does with one request: an HTTP status and a text to answer with
    (as a chat.completion, or as chat.completion.chunk events when the client streams)."""

    text: str = ""
    status: int = 200
    delay: float = 0.0
    chunks: list[str] | None = None  # how a streamed answer is split (default: by word)
    respond: Callable[[dict[str, Any]], str] | None = None  # the text from the request body
    stall: float = 0.0  # streamed: send the first chunk, then go quiet this long and hang up


@dataclass
class FakeOpenAI:
    """Records every request; answers from a queue of `Reply`s (the last one repeats)."""

    replies: list[Reply] = field(default_factory=lambda: [Reply("")])
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    def next_reply(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }


def _handler(fake: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append(body)
            fake.headers.append({k.lower(): v for k, v in self.headers.items()})
            reply = fake.next_reply()
            if reply.delay:
                time.sleep(reply.delay)
            if self.path != "/v1/chat/completions":
                self._send(404, b'{"error": {"message": "no such route"}}', "application/json")
                return
            if reply.status != 200:
                error = {"error": {"message": f"fake error {reply.status}", "type": "server"}}
                self._send(reply.status, json.dumps(error).encode(), "application/json")
                return
            model = body["model"]
            text = reply.respond(body) if reply.respond else reply.text
            if not body.get("stream"):
                payload = json.dumps(_completion(model, text)).encode()
                self._send(200, payload, "application/json")
                return
            parts = reply.chunks if reply.chunks is not None else _words(text)
            events = [_chunk(model, {"role": "assistant", "content": ""})]
            events += [_chunk(model, {"content": part}) for part in parts]
            events.append(_chunk(model, {}, "stop"))
            stream = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            if not reply.stall:
                self._send(200, stream.encode(), "text/event-stream")
                return
            self.send_response(200)  # no length: the body ends when the connection closes
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in events[:2]:
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
            time.sleep(reply.stall)
            self.close_connection = True

    return Handler


def _words(text: str) -> list[str]:
    out, word = [], ""
    for char in text:
        word += char
        if char == " ":
            out.append(word)
            word = ""
    return [*out, word] if word else out


@contextmanager
def fake_openai(*replies: Reply) -> Iterator[FakeOpenAI]:
    """A fake OpenAI-compatible server on 127.0.0.1; `fake.url` is its base URL (…/v1)."""
    fake = FakeOpenAI(replies=list(replies) or [Reply("")])
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


# --- a live uvicorn -------------------------------------------------------------------------


@contextmanager
def live_server(app: Any, ready: Callable[[str], bool] | None = None) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)


def sse_events(lines: Iterator[str]) -> list[tuple[str, Any]]:
    """Parse a text/event-stream into (event name, decoded JSON data) pairs, in order."""
    events: list[tuple[str, Any]] = []
    name, data = "message", []
    for line in lines:
        if line == "":
            if data:
                events.append((name, json.loads("\n".join(data))))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
    if data:
        events.append((name, json.loads("\n".join(data))))
    return events


def streamed_query(client: Any, body: dict[str, Any]) -> list[tuple[str, Any]]:
    """POST /v1/query with stream=true (httpx or TestClient): its events, once the answer is
    checked to be a 200 event stream."""
    with client.stream("POST", "/v1/query", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return sse_events(response.iter_lines())
