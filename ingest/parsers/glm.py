"""GLM-OCR conventions shared by the `glm-ocr`, `transformers` and `vlm` backends.

GLM-OCR reads one region crop at a time with a task prompt; layout comes first. This module
holds what every GLM backend agrees on: the task prompts, the layout labels and how they map
onto scanrag's, the region plan (crop boxes in reading order), and how a model's reply
(plain text, HTML tables, LaTeX formulas, sometimes a runaway repetition) becomes a `Block`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any, Literal

from PIL import Image

from ..blocks import LayoutBox, drop_nested
from ..layout import in_rows, reading_order, table_text
from ..loaders import PageImage
from ..model import LABELS, BBox, Label, Line
from .base import Block

log = logging.getLogger(__name__)

Task = Literal["text", "table", "formula"]

#: The exact prompts GLM-OCR was trained with (its SDK's `task_prompt_mapping`).
TASK_PROMPTS: dict[Task, str] = {
    "text": "Text Recognition:",
    "table": "Table Recognition:",
    "formula": "Formula Recognition:",
}

#: PP-DocLayoutV3 classes (GLM-OCR's layout model; MaaS `native_label`) → scanrag labels.
#: The SDK drops headers, footers, page numbers and footnotes; scanrag keeps them (they stay
#: out of search chunks by label) and reads them as text.
PP_LABELS: dict[str, Label] = {
    "abstract": "text",
    "algorithm": "code",
    "aside_text": "text",
    "chart": "figure",
    "content": "text",
    "display_formula": "formula",
    "doc_title": "title",
    "figure_title": "caption",
    "footer": "footer",
    "footer_image": "footer",
    "footnote": "text",
    "formula_number": "other",
    "header": "header",
    "header_image": "header",
    "image": "figure",
    "inline_formula": "formula",
    "number": "footer",
    "paragraph_title": "title",
    "reference": "text",
    "reference_content": "text",
    "seal": "seal",
    "table": "table",
    "text": "text",
    "vertical_text": "text",
    "vision_footnote": "caption",
}
#: PP-DocLayoutV3 classes that are pictures: kept as regions, never sent for OCR.
PP_PICTURES = frozenset({"chart", "image", "header_image", "footer_image"})
#: Coarse labels (MaaS `label`, GLM-OCR's visualisation classes, free-form VLM labels).
COARSE_LABELS: dict[str, Label] = {
    "image": "figure",
    "picture": "figure",
    "chart": "figure",
    "photo": "figure",
    "equation": "formula",
    "heading": "title",
    "section_header": "title",
    "page_header": "header",
    "page_footer": "footer",
    "paragraph": "text",
    "list_item": "list",
    "stamp": "seal",
    "signature": "handwriting",
}
#: A crop gets this many pixels of white margin around its layout box: tight boxes cut
#: the ascenders of the first line.
CROP_PAD = 4
#: How errors name the GLM-OCR server and its settings (self-hosted and Zhipu MaaS alike).
OCR_ENDPOINT = dict(
    what="glm-ocr server",
    url_setting="--ocr-url / SCANRAG_OCR_URL",
    key_setting="--ocr-api-key / SCANRAG_OCR_API_KEY",
    model_setting="--ocr-model / SCANRAG_OCR_MODEL",
)


def map_label(name: str | None) -> Label:
    """Any layout or model label → a scanrag label ("other" when unknown)."""
    key = (name or "").strip().lower().replace("-", "_").replace(" ", "_")
    if key in LABELS:
        return key  # type: ignore[return-value]
    return PP_LABELS.get(key) or COARSE_LABELS.get(key) or "other"


def task_for(label: Label) -> Task | None:
    """The prompt a region is read with; None for pictures (kept without OCR)."""
    if label == "figure":
        return None
    if label in ("table", "formula"):
        return label
    return "text"


# --- model replies → blocks --------------------------------------------------------------

#: A unit of 1–200 characters repeated at least 10 times in a row.
_REPEAT = re.compile(r"(.{1,200}?)\1{9,}", re.S)


def cut_repetition(text: str) -> tuple[str, bool]:
    """Truncate a runaway repetition (a small model's known failure under greedy decoding).

    A loop runs until the token limit, so a run that reaches the end of the reply is cut
    after its first occurrence; a run elsewhere must be long (50+ repeats, 500+ characters)
    to count, so dotted leaders and rows of empty cells survive.
    """
    if len(text) < 20:
        return text, False
    end = len(text.rstrip())
    for match in _REPEAT.finditer(text):
        unit = match.group(1)
        repeats = (match.end() - match.start()) // len(unit)
        span = match.end() - match.start()
        at_end = end - match.end() < len(unit)
        if (at_end and span >= 100 and unit.strip()) or (repeats >= 50 and span >= 500):
            # Keep one period, ending at a word boundary: the regex may start the period
            # mid-sentence (". Costs stayed flat" rather than "Costs stayed flat. ").
            cut = match.start() + len(unit)
            for shift in range(len(unit)):
                if cut + shift >= len(text) or text[cut + shift].isspace():
                    cut += shift
                    break
            return text[:cut].rstrip(), True
    return text, False


class _TableReader(HTMLParser):
    """Rows of cell texts from an HTML table, and the tags left open (a cut-off reply)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self.open: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("table", "thead", "tbody", "tfoot", "tr", "td", "th"):
            self.open.append(tag)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            if not self.rows:
                self.rows.append([])
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:
            while self.open and self.open.pop() != tag:
                pass
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def close(self) -> None:
        super().close()
        if self._cell is not None:  # a reply cut inside a cell
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None


def read_html_table(markup: str) -> tuple[list[list[str]], str]:
    """(cell rows, the markup with any unclosed table tags closed)."""
    reader = _TableReader()
    reader.feed(markup)
    reader.close()
    closing = "".join(f"</{tag}>" for tag in reversed(reader.open))
    return [row for row in reader.rows if any(row)], markup + closing


_FORMULA_DELIMITERS = re.compile(r"^\s*(\$\$|\\\[|\\\()\s*|\s*(\$\$|\\\]|\\\))\s*$")
_HEADING = re.compile(r"^\s*#{1,6}\s+")
_BULLET = re.compile(r"^\s*(?:[-*•·]|\(?\d{1,3}[.)])\s+")
_MARKDOWN_RULE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def content_block(
    label: Label,
    bbox: BBox,
    content: str | None,
    source: str,
    *,
    heading: str = "#",
    finish_reason: str | None = None,
) -> Block | None:
    """A model's reply for one region as a block; None when a non-picture region is empty.

    Tables keep their HTML in `markdown` (it renders) and get cell text in `text`;
    formulas become `$$…$$`; titles become Markdown headings at `heading` level.
    """
    flags: list[str] = []
    text, repeated = cut_repetition((content or "").strip())
    if repeated:
        flags.append("repetition")
    if finish_reason == "length":
        flags.append("truncated")
    block = Block(label=label, bbox=bbox, source=source, flags=flags)
    if not text:
        return block if label == "figure" else None
    if label == "table" or text.lstrip().lower().startswith("<table"):
        if "<t" in text.lower():
            rows, markup = read_html_table(text)
            block.label, block.text, block.markdown = "table", table_text(rows), markup
        else:  # a Markdown or plain-text table
            rows = [
                [cell.strip() for cell in row.strip().strip("|").split("|")]
                for row in text.splitlines()
                if row.strip() and not _MARKDOWN_RULE.match(row)
            ]
            block.text, block.markdown = table_text(rows), text
    elif label == "formula":
        latex = _FORMULA_DELIMITERS.sub("", text).strip()
        block.text, block.markdown = latex, f"$$\n{latex}\n$$"
    elif label == "title":
        plain = " ".join(_HEADING.sub("", line) for line in text.splitlines() if line.strip())
        block.text, block.markdown = plain, f"{heading} {plain}"
    else:
        plain = "\n".join(_HEADING.sub("", line) for line in text.splitlines())
        block.text, block.markdown = plain.strip(), text
        nonblank = [line for line in text.splitlines() if line.strip()]
        if label == "text" and len(nonblank) >= 2 and all(_BULLET.match(x) for x in nonblank):
            block.label = "list"
    if not block.text and label != "figure":
        return None
    return block


# --- the region plan ---------------------------------------------------------------------


@dataclass
class PlannedRegion:
    """One region to read: its label, box, crop box and prompt (None: keep without OCR)."""

    label: Label
    bbox: BBox
    crop: BBox
    task: Task | None
    heading: str = "#"


#: Reads one crop with one task; returns (reply text, finish reason).
Recognize = Callable[[Image.Image, Task], tuple[str, "str | None"]]


def drop_duplicates(boxes: list[LayoutBox]) -> list[LayoutBox]:
    """Drop a box mostly inside a larger one that will be read too (its text would be read
    twice). Pictures neither swallow nor get swallowed: a caption inside a chart is text."""
    return drop_nested(boxes, lambda outer, inner: "figure" not in (outer.label, inner.label))


def order_boxes(boxes: list[LayoutBox], page_width: int) -> list[LayoutBox]:
    """Layout boxes in reading order by the same XY-cut the line-based parsers use.

    There are no OCR lines yet, so each box stands for one line of its own width: a
    column of boxes that fill it reads as running text.
    """

    def as_lines(box: LayoutBox) -> list[Line]:
        return [Line(text="", bbox=box.bbox)]

    leaves = reading_order(boxes, lambda box: box.bbox, as_lines, page_width)
    return [box for leaf in leaves for box in in_rows(leaf, lambda box: box.bbox)]


def plan_regions(page: PageImage, boxes: list[LayoutBox], ordered: bool) -> list[PlannedRegion]:
    """What to read on a page: layout boxes deduplicated, in reading order, with crop boxes.

    `ordered` says the layout model already gave reading order (PP-DocLayoutV3 does). A page
    where layout finds nothing is read as one text region.
    """
    width, height = page.width, page.height
    boxes = [
        LayoutBox(box.label, box.bbox.clip(width, height), box.score, box.native)
        for box in boxes
        if box.bbox.clip(width, height).area > 0
    ]
    boxes = drop_duplicates(boxes)
    if not ordered:
        boxes = order_boxes(boxes, width)
    if not boxes:
        boxes = [LayoutBox("text", BBox(0, 0, width, height))]
    titles = [box.bbox.height for box in boxes if box.label == "title"]
    top = max(titles, default=0)

    def heading(box: LayoutBox) -> str:
        if box.native in ("doc_title", "paragraph_title"):
            return "#" if box.native == "doc_title" else "##"
        return "#" if box.bbox.height >= 0.9 * top else "##"

    return [
        PlannedRegion(
            label=box.label,
            bbox=box.bbox,
            crop=box.bbox.pad(CROP_PAD).clip(width, height),
            task=None if box.native in PP_PICTURES else task_for(box.label),
            heading=heading(box),
        )
        for box in boxes
    ]


def read_regions(
    page: PageImage,
    plan: list[PlannedRegion],
    recognize: Recognize,
    source: str,
    pool: ThreadPoolExecutor | None = None,
) -> list[Block]:
    """Read every planned region (concurrently when a pool is given) into blocks, in order.

    Any failure (a `ModelServerError` after retries) fails the page: a page with holes
    would look complete to search.
    """
    image = page.image
    crops = [image.crop(region.crop) if region.task else None for region in plan]

    def read(index: int) -> tuple[str, str | None]:
        task, crop = plan[index].task, crops[index]
        return ("", None) if task is None or crop is None else recognize(crop, task)

    if pool is None:
        replies = [read(index) for index in range(len(plan))]
    else:
        futures = [pool.submit(read, index) for index in range(len(plan))]
        try:
            replies = [future.result() for future in futures]
        except BaseException:
            for future in futures:  # the page has failed: do not send what has not gone yet
                future.cancel()
            raise
    blocks = []
    for region, (content, finish) in zip(plan, replies, strict=True):
        block = content_block(
            region.label,
            region.bbox,
            content,
            source,
            heading=region.heading,
            finish_reason=finish,
        )
        if block is not None:
            blocks.append(block)
    return blocks
