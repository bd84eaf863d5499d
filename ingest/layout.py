"""Page geometry shared by the parsers: rows, paragraphs, reading order, tables.

Everything works on boxes in page pixels. Reading order is a recursive XY-cut that only
splits a band into columns when both sides look like running text, so two-column reports are
read column by column while forms and tables (a key and its value, the cells of a row) are read
row by row.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import TypeVar

from .model import BBox, Line, union_all

T = TypeVar("T")

#: A column must be at least this share of the page width to be read on its own.
MIN_COLUMN_SHARE = 0.2
#: ...and its lines must fill at least this share of the column's width (running text).
MIN_COLUMN_FILL = 0.5


def median_height(lines: Sequence[Line]) -> float:
    return statistics.median(line.bbox.height for line in lines) if lines else 0.0


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    """The length two intervals [a0, a1] and [b0, b1] share (0 when apart)."""
    return max(0, min(a1, b1) - max(a0, b0))


def _line_box(line: Line) -> BBox:
    return line.bbox


def rows(
    items: Sequence[T],
    box: Callable[[T], BBox] = _line_box,  # type: ignore[assignment]
    grow: bool = True,
) -> list[list[T]]:
    """Group items into rows (top to bottom), each row left to right.

    Two items share a row when their vertical overlap is at least half the smaller height;
    sorting by top-left corner alone interleaves rows on slightly skewed scans. A row's band
    grows with each item (`grow`), which follows a skewed row; without it the band is its
    items' median top and bottom, so one line that sits between two rows (a unit printed a
    little low, a key written on two lines) does not merge them.
    """
    out: list[list[T]] = []
    spans: list[tuple[float, float]] = []
    edges: list[tuple[list[int], list[int]]] = []
    for item in sorted(items, key=lambda it: (box(it).center[1], box(it).x0)):
        b = box(item)
        for index in range(len(out) - 1, max(-1, len(out) - 3), -1):
            top, bottom = spans[index]
            shared = overlap(top, bottom, b.y0, b.y1)
            if shared > 0 and shared >= 0.5 * min(bottom - top, b.height):
                out[index].append(item)
                if grow:
                    spans[index] = (min(top, b.y0), max(bottom, b.y1))
                else:
                    tops, bottoms = edges[index]
                    tops.append(b.y0)
                    bottoms.append(b.y1)
                    spans[index] = (statistics.median(tops), statistics.median(bottoms))
                break
        else:
            out.append([item])
            spans.append((b.y0, b.y1))
            edges.append(([b.y0], [b.y1]))
    for row in out:
        row.sort(key=lambda it: box(it).x0)
    return out


def paragraphs(lines: Sequence[Line]) -> list[list[Line]]:
    """Cluster lines into paragraphs: vertically adjacent lines whose x-ranges overlap.

    A form's key and value never overlap horizontally, so they stay apart here and are paired
    later, row by row.
    """
    if not lines:
        return []
    height = median_height(lines)
    parent = list(range(len(lines)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(len(lines)), key=lambda i: lines[i].bbox.y0)
    for position, i in enumerate(order):
        a = lines[i].bbox
        for j in order[position + 1 :]:
            b = lines[j].bbox
            if b.y0 - a.y1 > height:
                break
            narrower = min(a.width, b.width) or 1
            if b.y0 >= a.y1 - 0.5 * height and overlap(a.x0, a.x1, b.x0, b.x1) >= 0.3 * narrower:
                parent[find(j)] = find(i)
    groups: dict[int, list[Line]] = {}
    for i in order:
        groups.setdefault(find(i), []).append(lines[i])
    return list(groups.values())


def _split(items: Sequence[T], box: Callable[[T], BBox], axis: int) -> list[list[T]]:
    """Split items at every gap along one axis (0 = x, 1 = y), in order."""
    lo, hi = (0, 2) if axis == 0 else (1, 3)
    ordered = sorted(items, key=lambda item: box(item)[lo])
    groups: list[list[T]] = []
    end = None
    for item in ordered:
        b = box(item)
        if end is None or b[lo] >= end:
            groups.append([item])
            end = b[hi]
        else:
            groups[-1].append(item)
            end = max(end, b[hi])
    return groups


def reading_order(
    items: Sequence[T],
    box: Callable[[T], BBox],
    lines: Callable[[T], Sequence[Line]],
    page_width: int,
) -> list[list[T]]:
    """Recursive XY-cut: the items grouped into leaves, leaves in reading order.

    A leaf is a set of items that no cut separates (for example the cells of one table row);
    callers order the items of a leaf row by row.
    """

    def is_text_column(column: list[T]) -> bool:
        column_lines = [line for item in column for line in lines(item)]
        extent = union_all([box(item) for item in column])
        if len(column_lines) < 2 or extent.width < MIN_COLUMN_SHARE * page_width:
            return False
        fill = statistics.median(line.bbox.width for line in column_lines)
        return fill >= MIN_COLUMN_FILL * extent.width

    def cut(group: list[T]) -> list[list[T]]:
        if len(group) <= 1:
            return [group]
        columns = _split(group, box, axis=0)
        if len(columns) > 1 and all(is_text_column(column) for column in columns):
            return [leaf for column in columns for leaf in cut(column)]
        bands = _split(group, box, axis=1)
        if len(bands) > 1:
            return [leaf for band in bands for leaf in cut(band)]
        return [group]

    return cut(list(items))


def in_rows(items: Sequence[T], box: Callable[[T], BBox]) -> list[T]:
    """Blocks ordered top to bottom; blocks side by side (vertical overlap of at least half
    the taller one) left to right. A small block inside a tall one's span comes after it."""
    out: list[list[T]] = []
    for item in sorted(items, key=lambda it: (box(it).y0, box(it).x0)):
        b = box(item)
        last = box(out[-1][0]) if out else None
        if last and overlap(last.y0, last.y1, b.y0, b.y1) >= 0.5 * max(last.height, b.height):
            out[-1].append(item)
        else:
            out.append([item])
    return [item for row in out for item in sorted(row, key=lambda it: box(it).x0)]


def row_text(row: Sequence[Line]) -> str:
    return " ".join(line.text.strip() for line in row if line.text.strip())


def plain_text(lines: Sequence[Line]) -> str:
    """Rows joined by newlines, the lines of a row (a key and its value) by a space."""
    return "\n".join(text for text in (row_text(row) for row in rows(lines)) if text)


def table_cells(lines: Sequence[Line]) -> list[list[str]]:
    """Rebuild a table's grid from its line positions: rows by overlap, columns by x-bands."""
    grid_rows = rows(lines)
    bands: list[list[int]] = []  # merged [x0, x1] of every column
    for line in sorted(lines, key=lambda item: item.bbox.x0):
        if bands and line.bbox.x0 < bands[-1][1]:
            bands[-1][1] = max(bands[-1][1], line.bbox.x1)
        else:
            bands.append([line.bbox.x0, line.bbox.x1])
    cells: list[list[str]] = []
    for row in grid_rows:
        out = [""] * len(bands)
        for line in row:
            column = max(
                range(len(bands)),
                key=lambda c: overlap(bands[c][0], bands[c][1], line.bbox.x0, line.bbox.x1),
            )
            out[column] = f"{out[column]} {line.text.strip()}".strip()
        cells.append(out)
    return cells


def table_text(rows: Sequence[Sequence[str]]) -> str:
    """Plain text of a table for search: one row a line, its non-empty cells joined by " | "."""
    return "\n".join(" | ".join(cell for cell in row if cell) for row in rows)


def markdown_table(cells: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table; the first row is the header."""
    if not cells:
        return ""
    width = max(len(row) for row in cells)

    def fmt(row: list[str]) -> str:
        padded = [cell.replace("|", "\\|") for cell in row] + [""] * (width - len(row))
        return "| " + " | ".join(padded) + " |"

    return "\n".join(
        [fmt(cells[0]), "| " + " | ".join(["---"] * width) + " |", *map(fmt, cells[1:])]
    )
