"""Server-sent events done right: `/v1/query` and `/v1/chat/completions` streams carry
FastAPI's SSE headers (`Cache-Control: no-cache`, `X-Accel-Buffering: no`, beside the API's
`no-store`) and send `: ping` comments while a slow model thinks, which neither our own event
parser nor the `openai` client mistakes for data. The model is a fake OpenAI-compatible server
that takes its time; the document is a born-digital memo (no OCR needed)."""

from __future__ import annotations

import asyncio
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent))

from doors import KEY
from fakes import AMOUNT, Reply, fake_openai, live_server, memo_pdf, sse_events
from seams import app_for, open_index

from scanrag.api import sse
from scanrag.config import Settings

QUESTION = "What budget was approved for Project Falcon-31?"
PING = b": ping\n\n"


def cite_the_amount_and_a_marker_that_does_not_exist(body: dict) -> str:
    """A model's answer citing the evidence block that holds the amount, and a block [9] that
    was never given (the answer must drop it)."""
    evidence = body["messages"][1]["content"][0]["text"].split("Evidence:\n\n", 1)[1]
    blocks = re.split(r"\n\n(?=\[\d+\] \()", evidence)
    n = next(block.split("]")[0][1:] for block in blocks if AMOUNT in block)
    return f"The approved budget is {AMOUNT} [{n}][9]."


@pytest.fixture(scope="module")
def llm():
    reply = Reply(respond=cite_the_amount_and_a_marker_that_does_not_exist, delay=0.6)
    with fake_openai(reply) as fake:
        yield fake


@pytest.fixture(scope="module")
def base_url(tmp_path_factory, llm):
    root = tmp_path_factory.mktemp("sse")
    memo_pdf(root / "memo.pdf")
    settings = Settings(
        data_dir=root / "data",
        api_key=KEY,
        answerer="openai",
        llm_url=llm.url,
        llm_model="slow-model",
        llm_retries=0,
    )
    with open_index(settings) as index:
        assert index.ingest([root / "memo.pdf"]).added == 1
    with pytest.MonkeyPatch.context() as patch, live_server(app_for(settings)) as url:
        patch.setattr(sse, "KEEPALIVE_SECONDS", 0.05)
        yield url


def raw_stream(base_url: str, path: str, body: dict) -> tuple[httpx.Response, bytes]:
    with httpx.stream(
        "POST", f"{base_url}{path}", json=body, headers={"X-API-Key": KEY}, timeout=60
    ) as response:
        return response, response.read()


def check_sse_headers(response: httpx.Response) -> None:
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    directives = {d.strip() for d in response.headers["cache-control"].split(",")}
    assert directives == {"no-cache", "no-store"}
    assert response.headers["x-accel-buffering"] == "no"


def test_a_query_stream_pings_while_the_model_thinks_and_keeps_its_events(base_url):
    response, body = raw_stream(base_url, "/v1/query", {"question": QUESTION, "stream": True})
    check_sse_headers(response)
    first_token = body.index(b"event: token")
    assert body.index(b"event: citations") < body.index(PING) < first_token

    events = sse_events(iter(body.decode().splitlines()))
    names = [name for name, _ in events]
    assert names[0] == "citations" and names[-1] == "done"
    assert set(names[1:-1]) == {"token"}
    assert events[-1][1]["answer"] == f"The approved budget is {AMOUNT} [1]."


def test_a_chat_stream_pings_and_its_text_matches_the_citations_it_ends_with(base_url):
    body = {"model": "scanrag", "messages": [{"role": "user", "content": QUESTION}]}
    response, raw = raw_stream(base_url, "/v1/chat/completions", {**body, "stream": True})
    check_sse_headers(response)
    assert raw.index(b'"role": "assistant"') < raw.index(PING) < raw.index(b"approved")
    assert raw.endswith(b"data: [DONE]\n\n")

    client = OpenAI(base_url=f"{base_url}/v1", api_key=KEY, max_retries=0)
    chunks = list(client.chat.completions.create(**body, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    # the model wrote [n][9]: [9] resolves to nothing and is dropped, [n] becomes [1]
    assert text == f"The approved budget is {AMOUNT} [1]."
    (citation,) = chunks[-1].model_extra["citations"]
    assert citation["n"] == 1 and AMOUNT in citation["text"]
    assert client.chat.completions.create(**body).choices[0].message.content == text


def slow_frames(log: list[str], gap: float) -> Iterator[bytes]:
    try:
        yield b"data: 1\n\n"
        time.sleep(gap)
        yield b"data: 2\n\n"
        time.sleep(gap)
        yield b"data: 3\n\n"
    finally:
        log.append("closed")


def test_keepalive_pings_in_the_gaps_and_loses_no_frame(monkeypatch):
    monkeypatch.setattr(sse, "KEEPALIVE_SECONDS", 0.05)

    async def collect() -> list[bytes]:
        return [frame async for frame in sse.with_keepalive(slow_frames([], 0.4))]

    frames = asyncio.run(collect())
    data = [f for f in frames if f != PING]
    assert data == [b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"]
    first, second, third = (frames.index(f) for f in data)
    assert PING in frames[first:second] and PING in frames[second:third]


def test_a_client_that_leaves_gets_the_iterator_closed_once_its_pull_returns(monkeypatch):
    monkeypatch.setattr(sse, "KEEPALIVE_SECONDS", 0.05)
    log: list[str] = []

    async def leave_early() -> None:
        stream = sse.with_keepalive(slow_frames(log, 1.0))
        assert await anext(stream) == b"data: 1\n\n"
        assert await anext(stream) == PING  # the second frame is still being pulled
        await stream.aclose()
        assert log == []  # closing a generator another thread runs would fail
        deadline = time.monotonic() + 30
        while not log and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    asyncio.run(leave_early())
    assert log == ["closed"]
