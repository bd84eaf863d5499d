"""Model backends from the command line and through `auto`; failures and the fallback."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from seams import open_index
from typer.testing import CliRunner

from scanrag import testing
from scanrag.cli import app
from scanrag.config import Settings
from scanrag.fakeserver import FakeServer, Reply, Request, chat_completion, chat_image_and_prompt
from scanrag.ingest.parsers import get_parser
from scanrag.ingest.pipeline import parse_file


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scan(tmp_path: Path) -> Path:
    sheet = testing.Sheet(1000, 500)
    sheet.write(80, 80, "Insurance claim APP-96452", size=48, bold=True)
    sheet.write(80, 220, "Claimant name: Ines Alvarez")
    path = tmp_path / "claim.png"
    sheet.image(noise=2).save(path)
    return path


def test_an_unreachable_server_fails_the_file_with_one_line_naming_the_url(tmp_path: Path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    result = CliRunner().invoke(
        app,
        ["parse", str(scan(tmp_path)), "--out", str(tmp_path / "out"), "--parser", "glm-ocr",
         "--ocr-url", url, "--ocr-model", "glm-ocr"],
    )  # fmt: skip
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, errors
    assert errors[0].startswith("error: ") and errors[0].endswith("SCANRAG_OCR_URL")
    assert "claim.png: page 1: glm-ocr server " + url + ": unreachable" in errors[0]
    assert "--ocr-url" in errors[0]
    assert "1 failed" in result.stdout


def test_with_fallback_an_unreachable_server_leaves_the_pages_to_embedded(tmp_path: Path):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["parse", str(scan(tmp_path)), "--out", str(out), "--parser", "glm-ocr",
         "--ocr-url", url, "--fallback", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files"] == 1 and summary["failed"] == 0
    doc = json.loads(next(out.glob("*.json")).read_text())
    regions = doc["pages"][0]["regions"]
    assert regions and {r["source"] for r in regions} == {"embedded"}
    assert "Ines Alvarez" in " ".join(r["text"] for r in regions)
    assert doc["parser"]["name"] == "glm-ocr"
    assert doc["warnings"] == summary["warnings"] and summary["errors"] == []
    assert (
        url in doc["warnings"][0]
        and "parsed with embedded instead of glm-ocr" in (doc["warnings"][0])
    )


def test_a_missing_server_url_is_a_usage_error(tmp_path: Path):
    result = CliRunner().invoke(
        app, ["parse", str(scan(tmp_path)), "--out", str(tmp_path), "--parser", "glm-ocr"]
    )
    assert result.exit_code == 2
    assert "--ocr-url" in result.stderr


def test_auto_sends_scans_to_the_configured_model_backend(tmp_path: Path):
    born_digital = testing.text_pdf([[(72, 100, "A born-digital page with text.", 12)]],
                                    tmp_path / "digital.pdf")  # fmt: skip
    image = tmp_path / "scan.png"
    sheet = testing.Sheet(800, 400)
    sheet.write(60, 60, "Scanned notice", size=44)
    sheet.image().save(image)

    def handle(request: Request) -> Reply:
        assert chat_image_and_prompt(request.body)[1] == "Text Recognition:"
        return Reply(chat_completion("Scanned notice"))

    with FakeServer(handle) as server:
        config = Settings(parser="auto", scan_parser="glm-ocr", ocr_url=f"{server.url}/v1")
        parser = get_parser(config)
        digital = parse_file(born_digital, config, parser)
        assert server.requests == []
        scanned = parse_file(image, config, parser)
    assert {r.source for r in digital.regions()} == {"pdf-text"}
    assert [(r.source, r.text) for r in scanned.regions()] == [("glm-ocr", "Scanned notice")]
    assert len(server.requests) == 1


def two_page_pdf(tmp_path: Path) -> Path:
    pages = []
    for text in ("First page of the notice", "Second page of the notice"):
        sheet = testing.Sheet(800, 400)
        sheet.write(60, 60, text, size=40)
        pages.append(sheet.image())
    return testing.image_pdf(pages, tmp_path / "notice.pdf")


def test_once_the_server_stops_answering_the_other_pages_go_straight_to_the_fallback(
    tmp_path: Path,
):
    from scanrag.ingest.blocks import LayoutBox
    from scanrag.ingest.model import BBox
    from scanrag.ingest.parsers.glm_ocr import GlmOcrOptions, GlmOcrParser

    def hang(request: Request) -> Reply:
        return Reply(chat_completion("too late"), delay=1.0)

    with FakeServer(hang) as server:
        config = Settings(
            parser="glm-ocr", ocr_url=f"{server.url}/v1", ocr_timeout=0.2, ocr_retries=0,
            fallback=True,
        )  # fmt: skip
        parser = GlmOcrParser(
            GlmOcrOptions.of(config),
            layout=lambda page: [LayoutBox("text", BBox(50, 50, 700, 120))],
        )
        doc = parse_file(two_page_pdf(tmp_path), config, parser)
    assert len(server.requests) == 1  # page 1 timed out; page 2 did not wait for it again
    assert [r.text for r in doc.regions()] == [
        "First page of the notice",
        "Second page of the notice",
    ]
    (warning,) = doc.warnings
    assert "pages 1, 2 parsed with embedded instead of glm-ocr" in warning
    assert "no reply within 0.2s" in warning


def test_a_whole_document_request_that_fails_leaves_every_page_to_the_fallback(tmp_path: Path):
    def busy(request: Request) -> Reply:
        return Reply({"error": {"code": "1302", "message": "rate limited"}}, 429)

    with FakeServer(busy) as server:
        config = Settings(
            parser="glm-ocr", ocr_api="maas", ocr_url=f"{server.url}/api/paas/v4",
            ocr_api_key="k", ocr_retries=0, fallback=True,
        )  # fmt: skip
        doc = parse_file(two_page_pdf(tmp_path), config, get_parser(config))
    assert len(server.requests) == 1
    assert {r.source for r in doc.regions()} == {"embedded"}
    (warning,) = doc.warnings
    assert "pages 1, 2 parsed with embedded" in warning and "HTTP 429" in warning


def test_a_fallback_parse_has_its_pages_and_crops_and_is_parsed_again_next_run(
    tmp_path: Path
):
    """The row of a fallback parse names its own cache entry: the document, its page image
    and its crops are served, yet the next run does not take it for the model's parse."""

    docs = tmp_path / "docs"
    docs.mkdir()
    scan(docs)
    options = {
        "data_dir": tmp_path / "data",
        "parser": "glm-ocr",
        "ocr_url": f"http://127.0.0.1:{closed_port()}/v1",
        "ocr_retries": 0,
        "fallback": True,
        "workers": 1,
    }
    with open_index(**options) as index:
        first = index.ingest([docs])
        assert (first.added, first.failed, len(first.warnings)) == (1, 0, 1)
        (info,) = index.documents()
        doc = index.document(info.doc_id)
        assert doc is not None and {r.source for r in doc.regions()} == {"embedded"}
        assert index.page_image(doc, 1) is not None
        region = next(r for r in doc.regions() if "Ines Alvarez" in r.text)
        assert index.region_image(region.id) is not None
        # not the model's parse: no run looks it up
        assert index.data.cache.get(doc.sha256, index.parse_fingerprint) is None

    with open_index(**options) as index:
        second = index.ingest([docs])  # the model server is tried again
        assert (second.updated, second.unchanged, len(second.warnings)) == (1, 0, 1)
        assert index.document(info.doc_id) is not None
