"""`glm-ocr` with ocr_api=maas against a fake Zhipu `layout_parsing` endpoint (real HTTP)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from scanrag import ConfigError, ModelServerError
from scanrag.config import Settings
from scanrag.fakeserver import FakeServer, Reply, Request, decode_data_uri, layout_parsing
from scanrag.ingest.model import BBox
from scanrag.ingest.parsers import get_parser
from scanrag.ingest.parsers.glm_maas import MaasParser
from scanrag.ingest.pipeline import parse_file
from scanrag.testing import Sheet, image_pdf

KEY = "zhipu-test-key"
TABLE = '<table border="1"><tr><td>Q1</td><td>10</td></tr><tr><td>Q2</td><td>12</td></tr></table>'

#: What the service reports: pages rendered at 2000×2800, boxes in those pixels.
SERVICE_SIZE = (2000, 2800)


def region(index: int, label: str, native: str | None, box: list[int], content: str) -> dict:
    out = {"index": index, "label": label, "bbox_2d": box, "content": content}
    return {**out, "native_label": native} if native else out


PAGE_ONE = [
    {**region(0, "text", "doc_title", [200, 100, 1800, 220], "# Annual Report 2024"),
     "width": 2000, "height": 2800},
    region(2, "text", "text", [200, 400, 1800, 700], "Revenue grew by $12 \\%$ year over year."),
    region(1, "text", "paragraph_title", [200, 260, 1000, 340], "## 1. Overview"),
    region(3, "table", "table", [200, 800, 1800, 1400], TABLE),
    region(4, "formula", "display_formula", [600, 1500, 1400, 1600], "$$\nE = m c ^ {2}\n$$"),
    region(5, "image", "image", [200, 1700, 1000, 2500], ""),
]  # fmt: skip
PAGE_TWO = [
    region(0, "text", "header", [200, 40, 900, 90], "ACME Corp — confidential"),
    region(1, "text", None, [200, 300, 1800, 500], "Second page."),
]


def two_page_pdf(tmp_path: Path) -> tuple[Path, tuple[int, int]]:
    pages = []
    for text in ("Annual Report 2024", "Second page."):
        sheet = Sheet(1000, 1400)
        sheet.write(100, 60, text, size=40)
        pages.append(sheet.image())
    return image_pdf(pages, tmp_path / "report.pdf"), (1000, 1400)


def settings(url: str, **overrides: object) -> Settings:
    return Settings(
        parser="glm-ocr", ocr_api="maas", ocr_url=f"{url}/api/paas/v4", ocr_api_key=KEY,
        **overrides,
    )  # fmt: skip


def test_one_request_per_pdf_and_boxes_scaled_from_the_service_pages(tmp_path: Path):
    pdf, (width, height) = two_page_pdf(tmp_path)

    def handle(request: Request) -> Reply:
        assert request.path == "/api/paas/v4/layout_parsing"
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.body["model"] == "glm-ocr"
        mime, data = decode_data_uri(request.body["file"])
        assert (mime, data) == ("application/pdf", pdf.read_bytes())
        assert (request.body["start_page_id"], request.body["end_page_id"]) == (1, 2)
        return Reply(layout_parsing([PAGE_ONE, PAGE_TWO], [SERVICE_SIZE, SERVICE_SIZE]))

    with FakeServer(handle) as server:
        config = settings(server.url)
        doc = parse_file(pdf, config, get_parser(config))
    assert len(server.requests) == 1
    assert doc.parser.name == "glm-ocr"

    first = doc.pages[0]
    assert (first.width, first.height) == (width, height)
    assert [r.label for r in first.regions] == [
        "title", "title", "text", "table", "formula", "figure",
    ]  # fmt: skip
    title, subtitle, text, table, formula, figure = first.regions
    assert (title.text, title.markdown) == ("Annual Report 2024", "# Annual Report 2024")
    assert (subtitle.text, subtitle.markdown) == ("1. Overview", "## 1. Overview")
    assert text.text == "Revenue grew by $12 \\%$ year over year."
    assert table.markdown == TABLE and table.text == "Q1 | 10\nQ2 | 12"
    assert (formula.text, formula.markdown) == ("E = m c ^ {2}", "$$\nE = m c ^ {2}\n$$")
    assert figure.text == "" and figure.source == "glm-ocr"
    # the service's 2000×2800 pixels → our 1000×1400 page: every coordinate halves
    assert title.bbox == BBox(100, 50, 900, 110)
    assert table.bbox == BBox(100, 400, 900, 700)
    assert table.bbox_norm == BBox(100, 286, 900, 500)
    assert figure.bbox == BBox(100, 850, 500, 1250)

    second = doc.pages[1]
    assert [(r.label, r.text) for r in second.regions] == [
        ("header", "ACME Corp — confidential"),
        ("text", "Second page."),
    ]
    assert second.regions[1].bbox == BBox(100, 150, 900, 250)
    assert second.regions[1].bbox_norm == BBox(100, 107, 900, 179)


def test_an_image_is_sent_as_png_and_a_string_layout_details_is_read(tmp_path: Path):
    path = tmp_path / "scan.jpg"
    Sheet(800, 600).image().save(path)
    regions = [{"index": 0, "label": "text", "bbox_2d": [80, 60, 400, 120], "content": "Hi"}]

    def handle(request: Request) -> Reply:
        mime, data = decode_data_uri(request.body["file"])
        assert mime == "image/png"
        assert Image.open(io.BytesIO(data)).size == (800, 600)
        reply = layout_parsing([regions], [(800, 600)])
        reply["layout_details"] = json.dumps(reply["layout_details"])
        return Reply(reply)

    with FakeServer(handle) as server:
        config = settings(server.url)
        doc = parse_file(path, config, get_parser(config))
    region = doc.pages[0].regions[0]
    assert (region.text, region.bbox, region.bbox_norm) == ("Hi", BBox(80, 60, 400, 120),
                                                            BBox(100, 100, 500, 200))  # fmt: skip


def test_a_rejected_key_names_the_setting(tmp_path: Path):
    pdf, _ = two_page_pdf(tmp_path)
    unauthorized = {"error": {"code": "1000", "message": "身份验证失败"}}
    with FakeServer(lambda request: Reply(unauthorized, 401)) as server:
        config = settings(server.url)
        with pytest.raises(ModelServerError, match="--ocr-api-key") as caught:
            parse_file(pdf, config, get_parser(config))
    assert "身份验证失败" in str(caught.value) and "report.pdf" in str(caught.value)


def test_a_reply_without_layout_details_is_an_error(tmp_path: Path):
    pdf, _ = two_page_pdf(tmp_path)
    with FakeServer(lambda request: Reply({"id": "x", "md_results": "# hi"})) as server:
        config = settings(server.url)
        with pytest.raises(ModelServerError, match="layout_details"):
            parse_file(pdf, config, get_parser(config))


def test_a_batch_answered_with_a_page_too_few_names_its_pages(tmp_path: Path):
    """Pages are joined batch after batch: a short batch must fail, not shift later pages."""
    pdf, _ = two_page_pdf(tmp_path)

    def handle(request: Request) -> Reply:
        if request.body["start_page_id"] == 1:
            return Reply(layout_parsing([], []))  # one page too few
        return Reply(layout_parsing([PAGE_TWO], [SERVICE_SIZE]))

    with FakeServer(handle) as server:
        config = settings(server.url)
        parser = MaasParser.from_settings(config)
        parser.max_pdf_pages = 1  # two batches of one page
        with pytest.raises(ModelServerError) as caught:
            parse_file(pdf, config, parser)
    message = str(caught.value)
    assert "layout_parsing returned 0 pages for page 1 of a 2-page PDF" in message
    assert "report.pdf" in message and len(server.requests) == 1


def test_maas_needs_an_api_key():
    with pytest.raises(ConfigError, match="SCANRAG_OCR_API_KEY"):
        MaasParser.from_settings(Settings(ocr_api="maas"))
