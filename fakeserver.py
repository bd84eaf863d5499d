"""Real HTTP fakes of model servers, for tests and offline demos.

`FakeServer` listens on 127.0.0.1 in a background thread and answers every POST through a
handler function, recording each request so a test can check exactly what a backend sent.
The helpers build replies in the shapes the real servers use: OpenAI chat completions (vLLM,
SGLang, Ollama, Zhipu) and Zhipu MaaS `layout_parsing`.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any  # the decoded JSON


@dataclass
class Reply:
    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a slow server)


Handler = Callable[[Request], Reply]


class FakeServer:
    """An HTTP server on 127.0.0.1 whose POST replies come from `handler`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                request = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with fake._lock:
                    fake.requests.append(request)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                try:
                    reply = fake.handler(request)
                    time.sleep(reply.delay)
                    payload = (
                        reply.body.encode()
                        if isinstance(reply.body, str)
                        else json.dumps(reply.body, ensure_ascii=False).encode()
                    )
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                finally:
                    with fake._lock:
                        fake.in_flight -= 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def chat_completion(
    content: str, model: str = "glm-ocr", finish_reason: str = "stop"
) -> dict[str, Any]:
    """A /v1/chat/completions reply exactly as vLLM and OpenAI shape it."""
    return {
        "id": "chatcmpl-fake0001",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
    }


def error_body(message: str, code: int) -> dict[str, Any]:
    """An OpenAI-style error reply body."""
    return {"error": {"message": message, "type": "server_error", "code": code}}


def layout_parsing(
    pages: list[list[dict[str, Any]]], sizes: list[tuple[int, int]], model: str = "glm-ocr"
) -> dict[str, Any]:
    """A Zhipu MaaS layout_parsing reply: regions per page in pixels of `sizes`."""
    markdown = "\n\n".join(str(region.get("content") or "") for page in pages for region in page)
    return {
        "id": "task_fake0001",
        "created": int(time.time()),
        "model": model,
        "md_results": markdown,
        "layout_details": pages,
        "layout_visualization": [],
        "data_info": {
            "num_pages": len(pages),
            "pages": [{"width": width, "height": height} for width, height in sizes],
        },
        "usage": {
            "prompt_tokens": 5120,
            "completion_tokens": 412,
            "prompt_tokens_details": {"cached_tokens": 0},
            "total_tokens": 5532,
        },
        "request_id": "req_fake0001",
    }


def decode_data_uri(uri: str) -> tuple[str, bytes]:
    """(mime type, bytes) of a `data:<mime>;base64,...` URI; raises ValueError otherwise."""
    head, sep, data = uri.partition(",")
    if not (sep and head.startswith("data:") and head.endswith(";base64")):
        raise ValueError(f"not a base64 data URI: {uri[:40]!r}")
    return head[5:-7], base64.b64decode(data, validate=True)


def chat_image_and_prompt(body: dict[str, Any]) -> tuple[Image.Image, str, str]:
    """(image, prompt, data-URI mime) of a one-image chat request; asserts its shape.

    The shape GLM-OCR's SDK sends: one user message whose content is an image_url part
    followed by a text part.
    """
    messages = body["messages"]
    assert len(messages) == 1 and messages[0]["role"] == "user", messages
    parts = messages[0]["content"]
    assert [part["type"] for part in parts] == ["image_url", "text"], parts
    mime, data = decode_data_uri(parts[0]["image_url"]["url"])
    image = Image.open(io.BytesIO(data))
    image.load()
    return image, parts[1]["text"], mime
