"""`vlm` against a fake OpenAI-compatible vision model on 127.0.0.1 (real HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanrag import ModelServerError
from scanrag.config import Settings
from scanrag.fakeserver import FakeServer, Reply, Request, chat_completion, chat_image_and_prompt
from scanrag.ingest.model import BBox
from scanrag.ingest.parsers import get_parser
from scanrag.ingest.parsers.vlm import MAX_SIDE, VLM_PROMPT, regions_from_reply
from scanrag.ingest.pipeline import parse_file
from scanrag.testing import Sheet

REGIONS = [
    {"label": "title", "bbox_2d": [100, 40, 600, 80], "content": "Delivery note DN-7731"},
    {"label": "paragraph", "bbox_2d": [100, 120, 900, 200], "content": "Ship to: Harbour Rd 12"},
    {"label": "table", "bbox_2d": [100, 250, 900, 1200],  # runs off the page: clipped
     "content": "<table><tr><td>Pallets</td><td>4</td></tr></table>"},
    {"label": "text", "bbox_2d": [100, 700, 900, 750], "content": "   "},  # empty: dropped
    {"label": "figure", "bbox_2d": [500, 800, 900, 950], "content": ""},
    {"label": "text", "bbox_2d": [300, 300, 300, 400], "content": "zero width"},  # dropped
]  # fmt: skip


def page_file(tmp_path: Path, size: tuple[int, int] = (1000, 1400)) -> Path:
    sheet = Sheet(*size)
    sheet.write(100, 60, "Delivery note DN-7731", size=40)
    path = tmp_path / "note.png"
    sheet.image().save(path)
    return path


def settings(url: str, **overrides: object) -> Settings:
    return Settings(parser="vlm", vlm_url=f"{url}/v1", **overrides)


def replying(content: str, finish_reason: str = "stop", size=(1000, 1400)):
    def handle(request: Request) -> Reply:
        assert request.path == "/v1/chat/completions"
        assert request.body["model"] == "glm-4.6v-flash"
        image, prompt, mime = chat_image_and_prompt(request.body)
        assert (prompt, image.size, mime) == (VLM_PROMPT, size, "image/jpeg")
        return Reply(chat_completion(content, "glm-4.6v-flash", finish_reason))

    return handle


def test_regions_in_a_fenced_reply_after_thinking_become_pixel_boxes(tmp_path: Path):
    reply = (
        "<think>The page shows a delivery note with a title...</think>"
        f"<|begin_of_box|>```json\n{json.dumps(REGIONS, indent=1)}\n```<|end_of_box|>\n"
        "Let me know if you need anything else."
    )
    with FakeServer(replying(reply)) as server:
        config = settings(
            server.url, vlm_extra={"chat_template_kwargs": {"enable_thinking": False}}
        )
        doc = parse_file(page_file(tmp_path), config, get_parser(config))
    assert server.requests[0].body["chat_template_kwargs"] == {"enable_thinking": False}
    regions = doc.pages[0].regions
    assert [(r.label, r.text) for r in regions] == [
        ("title", "Delivery note DN-7731"),
        ("text", "Ship to: Harbour Rd 12"),
        ("table", "Pallets | 4"),
        ("figure", ""),
    ]
    assert regions[0].bbox == BBox(100, 56, 600, 112)  # 0–1000 → 1000×1400 pixels
    assert regions[0].bbox_norm == BBox(100, 40, 600, 80)
    assert regions[2].bbox == BBox(100, 350, 900, 1400)  # clipped at 1000
    assert regions[2].bbox_norm == BBox(100, 250, 900, 1000)
    assert regions[2].markdown == "<table><tr><td>Pallets</td><td>4</td></tr></table>"
    assert {r.source for r in regions} == {"vlm"}


def test_a_reply_cut_off_at_the_token_limit_keeps_its_complete_regions(tmp_path: Path):
    cut = json.dumps(REGIONS[:2])[:-1] + ', {"label": "table", "bbox_2d": [100, 25'
    with FakeServer(replying(cut, "length")) as server:
        config = settings(server.url)
        doc = parse_file(page_file(tmp_path), config, get_parser(config))
    regions = doc.pages[0].regions
    assert [r.text for r in regions] == ["Delivery note DN-7731", "Ship to: Harbour Rd 12"]
    assert regions[-1].flags == ["truncated"]


def test_a_large_page_is_sent_downscaled_and_boxes_stay_relative(tmp_path: Path):
    path = page_file(tmp_path, (3000, 1500))
    reply = json.dumps([{"label": "text", "bbox_2d": [100, 100, 500, 200], "content": "x"}])
    with FakeServer(replying(reply, size=(MAX_SIDE, MAX_SIDE // 2))) as server:
        config = settings(server.url)
        doc = parse_file(path, config, get_parser(config))
    assert doc.pages[0].regions[0].bbox == BBox(300, 150, 1500, 300)


def test_an_unusable_reply_is_a_clear_error(tmp_path: Path):
    with FakeServer(replying("I'm sorry, I can't read documents.")) as server:
        config = settings(server.url)
        with pytest.raises(ModelServerError) as caught:
            parse_file(page_file(tmp_path), config, get_parser(config))
    message = str(caught.value)
    assert "\n" not in message
    assert f"VLM server {server.url}/v1" in message
    assert "no JSON list of regions" in message and "SCANRAG_VLM_MODEL" in message


def test_an_unusable_reply_falls_back_to_embedded_when_configured(tmp_path: Path):
    with FakeServer(replying("no idea")) as server:
        config = settings(server.url, fallback=True)
        doc = parse_file(page_file(tmp_path), config, get_parser(config))
    regions = doc.pages[0].regions
    assert regions and {r.source for r in regions} == {"embedded"}
    assert all("fallback" in r.flags for r in regions)
    assert "DN-7731" in " ".join(r.text for r in regions)
    assert doc.parser.name == "vlm"
    (warning,) = doc.warnings
    assert "page 1 parsed with embedded instead of vlm" in warning and "no JSON" in warning


def test_regions_from_reply_tolerates_what_models_write():
    region = {"label": "text", "bbox_2d": [1, 2, 3, 4], "content": "a"}
    assert regions_from_reply(json.dumps({"regions": [region]})) == [region]
    assert regions_from_reply("Here you go:\n" + json.dumps([region]) + "\nDone.") == [region]
    assert regions_from_reply('[{"label": "text", "bbox_2d": [1, 2, 3, 4], "content": "a"},]') == [
        region
    ]
    assert regions_from_reply("[]") == []
    assert regions_from_reply("<think>still thinking about [1, 2]") is None
    assert regions_from_reply("no json here") is None
