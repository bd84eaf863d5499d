"""HTTP client for model servers: OpenAI-compatible chat completions and Zhipu's MaaS API.

A small client rather than the `openai` package or the `glmocr` SDK: scanrag needs one POST
with timeouts, retries and errors that name the URL and the setting to fix. httpx gives that
in a page of code, is thread-safe (region requests run concurrently) and lets the tests speak
to a real HTTP fake. The `openai` client would hide non-OpenAI sampling fields and retry on
its own terms; the `glmocr` SDK brings its own pipeline, config files and `requests`.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import random
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

from .errors import ModelServerError, ModelServerUnreachable

log = logging.getLogger(__name__)

#: Statuses worth another try: rate limits and server-side failures.
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: First backoff in seconds; doubles on every retry, capped at MAX_BACKOFF.
BACKOFF = 0.5
MAX_BACKOFF = 20.0
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class Endpoint:
    """Where a backend's model lives and which settings a user changes to fix it."""

    base_url: str
    what: str  # "glm-ocr server", "VLM server"
    url_setting: str  # "--ocr-url / SCANRAG_OCR_URL"
    key_setting: str  # "--ocr-api-key / SCANRAG_OCR_API_KEY"
    model_setting: str  # "--ocr-model / SCANRAG_OCR_MODEL"


@dataclass
class ChatReply:
    content: str
    finish_reason: str | None


def one_line(text: str, limit: int = 200) -> str:
    """A server's error body squeezed into one short line for a message."""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def image_data_uri(image: Image.Image) -> str:
    """A JPEG data URI (quality 95): what GLM-OCR's own SDK sends, and small enough for whole
    pages."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=95)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def split_urls(value: str) -> list[str]:
    """One base URL, or several separated by commas (a fleet of servers)."""
    return [url.strip().rstrip("/") for url in value.split(",") if url.strip()]


class _Backend:
    """One server of a fleet: its client, requests in flight, and when it may be tried again."""

    def __init__(self, url: str, client: httpx.Client) -> None:
        self.url = url
        self.client = client
        self.in_flight = 0
        self.failures = 0  # in a row
        self.down_until = 0.0


class ModelServer:
    """POSTs JSON with timeouts and retries; failures become `ModelServerError`.

    `endpoint.base_url` may list several servers, comma-separated (a fleet of vLLM / SGLang
    replicas): each request goes to the least busy one that is not resting after a failure,
    and a retry goes to another server at once, before any backoff.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        api_key: str | None = None,
        timeout: float = 120,
        retries: int = 2,
        pool: int = 8,
    ) -> None:
        self.endpoint = endpoint
        urls = split_urls(endpoint.base_url) or [endpoint.base_url.rstrip("/")]
        self.base_url = ", ".join(urls)
        self.retries = retries
        self.timeout = timeout
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._backends = [
            _Backend(
                url,
                httpx.Client(
                    headers=headers,
                    timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
                    limits=httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
                    # HTTP(S)_PROXY / NO_PROXY apply as usual, except to a server on this machine
                    trust_env=httpx.URL(url).host not in LOOPBACK,
                ),
            )
            for url in urls
        ]
        self._lock = threading.Lock()
        self._turn = random.randrange(len(urls))  # processes of a cluster start apart
        self._local = threading.local()  # the server this thread's last request went to

    @property
    def urls(self) -> list[str]:
        return [backend.url for backend in self._backends]

    def error(
        self, problem: str, fix: str, kind: type[ModelServerError] = ModelServerError
    ) -> ModelServerError:
        """One line: which server, what went wrong, which setting to change. For a fleet,
        the server of this thread's last request (a reply a parser could not use)."""
        backend = getattr(self._local, "backend", None) or self._backends[0]
        return kind(f"{self.endpoint.what} {backend.url}: {problem}; {fix}")

    def _fleet_error(
        self, problem: str, fix: str, kind: type[ModelServerError] = ModelServerError
    ) -> ModelServerError:
        """After every attempt failed: a fleet is named whole (each may have been tried)."""
        if len(self._backends) == 1:
            return self.error(problem, fix, kind)
        return kind(f"{self.endpoint.what}s {self.base_url}: {problem}; {fix}")

    def _pick(self, tried: set[int]) -> tuple[int, _Backend]:
        """The least busy server not tried for this request, preferring ones not resting,
        with its position in the fleet."""
        with self._lock:
            now = time.monotonic()
            count = len(self._backends)
            order = [(self._turn + i) % count for i in range(count)]
            self._turn = (self._turn + 1) % count
            fresh = [i for i in order if i not in tried] or order
            awake = [i for i in fresh if self._backends[i].down_until <= now] or fresh
            index = min(awake, key=lambda i: self._backends[i].in_flight)
            chosen = self._backends[index]
            chosen.in_flight += 1
        self._local.backend = chosen
        return index, chosen

    def _release(self, backend: _Backend, ok: bool) -> None:
        with self._lock:
            backend.in_flight -= 1
            if ok:
                backend.failures, backend.down_until = 0, 0.0
            else:
                backend.failures += 1
                rest = min(MAX_BACKOFF, BACKOFF * 2 ** (backend.failures - 1))
                backend.down_until = time.monotonic() + rest

    def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST `payload` to base_url + path and return the JSON reply.

        Retries on connection errors, timeouts, 429 and 5xx: on another server of the fleet
        at once while one is left untried, else after an exponential backoff (a Retry-After
        header wins); other statuses fail at once with the server's message.
        """
        body = json.dumps(payload, ensure_ascii=False).encode()
        attempts = self.retries + 1
        tried: set[int] = set()
        for attempt in range(attempts):
            last = attempt == attempts - 1
            index, backend = self._pick(tried)
            try:
                response = backend.client.post(backend.url + path, content=body)
            except httpx.TimeoutException as exc:
                self._release(backend, ok=False)
                if not last:
                    self._retry(
                        backend, index, tried, attempt, None, f"timeout ({type(exc).__name__})"
                    )
                    continue
                raise self._fleet_error(
                    f"no reply within {self.timeout:g}s after {attempts} attempts",
                    "raise SCANRAG_OCR_TIMEOUT or check the server's load",
                    ModelServerUnreachable,
                ) from exc
            except httpx.TransportError as exc:
                self._release(backend, ok=False)
                if not last:
                    self._retry(
                        backend, index, tried, attempt, None, f"{type(exc).__name__}: {exc}"
                    )
                    continue
                raise self._fleet_error(
                    f"unreachable ({type(exc).__name__}: {one_line(str(exc), 120)}) "
                    f"after {attempts} attempts",
                    f"start the server or fix {self.endpoint.url_setting}",
                    ModelServerUnreachable,
                ) from exc
            retry = response.status_code in RETRY_STATUSES
            self._release(backend, ok=not retry)
            if response.status_code == 200:
                try:
                    data = response.json()
                except ValueError as exc:
                    raise self.error(
                        f"answered {path} with something that is not JSON "
                        f"({one_line(response.text, 80)!r})",
                        f"check that {self.endpoint.url_setting} points at the API",
                    ) from exc
                if not isinstance(data, dict):
                    raise self.error(
                        f"answered {path} with JSON that is not an object",
                        f"check {self.endpoint.url_setting}",
                    )
                return data
            if retry and not last:
                self._retry(
                    backend,
                    index,
                    tried,
                    attempt,
                    _retry_after(response),
                    f"HTTP {response.status_code}",
                )
                continue
            raise self._status_error(response, path, attempts)
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _retry(
        self,
        backend: _Backend,
        index: int,
        tried: set[int],
        attempt: int,
        retry_after: float | None,
        why: str,
    ) -> None:
        """Skip the failed server for the retry; back off once every server has failed."""
        tried.add(index)
        if len(tried) < len(self._backends):
            log.info(
                "%s %s: %s; retry %d/%d on another server",
                self.endpoint.what,
                backend.url,
                why,
                attempt + 1,
                self.retries,
            )
            return
        tried.clear()
        self._sleep(attempt, retry_after, why, backend.url)

    def _status_error(self, response: httpx.Response, path: str, attempts: int) -> ModelServerError:
        status = response.status_code
        detail = one_line(_error_message(response))
        if status in (401, 403):
            return self.error(
                f"rejected the request (HTTP {status}: {detail})",
                f"set a valid key with {self.endpoint.key_setting}",
            )
        if status == 404:
            return self.error(
                f"no such endpoint or model (HTTP 404 on {path}: {detail})",
                f"check {self.endpoint.url_setting} (usually ends in /v1) "
                f"and {self.endpoint.model_setting}",
            )
        if status in RETRY_STATUSES:
            return self._fleet_error(
                f"failed with HTTP {status} after {attempts} attempts ({detail})",
                "check the server's log, or raise SCANRAG_OCR_RETRIES",
            )
        return self.error(
            f"refused the request (HTTP {status}: {detail})",
            f"check {self.endpoint.model_setting} and the server's log",
        )

    def _sleep(self, attempt: int, retry_after: float | None, why: str, url: str) -> None:
        delay = retry_after if retry_after is not None else BACKOFF * 2**attempt
        delay = min(delay, MAX_BACKOFF) * (1 + 0.1 * random.random())
        log.info(  # routine; the final failure, if any, is the error users see
            "%s %s: %s; retry %d/%d in %.1fs",
            self.endpoint.what,
            url,
            why,
            attempt + 1,
            self.retries,
            delay,
        )
        time.sleep(delay)

    def chat(self, model: str, content: list[dict[str, Any]], **params: Any) -> ChatReply:
        """One user message to an OpenAI-compatible /chat/completions; the reply's text."""
        payload = {"model": model, "messages": [{"role": "user", "content": content}], **params}
        data = self.post("/chat/completions", payload)
        try:
            choice = data["choices"][0]
            message = choice["message"]
            text = message.get("content")
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self.error(
                f"answered without choices[0].message ({one_line(json.dumps(data), 120)})",
                f"check that {self.endpoint.url_setting} is an OpenAI-compatible /v1 endpoint",
            ) from exc
        if isinstance(text, list):  # some servers return content parts
            text = "".join(part.get("text", "") for part in text if isinstance(part, dict))
        if not isinstance(text, str):
            text = ""
        return ChatReply(content=text, finish_reason=choice.get("finish_reason"))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: use our own backoff


def _error_message(response: httpx.Response) -> str:
    """The message inside an OpenAI / Zhipu style error body, else the body itself."""
    try:
        data = response.json()
    except ValueError:
        return response.text or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("msg") or error)
        return str(error)
    return str(data)
