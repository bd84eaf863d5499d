"""A fleet of GLM-OCR servers (`--ocr-url A,B`): real HTTP fakes on 127.0.0.1 show that the
requests are spread over every server, that a server that is down or failing is skipped for
the retry without a backoff, and that a failure of the whole fleet names every server."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from scanrag import ModelServerUnreachable
from scanrag import modelserver as modelserver_module
from scanrag.config import Settings
from scanrag.fakeserver import FakeServer, Reply, Request, chat_completion, error_body
from scanrag.ingest.blocks import LayoutBox
from scanrag.ingest.parsers.glm_ocr import GlmOcrOptions, GlmOcrParser, ocr_server
from scanrag.ingest.pipeline import parse_file
from scanrag.modelserver import ModelServer
from scanrag.testing import Sheet

LINES = [f"Shipment {n} left the Rotterdam depot on schedule" for n in range(1, 7)]


def fleet_parser(settings: Settings, layout: list[LayoutBox]) -> GlmOcrParser:
    return GlmOcrParser(GlmOcrOptions.of(settings), layout=lambda page: layout)


def server_for(**values: Any) -> ModelServer:
    return ocr_server(GlmOcrOptions.of(Settings(**values)))


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reads_crops(request: Request) -> Reply:
    return Reply(chat_completion("Shipment left the depot on schedule"))


@pytest.fixture
def no_sleep(monkeypatch) -> list[str]:
    """Backoffs are recorded (with their reason) instead of slept."""
    backoffs: list[str] = []

    def record(self, attempt: int, retry_after: float | None, why: str, url: str) -> None:
        backoffs.append(why)

    monkeypatch.setattr(modelserver_module.ModelServer, "_sleep", record)
    return backoffs


def page_with_six_regions(tmp_path: Path) -> tuple[Path, list[LayoutBox]]:
    sheet = Sheet(1200, 900)
    boxes = [sheet.write(80, 80 + 120 * i, line, size=36).pad(8) for i, line in enumerate(LINES)]
    path = tmp_path / "manifest.png"
    sheet.image().save(path)
    return path, [LayoutBox("text", box) for box in boxes]


def test_a_list_of_urls_becomes_one_fleet_setting():
    settings = Settings(ocr_url=["http://gpu-1:8080/v1", "http://gpu-2:8080/v1/"])
    assert settings.ocr_url == "http://gpu-1:8080/v1,http://gpu-2:8080/v1/"
    assert ocr_server(GlmOcrOptions.of(settings)).urls == ["http://gpu-1:8080/v1", "http://gpu-2:8080/v1"]


def test_the_regions_of_a_page_are_read_by_every_server_of_the_fleet(tmp_path, no_sleep):
    path, layout = page_with_six_regions(tmp_path)
    with FakeServer(reads_crops) as one, FakeServer(reads_crops) as two:
        settings = Settings(parser="glm-ocr", ocr_url=f"{one.url}/v1, {two.url}/v1", ocr_workers=1)
        doc = parse_file(path, settings, fleet_parser(settings, layout))
    # one request per region; with one at a time, the idle servers take turns
    assert (len(one.requests), len(two.requests)) == (3, 3)
    assert all(r.path == "/v1/chat/completions" for r in one.requests + two.requests)
    regions = doc.pages[0].regions
    assert len(regions) == 6
    assert all(region.text == "Shipment left the depot on schedule" for region in regions)
    assert no_sleep == []


def test_concurrent_requests_go_to_the_least_busy_server(tmp_path, no_sleep):
    path, layout = page_with_six_regions(tmp_path)

    def slow(request: Request) -> Reply:
        return Reply(chat_completion("Shipment left the depot on schedule"), delay=0.3)

    with FakeServer(slow) as one, FakeServer(slow) as two:
        settings = Settings(parser="glm-ocr", ocr_url=[f"{one.url}/v1", f"{two.url}/v1"])
        parse_file(path, settings, fleet_parser(settings, layout))
    assert len(one.requests) + len(two.requests) == 6
    assert len(one.requests) == len(two.requests) == 3  # each busy server gets the next one
    assert one.max_in_flight >= 2 and two.max_in_flight >= 2


def test_a_server_that_is_down_is_skipped_and_the_retry_lands_on_another(no_sleep):
    dead = f"http://127.0.0.1:{closed_port()}/v1"
    with FakeServer(reads_crops) as live:
        server = server_for(ocr_url=f"{dead},{live.url}/v1", ocr_retries=1)
        replies = [server.chat("glm-ocr", [{"type": "text", "text": "Text Recognition:"}])
                   for _ in range(8)]  # fmt: skip
    assert [reply.content for reply in replies] == ["Shipment left the depot on schedule"] * 8
    assert len(live.requests) == 8
    assert no_sleep == []  # the retry went to the live server at once, without a backoff


def test_a_failing_server_hands_the_retry_to_the_other(no_sleep):
    def overloaded(request: Request) -> Reply:
        return Reply(error_body("no KV cache left", 503), status=503)

    with FakeServer(overloaded) as busy, FakeServer(reads_crops) as live:
        server = server_for(ocr_url=f"{busy.url}/v1,{live.url}/v1")
        for _ in range(4):
            reply = server.chat("glm-ocr", [{"type": "text", "text": "Text Recognition:"}])
            assert reply.content == "Shipment left the depot on schedule"
    assert len(live.requests) == 4
    assert len(busy.requests) == 1  # after its 503 it rests while the other one answers
    assert no_sleep == []


def test_when_every_server_is_down_the_error_names_the_fleet(no_sleep):
    urls = [f"http://127.0.0.1:{closed_port()}/v1" for _ in range(2)]
    server = server_for(ocr_url=",".join(urls), ocr_retries=3)
    with pytest.raises(ModelServerUnreachable) as caught:
        server.chat("glm-ocr", [{"type": "text", "text": "Text Recognition:"}])
    message = str(caught.value)
    assert message.startswith(f"glm-ocr servers {urls[0]}, {urls[1]}: unreachable")
    assert "after 4 attempts" in message and message.endswith("--ocr-url / SCANRAG_OCR_URL")
    assert len(no_sleep) == 1  # both tried, one backoff, both tried again
