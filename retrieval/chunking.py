"""Region-aware chunks: regions in reading order packed up to a token budget.

A chunk never splits a table row; a table too large for one chunk is split into row groups
that each repeat the header row. The heading path ("Invoice › Line items") is prepended as
context, and a chunk may cross a page boundary. Every chunk lists the regions it covers with
their boxes and their character span inside the chunk text, plus the line boxes needed to cite
a single line. That provenance lives beside the text, never inside the embedded text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..ingest.model import MARGINAL_LABELS, BBox, Document, Line, Region, union_all

HEADING_SEPARATOR = " › "
_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """Approximate word-piece tokens: one per CJK character, word or punctuation mark.

    Close enough to MiniLM's tokenizer to respect its window without running it per region.
    """
    return len(_TOKEN.findall(text))


@dataclass
class ChunkLine:
    text: str
    bbox: BBox
    start: int  # character span of the line inside the chunk text
    end: int


@dataclass
class ChunkRegion:
    """One region (or the part of it) that a chunk covers."""

    region_id: str
    page: int
    bbox: BBox
    bbox_norm: BBox
    label: str
    start: int
    end: int
    lines: list[ChunkLine] = field(default_factory=list)


@dataclass
class Chunk:
    doc_id: str
    index: int
    text: str
    heading: str
    regions: list[ChunkRegion]

    @property
    def id(self) -> str:
        return f"{self.doc_id}:c{self.index}"

    @property
    def pages(self) -> list[int]:
        return sorted({region.page for region in self.regions})


@dataclass
class _Piece:
    """A unit that is never split: a region, or a row group of a large region."""

    region: Region
    text: str
    lines: list[Line]
    tokens: int
    width: int  # page width and height, for the 0–1000 box of a part
    height: int


def chunk_document(
    doc: Document, max_tokens: int = 200, skip_labels: frozenset[str] = MARGINAL_LABELS
) -> list[Chunk]:
    """Split a document into chunks of at most ~`max_tokens` (a single row may exceed it)."""
    chunks: list[Chunk] = []
    headings: list[tuple[int, str]] = []  # (level, title) stack
    current: list[_Piece] = []
    current_heading = ""
    used = 0

    def flush() -> None:
        nonlocal current, used
        if current:
            chunks.append(_build(doc.id, len(chunks), current_heading, current))
        current, used = [], 0

    for page in doc.pages:
        for region in page.regions:
            if region.label in skip_labels or not region.text.strip():
                continue
            if region.label == "title":
                level = 1 if region.markdown.startswith("# ") else 2
                headings = [(lvl, text) for lvl, text in headings if lvl < level]
                headings.append((level, " ".join(region.text.split())))
                if used > max_tokens // 2:  # a new section starts a new chunk unless tiny
                    flush()
            path = [text for _, text in headings]
            if region.label == "title" and path:
                path = path[:-1]  # the title itself opens the chunk
            heading = HEADING_SEPARATOR.join(path)
            heading_tokens = count_tokens(heading)  # the heading is embedded too
            room = max(max_tokens - heading_tokens, max_tokens // 2)
            for piece in _pieces(region, page.width, page.height, room):
                if current and used + piece.tokens > max_tokens:
                    flush()
                if not current:
                    current_heading, used = heading, heading_tokens
                current.append(piece)
                used += piece.tokens
    flush()
    return chunks


def _region_text(region: Region) -> str:
    return region.markdown if region.label == "table" and region.markdown else region.text


def _pieces(region: Region, width: int, height: int, max_tokens: int) -> list[_Piece]:
    """The region whole, or split into row groups when it is larger than the budget."""
    text = _region_text(region)
    tokens = count_tokens(text)
    if tokens <= max_tokens:
        return [_Piece(region, text, region.lines, tokens, width, height)]
    rows = text.split("\n")
    header: list[str] = []
    if region.label == "table" and len(rows) > 2 and set(rows[1]) <= set("|-: "):
        header, rows = rows[:2], rows[2:]
    header_tokens = count_tokens("\n".join(header))
    groups: list[list[int]] = [[]]  # row numbers
    used = header_tokens
    for number, row in enumerate(rows):
        row_tokens = count_tokens(row)
        if groups[-1] and used + row_tokens > max_tokens:
            groups.append([])
            used = header_tokens
        groups[-1].append(number)
        used += row_tokens
    # header lines are matched too, so that a header cell never claims a data row; they
    # belong to the first part (later parts repeat the header's text, not its lines)
    row_of = _row_of_lines(region.lines, header + rows, region.label == "table")
    pieces = []
    for index, group in enumerate(groups):
        piece_text = "\n".join(header + [rows[number] for number in group])
        members = {len(header) + number for number in group}
        if index == 0:
            members.update(range(len(header)))
        lines = [line for line, row in zip(region.lines, row_of, strict=True) if row in members]
        pieces.append(_Piece(region, piece_text, lines, count_tokens(piece_text), width, height))
    return pieces


#: Rows after the last matched one where a line is looked for before the rest of the region.
ROW_WINDOW = 3


def _row_of_lines(lines: list[Line], rows: list[str], table: bool) -> list[int | None]:
    """The row each line (in reading order) was written into, to box a part of a region.

    Rows are matched in order, never backwards, so a cell such as "7" is placed in its own
    row and not in an earlier one that merely contains the digit ("$1,187.50"). A table line
    prefers a row where it is a whole cell.
    """
    cells = [
        [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row)]
        if table
        else [row]
        for row in rows
    ]
    out: list[int | None] = []
    cursor = 0
    for line in lines:
        needle = line.text.strip()
        found = None
        # the next few rows first: a short line ("2") also occurs in rows far below, and
        # jumping there would leave every line in between without a row
        for window in (
            range(cursor, min(cursor + ROW_WINDOW, len(rows))),
            range(cursor, len(rows)),
        ):
            if needle and found is None:
                found = next((r for r in window if needle in cells[r]), None)
            if needle and found is None:
                found = next((r for r in window if any(needle in c for c in cells[r])), None)
        out.append(found)
        cursor = found if found is not None else cursor
    return out


def _build(doc_id: str, index: int, heading: str, pieces: list[_Piece]) -> Chunk:
    text = f"{heading}\n" if heading else ""
    regions: list[ChunkRegion] = []
    for piece in pieces:
        start = len(text)
        text += piece.text
        end = len(text)
        region = piece.region
        whole = piece.lines is region.lines or not piece.lines
        bbox = region.bbox if whole else union_all([line.bbox for line in piece.lines])
        regions.append(
            ChunkRegion(
                region_id=region.id,
                page=region.page,
                bbox=bbox,
                bbox_norm=bbox.to_norm(piece.width, piece.height),
                label=region.label,
                start=start,
                end=end,
                lines=_locate_lines(piece.lines, text, start, end),
            )
        )
        text += "\n"
    return Chunk(
        doc_id=doc_id, index=index, text=text.rstrip("\n"), heading=heading, regions=regions
    )


def _locate_lines(lines: list[Line], text: str, start: int, end: int) -> list[ChunkLine]:
    """Each line with its character span in the chunk (searched in order within the region)."""
    out = []
    cursor = start
    for line in lines:
        needle = line.text.strip()
        at = text.find(needle, cursor, end) if needle else -1
        if at < 0:
            at = text.find(needle, start, end) if needle else -1
        if at < 0:
            continue
        out.append(ChunkLine(needle, line.bbox, at, at + len(needle)))
        cursor = at + len(needle)
    return out
