"""`glm-ocr` against a fake OpenAI-compatible server on 127.0.0.1 (real HTTP).

The fake checks every request the way vLLM would see it (model name, one image_url data URI
holding the region crop, the exact task prompt) and answers in the real reply shape.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import ImageDraw

from scanrag import ConfigError, ModelServerError
from scanrag.config import Settings
from scanrag.fakeserver import (
    FakeServer,
    Reply,
    Request,
    chat_completion,
    chat_image_and_prompt,
    error_body,
)
from scanrag.ingest.blocks import LayoutBox
from scanrag.ingest.loaders import PageImage
from scanrag.ingest.model import BBox
from scanrag.ingest.parsers.glm import CROP_PAD, cut_repetition, read_html_table
from scanrag.ingest.parsers.glm_ocr import GlmOcrOptions, GlmOcrParser
from scanrag.ingest.parsers.layout_models import layout_detector
from scanrag.ingest.pipeline import parse_file
from scanrag.testing import Sheet


def parser_for(config: Settings, page) -> GlmOcrParser:
    """The glm-ocr parser with the page's own layout (no layout model runs)."""
    return GlmOcrParser(GlmOcrOptions.of(config), layout=page.detect)


TABLE_HTML = (
    '<table border="1"><tr><td>Item</td><td>Qty</td></tr>'
    "<tr><td>Hex bolts M8</td><td>120</td></tr></table>"
)
PARAGRAPH = "Revenue grew by 12% over the quarter. Costs stayed flat."


class Page:
    """A generated page, its layout boxes, and what the fake model says for each crop."""

    def __init__(self, tmp_path: Path) -> None:
        sheet = Sheet(1200, 1500)
        title = sheet.write(100, 80, "Quarterly report", size=56, bold=True)
        text = sheet.paragraph(100, 220, PARAGRAPH, width=900)
        table = sheet.table(100, 420, [["Item", "Qty"], ["Hex bolts M8", "120"]], [420, 200])
        formula = sheet.write(300, 640, "E = mc^2", size=40)
        figure = BBox(100, 800, 600, 1200)
        ImageDraw.Draw(sheet.canvas).rectangle(tuple(figure), outline="black", width=6)
        self.image = sheet.image()
        self.path = tmp_path / "page.png"
        self.image.save(self.path)
        self.layout = [  # deliberately not in reading order
            LayoutBox("figure", figure),
            LayoutBox("table", table),
            LayoutBox("text", text.pad(8)),
            LayoutBox("title", title.pad(8)),
            LayoutBox("formula", formula.pad(8)),
        ]
        self.boxes = {box.label: box.bbox for box in self.layout}
        self.replies = {  # crop size → (expected prompt, reply)
            self.crop_size("title"): ("Text Recognition:", "Quarterly report"),
            self.crop_size("text"): ("Text Recognition:", PARAGRAPH),
            self.crop_size("table"): ("Table Recognition:", TABLE_HTML),
            self.crop_size("formula"): ("Formula Recognition:", "$$\nE = m c ^ {2}\n$$"),
        }

    def crop_box(self, label: str) -> BBox:
        return self.boxes[label].pad(CROP_PAD).clip(self.image.width, self.image.height)

    def crop_size(self, label: str) -> tuple[int, int]:
        box = self.crop_box(label)
        return (box.width, box.height)

    def detect(self, _page: object) -> list[LayoutBox]:
        return list(self.layout)


def settings(url: str, **overrides: object) -> Settings:
    return Settings(parser="glm-ocr", ocr_url=f"{url}/v1", **overrides)


@pytest.fixture
def page(tmp_path: Path) -> Page:
    return Page(tmp_path)


def answering(page: Page, calls: list[tuple[int, int]] | None = None):
    """A handler that checks each request against the page and answers for its crop."""

    def handle(request: Request) -> Reply:
        assert request.path == "/v1/chat/completions"
        assert request.body["model"] == "glm-ocr"
        image, prompt, mime = chat_image_and_prompt(request.body)
        assert mime == "image/jpeg" and image.format == "JPEG"
        expected_prompt, content = page.replies[image.size]
        assert prompt == expected_prompt
        if calls is not None:
            calls.append(image.size)
        return Reply(chat_completion(content))

    return handle


def test_each_region_is_read_with_its_task_prompt_and_mapped_to_the_region_model(page: Page):
    with FakeServer(answering(page)) as server:
        parser = parser_for(settings(server.url), page)
        doc = parse_file(page.path, settings(server.url), parser)

    # one request per readable region; the figure is kept without OCR
    assert len(server.requests) == 4
    for request in server.requests:
        image, _, _ = chat_image_and_prompt(request.body)
        label = next(lb for lb in page.boxes if page.crop_size(lb) == image.size)
        crop = np.asarray(page.image.crop(tuple(page.crop_box(label))), dtype=float)
        assert np.abs(np.asarray(image.convert("RGB"), dtype=float) - crop).mean() < 3
        assert request.body["max_tokens"] == 8192 and request.body["temperature"] == 0.0

    regions = doc.pages[0].regions
    assert [r.label for r in regions] == ["title", "text", "table", "formula", "figure"]
    assert [r.source for r in regions] == ["glm-ocr"] * 5
    by_label = {r.label: r for r in regions}
    assert by_label["title"].markdown == "# Quarterly report"
    assert by_label["text"].text == PARAGRAPH
    assert by_label["table"].markdown == TABLE_HTML
    assert by_label["table"].text == "Item | Qty\nHex bolts M8 | 120"
    assert by_label["formula"].text == "E = m c ^ {2}"
    assert by_label["formula"].markdown == "$$\nE = m c ^ {2}\n$$"
    assert by_label["figure"].text == ""
    for region in regions:
        assert region.bbox == page.boxes[region.label]
        assert region.bbox_norm == region.bbox.to_norm(1200, 1500)
        assert region.lines == []  # GLM-OCR reads regions, it reports no line boxes
    assert doc.parser.name == "glm-ocr"


def test_api_key_is_sent_as_a_bearer_token(page: Page):
    with FakeServer(answering(page)) as server:
        config = settings(server.url, ocr_api_key="sk-test")
        parse_file(page.path, config, parser_for(config, page))
    assert {r.headers["authorization"] for r in server.requests} == {"Bearer sk-test"}


def test_region_requests_run_concurrently(page: Page):
    slow = answering(page)

    def handle(request: Request) -> Reply:
        reply = slow(request)
        reply.delay = 0.4
        return reply

    with FakeServer(handle) as server:
        config = settings(server.url, ocr_workers=4)
        started = time.perf_counter()
        parse_file(page.path, config, parser_for(config, page))
        elapsed = time.perf_counter() - started
    assert server.max_in_flight >= 3
    assert elapsed < 4 * 0.4


def test_error_statuses_are_retried_with_backoff(page: Page):
    answer = answering(page)
    failures: dict[tuple[int, int], int] = {}

    def handle(request: Request) -> Reply:
        image, _, _ = chat_image_and_prompt(request.body)
        failures[image.size] = failures.get(image.size, 0) + 1
        if failures[image.size] == 1:  # every region fails once: a 503, then a 429
            status = 503 if image.size == page.crop_size("table") else 429
            return Reply(error_body("busy", status), status, {"Retry-After": "0"})
        return answer(request)

    with FakeServer(handle) as server:
        config = settings(server.url)
        doc = parse_file(page.path, config, parser_for(config, page))
    assert len(server.requests) == 8
    assert len(doc.pages[0].regions) == 5


def test_a_slow_reply_times_out_and_is_retried(page: Page):
    answer = answering(page)
    seen: list[tuple[int, int]] = []

    def handle(request: Request) -> Reply:
        reply = answer(request)
        image, _, _ = chat_image_and_prompt(request.body)
        if image.size == page.crop_size("text") and image.size not in seen:
            reply.delay = 2.0  # longer than ocr_timeout: the client gives up and retries
        seen.append(image.size)
        return reply

    with FakeServer(handle) as server:
        config = settings(server.url, ocr_timeout=0.5)
        doc = parse_file(page.path, config, parser_for(config, page))
    assert seen.count(page.crop_size("text")) == 2
    assert doc.pages[0].regions[1].text == PARAGRAPH


def test_a_server_that_keeps_failing_fails_the_file_with_one_line(page: Page):
    with FakeServer(lambda request: Reply(error_body("CUDA out of memory", 500), 500)) as server:
        config = settings(server.url, ocr_retries=1)
        with pytest.raises(ModelServerError) as caught:
            parse_file(page.path, config, parser_for(config, page))
    message = str(caught.value)
    assert "\n" not in message
    assert f"{server.url}/v1" in message
    assert "HTTP 500" in message and "CUDA out of memory" in message
    assert "page.png" in message


def test_a_wrong_model_name_says_which_setting_to_fix(page: Page):
    def handle(request: Request) -> Reply:
        return Reply(error_body(f"The model `{request.body['model']}` does not exist.", 404), 404)

    with FakeServer(handle) as server:
        config = settings(server.url, ocr_model="glm-ocr-typo")
        with pytest.raises(ModelServerError, match="--ocr-model") as caught:
            parse_file(page.path, config, parser_for(config, page))
    assert "glm-ocr-typo" in str(caught.value)
    assert len(server.requests) <= 4  # not retried


def test_a_repeating_reply_is_truncated_and_flagged(page: Page):
    answer = answering(page)
    loop = "Revenue grew by 12%. " + "Costs stayed flat. " * 400

    def handle(request: Request) -> Reply:
        image, _, _ = chat_image_and_prompt(request.body)
        if image.size == page.crop_size("text"):
            return Reply(chat_completion(loop[:6000], finish_reason="length"))
        return answer(request)

    with FakeServer(handle) as server:
        config = settings(server.url)
        doc = parse_file(page.path, config, parser_for(config, page))
    text = doc.pages[0].regions[1]
    assert text.text == "Revenue grew by 12%. Costs stayed flat."
    assert set(text.flags) == {"repetition", "truncated"}


def test_default_layout_crops_are_the_regions_boxes(tmp_path: Path):
    """With the embedded RapidLayout, every request carries the crop of one region."""
    from scanrag import testing

    path = tmp_path / "invoice.png"
    testing.invoice().image().save(path)

    def handle(request: Request) -> Reply:
        image, prompt, _ = chat_image_and_prompt(request.body)
        if prompt == "Table Recognition:":
            return Reply(chat_completion(TABLE_HTML))
        return Reply(chat_completion(f"region {image.width}x{image.height}"))

    with FakeServer(handle) as server:
        config = settings(server.url)
        doc = parse_file(path, config, GlmOcrParser.from_settings(config))
    regions = doc.pages[0].regions
    assert {r.label for r in regions} >= {"title", "text", "table"}
    assert len(server.requests) == len([r for r in regions if r.label != "figure"])
    for region in regions:
        if region.label in ("table", "figure"):
            continue
        crop = region.bbox.pad(CROP_PAD).clip(1654, 2339)
        assert region.text == f"region {crop.width}x{crop.height}"
    title = next(r for r in regions if r.label == "title")
    assert title.bbox.coverage_of(testing.invoice().find("INVOICE").bbox) > 0.9


def test_the_ocr_threads_setting_reaches_the_rapid_layout_step():
    """glm-ocr's RapidLayout shares the cores like `embedded`'s (a worker gets its share)."""
    image = Sheet(400, 300).image()
    page = PageImage(1, image.width, image.height, 200, lambda: image)
    detect = layout_detector(Settings(parser="glm-ocr", ocr_threads=1), "glm-ocr")
    detect(page)
    assert detect._model.session.session.get_session_options().intra_op_num_threads == 1


def test_the_pp_doclayout_step_without_torch_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import fails as if not installed
    settings = Settings(parser="glm-ocr", layout_backend="pp-doclayout")
    with pytest.raises(ConfigError, match=r"scanrag\[transformers\]"):
        layout_detector(settings, "glm-ocr")


def test_repetition_detector_keeps_ordinary_repeats():
    leaders = "Contents " + "." * 40 + " 3"
    empty_row = "<tr>" + "<td></td>" * 12 + "</tr>"
    assert cut_repetition(leaders) == (leaders, False)
    assert cut_repetition(empty_row + "</table>") == (empty_row + "</table>", False)
    assert cut_repetition("ab" * 3) == ("ab" * 3, False)
    assert cut_repetition("Total: " + "1234567890" * 30) == ("Total: 1234567890", True)


def test_a_cut_off_html_table_is_closed_and_still_read():
    rows, markup = read_html_table("<table><tr><td>a</td><td>b</td></tr><tr><td>c")
    assert rows == [["a", "b"], ["c"]]
    assert markup.endswith("</td></tr></table>")
