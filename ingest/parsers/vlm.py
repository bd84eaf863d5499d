"""`vlm`: any OpenAI-compatible vision model reads a whole page (GLM-4.6V-Flash first).

The page goes out as one image with a prompt asking for a JSON list of regions, each
`{label, bbox_2d, content}` with `bbox_2d` in 0–1000 (GLM-V's grounding convention). Vision
models wrap JSON in code fences, think aloud first (`<think>…</think>`), box answers in
`<|begin_of_box|>…<|end_of_box|>` and get cut off at the token limit; the reader below takes
whatever complete regions it can find and says clearly when there are none.
"""

from __future__ import annotations

import json
import re
from typing import Any

from PIL import Image
from pydantic import Field, SecretStr

from ...config import Settings
from ...errors import ConfigError
from ...modelserver import Endpoint, ModelServer, image_data_uri, one_line
from ..loaders import PageImage
from ..model import LABELS, BBox
from .base import Block, ServerOptions
from .glm import content_block, map_label

#: The instruction sent with every page; tests check requests against it.
VLM_PROMPT = (
    "Parse this document page into its layout regions, in reading order. "
    "Answer with a JSON array only. Each element is an object "
    '{"label": "...", "bbox_2d": [x1, y1, x2, y2], "content": "..."} where label is one of '
    + ", ".join(label for label in LABELS if label != "other")
    + "; bbox_2d is the region's box with x scaled to 0-1000 of the page width and y to 0-1000"
    " of the page height, origin top-left; content is the region's text exactly as printed"
    " (tables as HTML <table>, formulas as LaTeX, an empty string for figures)."
)
#: Pages are sent at most this many pixels on their longer side (boxes are relative).
MAX_SIDE = 2048

_THINK = re.compile(r"<think>.*?</think>", re.S)
_BOX_TAGS = re.compile(r"<\|(?:begin|end)_of_box\|>")
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",\s*([\]}])")


def regions_from_reply(reply: str) -> list[dict[str, Any]] | None:
    """The region objects in a model's reply, or None when there is no JSON to be found.

    Tries, in order: a fenced block, the whole reply, then every complete `{...}` object
    on its own (a reply cut off by the token limit still holds its first regions).
    """
    text = _BOX_TAGS.sub("", _THINK.sub("", reply)).strip()
    if text.startswith("<think>"):  # thinking never finished: no answer yet
        return None
    candidates = [*_FENCE.findall(text), text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for source in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
            start = source.find("[")
            while start != -1:
                try:
                    value, _ = decoder.raw_decode(source, start)
                except ValueError:
                    start = source.find("[", start + 1)
                    continue
                if isinstance(value, list) and all(isinstance(v, dict) for v in value):
                    return value
                start = source.find("[", start + 1)
        try:
            value = json.loads(candidate)
        except ValueError:
            value = None
        if isinstance(value, dict):  # {"regions": [...]} or a single region
            lists = [v for v in value.values() if isinstance(v, list) and v]
            lists = [v for v in lists if isinstance(v[0], dict)]
            return lists[0] if lists else [value]
    objects = []
    position = text.find("{")
    while position != -1:
        try:
            value, end = decoder.raw_decode(text, position)
        except ValueError:
            position = text.find("{", position + 1)
            continue
        if isinstance(value, dict):
            objects.append(value)
        position = text.find("{", end)
    return objects or None


def norm_box(raw: Any) -> tuple[float, float, float, float] | None:
    """[x1, y1, x2, y2] in 0–1000, corners sorted and clipped; None when malformed or empty."""
    while isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], list):
        raw = raw[0]  # [[x1, y1, x2, y2]]
    if not isinstance(raw, list) or len(raw) != 4:
        return None
    try:
        x0, y0, x1, y1 = (min(1000.0, max(0.0, float(v))) for v in raw)
    except (TypeError, ValueError):
        return None
    x0, x1 = sorted((x0, x1))
    y0, y1 = sorted((y0, y1))
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


class VlmOptions(ServerOptions):
    vlm_model: str = Field(serialization_alias="model")
    ocr_max_tokens: int = Field(serialization_alias="max_tokens")
    vlm_extra: dict[str, Any] = Field(serialization_alias="extra")
    # its own server, when not the GLM-OCR one (ocr_url, ocr_api_key)
    vlm_url: str | None = Field(exclude=True)
    vlm_api_key: SecretStr | None = Field(exclude=True)


class VlmParser:
    name = "vlm"
    version = "1"

    def __init__(self, options: VlmOptions) -> None:
        url = options.vlm_url or options.ocr_url
        if not url:
            raise ConfigError(
                "the vlm parser needs its server's URL: set SCANRAG_VLM_URL "
                "(or pass --ocr-url), e.g. http://localhost:8000/v1"
            )
        own = options.vlm_url is not None
        key = options.vlm_api_key or options.ocr_api_key
        self.options = options
        self.server = ModelServer(
            Endpoint(
                url,
                what="VLM server",
                url_setting="SCANRAG_VLM_URL" if own else "--ocr-url / SCANRAG_OCR_URL",
                key_setting="SCANRAG_VLM_API_KEY" if options.vlm_api_key else "--ocr-api-key",
                model_setting="SCANRAG_VLM_MODEL",
            ),
            api_key=key.get_secret_value() if key else None,
            timeout=options.ocr_timeout,
            retries=options.ocr_retries,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> VlmParser:
        return cls(VlmOptions.of(settings))

    def config(self) -> dict[str, Any]:
        return self.options.fingerprint()

    def parse_page(self, page: PageImage) -> list[Block]:
        image = page.image
        if max(image.size) > MAX_SIDE:
            scale = MAX_SIDE / max(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            image = image.resize(size, Image.Resampling.LANCZOS)
        reply = self.server.chat(
            self.options.vlm_model,
            [
                {"type": "image_url", "image_url": {"url": image_data_uri(image)}},
                {"type": "text", "text": VLM_PROMPT},
            ],
            max_tokens=self.options.ocr_max_tokens,
            temperature=0.0,
            **self.options.vlm_extra,
        )
        items = regions_from_reply(reply.content)
        cut = reply.finish_reason == "length"
        if items is None:
            hint = (
                "the reply was cut off: raise SCANRAG_OCR_MAX_TOKENS"
                if cut
                else "check that SCANRAG_VLM_MODEL is a vision model that follows instructions"
            )
            raise self.server.error(
                f"page {page.number}: the reply holds no JSON list of regions "
                f"({one_line(reply.content, 100)!r})",
                hint,
            )
        blocks = []
        for item in items:
            box = norm_box(item.get("bbox_2d", item.get("bbox")))
            if box is None:
                continue
            content = item.get("content", item.get("text"))
            if isinstance(content, list):
                content = "\n".join(str(part) for part in content)
            block = content_block(
                map_label(str(item.get("label") or "text")),
                BBox.from_norm(box, page.width, page.height).clip(page.width, page.height),
                str(content) if content is not None else None,
                self.name,
            )
            if block is not None and block.bbox.area > 0:
                blocks.append(block)
        if cut and blocks:  # the regions after the last complete one are lost
            blocks[-1].flags.append("truncated")
        if items and not blocks:
            raise self.server.error(
                f"page {page.number}: none of the {len(items)} regions in the reply has a "
                f"usable bbox_2d and content ({one_line(json.dumps(items[0]), 100)})",
                "check that SCANRAG_VLM_MODEL answers with 0-1000 bbox_2d boxes",
            )
        return blocks
