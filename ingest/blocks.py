"""Assemble OCR lines and layout boxes into labelled blocks in reading order.

Used by every backend that has lines and (optionally) layout boxes: the embedded RapidOCR +
RapidLayout parser, the PDF text layer and Tesseract. Layout models miss regions and
mislabel some (a large title called "header", a caption inside a table); the rules below
correct what geometry can tell, and lines outside every layout box become text blocks of
their own.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from .layout import (
    in_rows,
    markdown_table,
    median_height,
    paragraphs,
    plain_text,
    reading_order,
    rows,
    table_cells,
    table_text,
)
from .model import BBox, Label, Line, union_all
from .parsers.base import Block

#: A line this much taller than the page's median line is a heading (OCR boxes add padding,
#: so a 14 pt title over 11 pt body text measures only ~1.3× as tall).
TITLE_HEIGHT_RATIO = 1.2
#: A header or footer is no taller than body text.
MARGINAL_HEIGHT_RATIO = 1.1
#: A layout "title" this confident stays a title even when it is not taller than body text.
SURE_TITLE_SCORE = 0.85
#: Headers and footers live in this share of the page at the top and bottom.
MARGIN_SHARE = 0.1
#: Loose text blocks closer than this many line heights merge into one region.
MERGE_GAP_LINES = 2.5


@dataclass
class LayoutBox:
    """One region found by a layout model, before lines are assigned to it."""

    label: Label
    bbox: BBox
    score: float = 1.0
    native: str = ""  # the layout model's own class name, when it says more than `label`


@dataclass
class _Item:
    label: Label
    bbox: BBox
    lines: list[Line] = field(default_factory=list)
    loose: bool = False  # built from lines outside every layout box


def build_blocks(
    lines: list[Line], layout: list[LayoutBox], width: int, height: int, source: str
) -> list[Block]:
    """Lines + layout boxes → blocks with text and Markdown, in reading order."""
    body = median_height(lines) or 1.0
    figures = [box for box in layout if box.label == "figure"]
    boxes = sorted(  # smallest first: a line goes to the most specific box that covers it
        drop_nested([box for box in layout if box.label != "figure"], _owns_lines),
        key=lambda box: box.bbox.area,
    )

    owned: dict[int, list[Line]] = {}
    loose: list[Line] = []
    for line in lines:
        owner = next(
            (i for i, box in enumerate(boxes) if box.bbox.coverage_of(line.bbox) >= 0.5), None
        )
        if owner is None:
            loose.append(line)
        else:
            owned.setdefault(owner, []).append(line)

    items = [
        item
        for i, members in owned.items()
        for item in _peel_heading(
            _Item(
                _fix_label(boxes[i], members, lines, body, height),
                union_all([m.bbox for m in members]),
                members,
            ),
            body,
        )
    ]
    for group in paragraphs(loose):
        label: Label = "title" if _is_heading(group, body) else "text"
        items.append(_Item(label, union_all([m.bbox for m in group]), group, loose=True))
    for figure in figures:
        inside = sum(1 for line in lines if figure.bbox.coverage_of(line.bbox) >= 0.5)
        if inside <= 2 and figure.bbox.area < 0.8 * width * height:
            items.append(_Item("figure", figure.bbox.clip(width, height)))

    ordered: list[_Item] = []
    leaves = reading_order(items, lambda item: item.bbox, lambda item: item.lines, width)
    for leaf in leaves:
        for position, item in enumerate(in_rows(leaf, lambda item: item.bbox)):
            if ordered and _joins(ordered[-1], item, body, same_leaf=position > 0):
                ordered[-1] = _merge(ordered[-1], item)
            else:
                ordered.append(item)
    title_heights = [median_height(item.lines) for item in ordered if item.label == "title"]
    top_title = max(title_heights, default=0.0)
    return [_to_block(item, source, top_title) for item in ordered]


def drop_nested(
    boxes: list[LayoutBox], owns: Callable[[LayoutBox, LayoutBox], bool]
) -> list[LayoutBox]:
    """`boxes`, in their order, without each one mostly (80%) inside a larger box that
    `owns(outer, inner)` its content: the outer box reads it, and reading both would repeat
    it. Between boxes of one size the more confident wins, then the first, so of a box
    reported twice exactly one stays."""
    ranks = [(box.bbox.area, box.score, -i) for i, box in enumerate(boxes)]
    return [
        box
        for i, box in enumerate(boxes)
        if not any(
            ranks[j] > ranks[i] and other.bbox.coverage_of(box.bbox) >= 0.8 and owns(other, box)
            for j, other in enumerate(boxes)
        )
    ]


def _owns_lines(outer: LayoutBox, inner: LayoutBox) -> bool:
    """CDLA reports a table's header cell as a caption inside the table, and a form's value
    column as a text box inside the text box of the whole form: the outer box wins when it is
    a more confident table, or has the same label."""
    return (outer.label == "table" and outer.score > inner.score) or outer.label == inner.label


def _is_heading(lines: list[Line], body: float) -> bool:
    return len(rows(lines)) <= 2 and median_height(lines) >= TITLE_HEIGHT_RATIO * body


def _same_row(a: Line, b: Line) -> bool:
    overlap = min(a.bbox.y1, b.bbox.y1) - max(a.bbox.y0, b.bbox.y0)
    return overlap >= 0.5 * min(a.bbox.height, b.bbox.height)


def _fix_label(
    box: LayoutBox, lines: list[Line], page_lines: list[Line], body: float, page_height: int
) -> Label:
    """Correct labels that geometry contradicts (a title shares its row with nothing: "合计"
    beside an amount is a key, not a heading)."""
    label = box.label
    extent = union_all([line.bbox for line in lines])
    if label in ("header", "footer"):
        in_margin = (
            extent.y1 <= MARGIN_SHARE * page_height
            if label == "header"
            else extent.y0 >= (1 - MARGIN_SHARE) * page_height
        )
        if in_margin and median_height(lines) <= MARGINAL_HEIGHT_RATIO * body:
            return label
        return "title" if _is_heading(lines, body) else "text"
    if label == "title":
        confident = box.score >= SURE_TITLE_SCORE or _is_heading(lines, body)
        alone = not any(
            _same_row(line, other) for line in lines for other in page_lines if other not in lines
        )
        return "title" if confident and alone and len(rows(lines)) <= 2 else "text"
    if label == "table":
        cells = table_cells(lines)
        if len(cells) < 2 or max(len(row) for row in cells) < 2:
            return "text"
    return label


def _peel_heading(item: _Item, body: float) -> list[_Item]:
    """Split a heading off the top of a text or table box.

    Layout models often box a shop name or a receipt number together with the table or text
    below it: single-line rows on top of a table, or a tall first line of a text box.
    """
    if item.label not in ("table", "text"):
        return [item]
    item_rows = rows(item.lines)
    head: list[Line] = []
    if item.label == "table":
        while len(item_rows) > 2 and len(item_rows[0]) == 1:
            head.extend(item_rows.pop(0))
    elif len(item_rows) > 2 and len(item_rows[0]) == 1 and _is_heading(item_rows[0], body):
        head.extend(item_rows.pop(0))
    if not head:
        return [item]
    rest = [line for row in item_rows for line in row]
    peeled = [
        _Item(
            "title" if _is_heading(group, body) else "text",
            union_all([m.bbox for m in group]),
            group,
        )
        for group in paragraphs(head)
    ]
    return [*peeled, _Item(item.label, union_all([m.bbox for m in rest]), rest)]


def _joins(previous: _Item, item: _Item, body: float, same_leaf: bool) -> bool:
    """Text that no cut separates is read as one region, row by row (a form's keys and
    values); loose text close to loose text joins too."""
    if not previous.label == item.label == "text":
        return False
    if same_leaf:
        return True
    if not (previous.loose and item.loose):
        return False
    a, b = previous.bbox, item.bbox
    gap = b.y0 - a.y1
    overlaps = min(a.x1, b.x1) - max(a.x0, b.x0) > 0
    return overlaps and -body < gap <= MERGE_GAP_LINES * body


def _merge(a: _Item, b: _Item) -> _Item:
    return _Item(a.label, a.bbox.union(b.bbox), a.lines + b.lines, loose=a.loose and b.loose)


def _to_block(item: _Item, source: str, top_title: float) -> Block:
    lines = [line for row in rows(item.lines) for line in row]
    text = plain_text(lines)
    markdown = text
    if item.label == "table":
        cells = table_cells(lines)
        text = table_text(cells)
        markdown = markdown_table(cells)
    elif item.label == "title":
        level = "#" if median_height(lines) >= 0.9 * top_title else "##"
        markdown = f"{level} {' '.join(text.splitlines())}"
    elif item.label == "formula":
        markdown = f"$$\n{text}\n$$"
    elif item.label == "caption":
        markdown = f"*{text}*" if text else ""
    scores = [line.confidence for line in lines if line.confidence is not None]
    return Block(
        label=item.label,
        bbox=item.bbox,
        lines=lines,
        text=text,
        markdown=markdown,
        confidence=round(statistics.fmean(scores), 4) if scores else None,
        source=source,
    )
