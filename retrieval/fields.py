"""Key–value structure of a page rebuilt from OCR line geometry, for any parser.

A search returns lines with boxes. Here the lines of one page (from every hit on it) become a
`Sheet`: rows by vertical overlap, each line a `Cell`. A field name is looked for in the cells
(case, spacing, punctuation and an OCR slip or two do not matter; a short key such as "TO" must
be a whole word), and its value is read where forms put it:

- after the key on the same line, with or without a colon, up to the next "Key:" on that line
  (`FAX NUMBER: (336) 335-7392 PHONE NUMBER: (336) 335-7363` holds two pairs);
- in the next cell to the right on the same row;
- in the cell below (boxed forms, column headers over their values);
- continued on the lines below it when the value runs over several lines.

A value is a list of `Span`s: parts of cells, with boxes cut to the value's characters so a
citation highlights the value and not the whole line.
"""

from __future__ import annotations

import bisect
import re
import statistics
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property

from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from ..ingest.layout import overlap, rows
from ..ingest.model import BBox, union_all
from .questions import normal
from .results import HitLine, HitRegion, SearchHit

#: A field name matches a page text when their similarity (0–1) reaches this; below it
#: the page does not hold the field.
KEY_MATCH = 0.8
#: A value runs on to the next line only from a line at least this wide (in Latin
#: characters): a line that wraps is a full one.
WRAPPED_WIDTH = 16
#: Keys this short (letters and digits) must match exactly: "TO" is not "TD".
SHORT_KEY = 3


@dataclass(eq=False)
class Cell:
    """One OCR line of a page, where it came from, and its text in comparable form."""

    line: HitLine
    region: HitRegion
    hit: SearchHit
    rank: int  # of the first hit that holds it
    norm: str = ""  # letters and digits, lower case, NFKC
    origin: list[int] = field(default_factory=list)  # index in line.text of each norm char
    row: int = 0
    parts: tuple[Cell, ...] = ()  # the lines of a key written on several lines (`_stacked`)

    @property
    def text(self) -> str:
        return self.line.text

    @property
    def box(self) -> BBox:
        return self.line.bbox

    def __post_init__(self) -> None:
        if self.parts:
            return  # a joined cell: given its parts' forms
        for index, char in enumerate(self.line.text):
            for folded in unicodedata.normalize("NFKC", char).lower():
                if folded.isalnum():
                    self.norm += folded
                    self.origin.append(index)


@dataclass(frozen=True)
class Span:
    """Characters [start, end) of one cell's text."""

    cell: Cell
    start: int
    end: int

    @property
    def text(self) -> str:
        return self.cell.text[self.start : self.end]

    @property
    def box(self) -> BBox:
        return span_box(self.cell.text, self.cell.box, self.start, self.end)


@dataclass
class Sheet:
    """The lines of one page of one document, gathered from all the hits that show it."""

    doc_id: str
    page: int
    cells: list[Cell]
    rows: list[list[Cell]]
    line_height: float

    def row_of(self, cell: Cell) -> list[Cell]:
        return self.rows[cell.row]

    @cached_property
    def stacks(self) -> list[Cell]:
        """Keys written on two or three lines, joined (`_stacked`); worked out when first
        needed."""
        return _stacked(self)

    @cached_property
    def stacked_parts(self) -> set[int]:
        """The ids of the lines of keys of short lines written on two or three lines: such a
        line ends a value read along its row."""
        return {
            id(part)
            for joined in self.stacks
            if all(text_width(part.text) <= STACKED_WIDTH for part in joined.parts)
            for part in joined.parts
        }

    @cached_property
    def spaced(self) -> list[Cell]:
        """Keys whose characters are spread over a row ("民 | 族", "姓 | 名王欣"), joined."""
        return _spaced(self)

    def right_of(self, cell: Cell) -> Cell | None:
        """The next cell to the right, level with this one: on its row or with its middle
        within the key's height (a key on two lines); or, counted as `OFF_LEVEL` line heights
        further away, sharing a good part of the key's height (a signature written a little
        above its line)."""
        nearby = [c for row in self.rows[max(0, cell.row - 1) : cell.row + 3] for c in row]
        after: list[tuple[float, Cell]] = []
        for other in nearby:
            if (
                other is cell
                or other in cell.parts
                or other.box.x0 <= cell.box.x0
                or other.box.x0 < cell.box.x1 - 0.5 * self.line_height
            ):
                continue
            if other.row == cell.row or cell.box.y0 <= other.box.center[1] <= cell.box.y1:
                after.append((other.box.x0, other))
            elif _shared_height(cell.box, other.box) >= LEVEL:
                after.append((other.box.x0 + OFF_LEVEL * self.line_height, other))
        return min(after, key=lambda item: item[0], default=(0.0, None))[1]

    def below(self, cell: Cell, gap: float = 2.5) -> Cell | None:
        """The nearest cell under this one that shares its columns (within `gap` line heights)."""
        best: Cell | None = None
        for row in self.rows[cell.row + 1 :]:
            top = min(other.box.y0 for other in row)
            if top - cell.box.y1 > gap * self.line_height:
                break
            for other in row:
                if other.box.y0 < cell.box.y1 - 0.5 * self.line_height:
                    continue  # beside the key, not under it (or the key's own second line)
                shares = _shares_column(cell.box, other.box, self.line_height)
                if shares and (best is None or other.box.x0 < best.box.x0):
                    best = other
            if best is not None:
                return best
        return None

    def after_colon(self, cell: Cell) -> Cell | None:
        """The value of a "Key:" with nothing beside or under it, written on the next line
        past the key's end ("办理情况：" / "      准许办理"): the first cell of the row after
        the key's last line that starts right of the key and within `INDENT` line heights of
        its end."""
        last = (cell.parts or (cell,))[-1]
        if last.row + 1 >= len(self.rows):
            return None
        for other in self.rows[last.row + 1]:
            if other in cell.parts:
                continue
            if other.box.y0 - cell.box.y1 > self.line_height:
                return None
            if other.box.x0 < cell.box.x0:
                return None  # the next row starts left of the key: another field
            if other.box.x0 <= cell.box.x1 + INDENT * self.line_height:
                return other
        return None

    def heads_column(self, cell: Cell, first: Cell) -> bool:
        """True when a key heads a table's column, so its value is the column under it and
        not the next header to its right: the key's row is names (no digits), three or more
        of them over three or more cells of the row under the key, which holds no label; and
        the cell under the key (`first`) reads as data: a number, or a text repeated on its
        row or under it ("OGS | OGS | OGS", "四川 / 四川")."""
        own = self.rows[cell.row]
        if any(char.isdigit() for other in own for char in other.text):
            return False
        if first.box.y0 - cell.box.y1 > 1.5 * self.line_height:
            return False
        under = self.rows[first.row]
        if any(is_label(other.text) for other in under):
            return False
        pairs = [
            (id(high), id(low))
            for high in own
            for low in under
            if _shares_column(high.box, low.box, self.line_height)
        ]
        if min(len({high for high, _ in pairs}), len({low for _, low in pairs})) < 3:
            return False
        if any(char.isdigit() for char in first.text):
            return True
        texts = [other.text.strip() for other in under]
        nxt = self.below(first, gap=1.0)
        return texts.count(first.text.strip()) > 1 or (
            nxt is not None and nxt.text.strip() == first.text.strip()
        )

    def column(self, cell: Cell, first: Cell) -> list[Cell]:
        """The cells of the column a header heads, after `first` (the cell under it): the
        cells beside `first` that are still under the header, then the cells below, each
        close under the last, sharing its column, up to a label or a line running across
        the columns."""
        out = [
            other
            for other in self.rows[first.row]
            if other.box.x0 >= first.box.x1 and other.box.x1 <= cell.box.x1 + 0.5 * self.line_height
        ]
        current = first
        while current.row + 1 < len(self.rows):
            nxt = next(
                (
                    other
                    for other in self.rows[current.row + 1]
                    if _shares_column(current.box, other.box, self.line_height)
                ),
                None,
            )
            if (
                nxt is None
                or nxt.box.y0 - current.box.y1 > self.line_height
                or is_label(nxt.text)
                or nxt.box.width > 2 * max(cell.box.width, first.box.width)  # a line across
            ):
                break
            out.append(nxt)
            current = nxt
        return out

    def continuation(self, cell: Cell, starts: tuple[int, ...]) -> Cell | None:
        """The next line of a value that runs on below `cell`: close under it, starting where
        the value or its line starts (`starts`), nothing to its left on its row."""
        if cell.row + 1 >= len(self.rows):
            return None
        for other in self.rows[cell.row + 1]:
            if other.box.y0 - cell.box.y1 > 0.9 * self.line_height:
                continue
            if not any(
                -INDENT * self.line_height <= other.box.x0 - x <= 1.5 * self.line_height
                for x in starts
            ):
                continue  # not where the value starts, or left of it by a paragraph's indent
            if any(
                left.box.x1 <= other.box.x0 for left in self.rows[other.row] if left is not other
            ):
                continue
            return other
        return None


#: A paragraph's first line may be indented by up to this many line heights (two Chinese
#: characters), so the line it runs on to starts that much further left.
INDENT = 2.5
#: A cell off a key's row lies beside it when they share this much of the shorter one's
#: height; it then counts as this many line heights further right than it is.
LEVEL, OFF_LEVEL = 0.35, 2.0


def _shared_height(a: BBox, b: BBox) -> float:
    """How much of the shorter box's height the two share (0–1)."""
    return overlap(a.y0, a.y1, b.y0, b.y1) / max(1, min(a.height, b.height))


def _shares_column(upper: BBox, lower: BBox, height: float) -> bool:
    shared = overlap(upper.x0, upper.x1, lower.x0, lower.x1)
    narrower = max(1, min(upper.width, lower.width))
    return shared >= 0.3 * narrower or abs(upper.x0 - lower.x0) <= height


def line_key(hit: SearchHit, region: HitRegion, line: HitLine) -> tuple[str, int, BBox, str]:
    """One OCR line, however many chunks (or overlapping regions) repeat it."""
    return (hit.doc_id, region.page, line.bbox, line.text)


def sheets(hits: list[SearchHit]) -> list[Sheet]:
    """One sheet per (document, page) among the hits, in order of the best hit's rank.

    A line is taken once even when several chunks repeat it (a table's header row). Cells
    are in page order, so how the store orders tied hits changes nothing.
    """
    cells: dict[tuple[str, int], list[Cell]] = {}
    seen: set[tuple[str, int, BBox, str]] = set()
    scores = sorted({hit.score for hit in hits}, reverse=True)
    for hit in hits:
        rank = scores.index(hit.score)  # hits that tie share a rank: the store orders ties
        for region in hit.regions:
            for line in region.lines:
                key = line_key(hit, region, line)
                if key in seen or not line.text.strip():
                    continue
                seen.add(key)
                cells.setdefault((hit.doc_id, region.page), []).append(
                    Cell(line=line, region=region, hit=hit, rank=rank)
                )
    out = []
    for (doc_id, page), page_cells in cells.items():
        page_cells.sort(key=lambda cell: (cell.box.y0, cell.box.x0, cell.text))
        grouped = rows(page_cells, box=lambda cell: cell.box, grow=False)
        for number, row in enumerate(grouped):
            for cell in row:
                cell.row = number
        height = max(1.0, statistics.median(cell.box.height for cell in page_cells))
        out.append(Sheet(doc_id, page, page_cells, grouped, height))
    return out


#: A key a narrow box wrapped ("出生 / 年月") has short lines (Latin widths); such a key's
#: lines stop a value read along its row. Lines wider than `KEY_WIDTH` are not a key's.
STACKED_WIDTH, KEY_WIDTH = 12, 48
#: A key runs over at most this many lines ("身体状 / 况及以 / 往病史").
STACKED_LINES = 3


def _stacked(sheet: Sheet) -> list[Cell]:
    """Lines written tightly one above the other in one column, joined into one cell (two or
    three lines): a key that its box wrapped ("出生 / 年月", "Perforation Type / and No. of
    lines"). Only lines without digits and not wider than a key. Used to find keys, never
    cited."""
    pool = sorted(
        (
            cell
            for cell in sheet.cells
            if text_width(cell.text) <= KEY_WIDTH and not any(c.isdigit() for c in cell.text)
        ),
        key=lambda cell: cell.box.y0,
    )
    tops = [cell.box.y0 for cell in pool]

    def under(upper: Cell) -> list[Cell]:
        low = bisect.bisect_left(tops, upper.box.y1 - 0.5 * sheet.line_height)
        high = bisect.bisect_right(tops, upper.box.y1 + 0.4 * sheet.line_height)
        return [
            lower
            for lower in pool[low:high]
            if lower is not upper
            and overlap(upper.box.x0, upper.box.x1, lower.box.x0, lower.box.x1)
            >= 0.6 * max(1, min(upper.box.width, lower.box.width))
        ]

    out = []
    chains: list[tuple[Cell, ...]] = [(cell,) for cell in pool]
    for _ in range(STACKED_LINES - 1):
        chains = [(*chain, lower) for chain in chains for lower in under(chain[-1])]
        out += [_joined(chain) for chain in chains]
    return out


#: A key spread over a row has pieces of one or two Chinese characters, this many line
#: heights apart at most, and at most this many pieces.
SPACED_GAP, SPACED_PARTS = 4.0, 4


def _spaced(sheet: Sheet) -> list[Cell]:
    """Cells of one or two Chinese characters joined with the cells after them on the row:
    a key whose characters the form spreads over its box ("姓　　名"). Found as keys only."""
    out = []
    for row in sheet.rows:
        for index, first in enumerate(row):
            chain = [first]
            for after in row[index + 1 : index + SPACED_PARTS]:
                last = chain[-1]
                if not (0 < len(last.norm) <= 2 and all(_is_cjk(char) for char in last.norm)):
                    break
                if after.box.x0 - last.box.x1 > SPACED_GAP * sheet.line_height:
                    break
                chain.append(after)
                out.append(_joined(tuple(chain)))
    return out


def _joined(parts: tuple[Cell, ...]) -> Cell:
    """One cell of several lines' texts, joined by spaces, for finding a key written over
    them; its spans map back onto the lines with `_on_parts`."""
    first, last = parts[0], parts[-1]
    line = HitLine(
        text=" ".join(part.text for part in parts),
        bbox=union_all([part.box for part in parts]),
        start=first.line.start,
        end=last.line.end,
    )
    origin, offset = [], 0
    for part in parts:
        origin += [offset + index for index in part.origin]
        offset += len(part.text) + 1
    norm = "".join(part.norm for part in parts)
    return Cell(line, first.region, first.hit, first.rank, norm, origin, first.row, parts)


def _row_pairs(row: list[Cell]) -> str:
    """A row as text: its cells left to right, " | " between them, a label and its value
    ("Total due: $2,448.50") joined by a space."""
    out = ""
    for cell in row:
        text = cell.text.strip()
        if out:
            out += " " if looks_like_key(out) else " | "
        out += text
    return out


def region_rows(pages: list[Sheet]) -> dict[str, str]:
    """For each region, the rows its lines are on, whole (with the cells of the regions
    beside it): a key in one region and its value in the next are read as one pair."""
    out: dict[str, list[str]] = {}
    for sheet in pages:
        for row in sheet.rows:
            text = _row_pairs(row)
            for region_id in dict.fromkeys(cell.region.region_id for cell in row):
                out.setdefault(region_id, []).append(text)
    return {region_id: "\n".join(texts) for region_id, texts in out.items()}


# --- character positions → boxes -------------------------------------------------------

_NARROW = set(".,:;'`!|il1Ijft()[]{}\"-")


def char_width(char: str) -> float:
    """Relative width of a character in print: CJK and full-width ones are wide, narrow
    punctuation is narrow. Cuts a line's box at character positions."""
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return 1.0
    if char.isspace():
        return 0.3
    if char in _NARROW:
        return 0.3
    if char.isupper() or char.isdigit() or char in "mwMW@%&#":
        return 0.62
    return 0.52


def text_width(text: str) -> float:
    """Width of a text in Latin characters (a CJK character counts two)."""
    return sum(2.0 if unicodedata.east_asian_width(char) in ("W", "F") else 1.0 for char in text)


def span_box(text: str, box: BBox, start: int, end: int) -> BBox:
    """The part of a line's box that holds text[start:end], by relative character widths."""
    if start <= 0 and end >= len(text):
        return box
    widths = [char_width(char) for char in text]
    total = sum(widths) or 1.0
    left = sum(widths[:start]) / total
    right = sum(widths[:end]) / total
    return BBox.enclosing(
        box.x0 + left * box.width, box.y0, box.x0 + right * box.width, box.y1
    ).clip(box.x1, box.y1)


# --- keys ----------------------------------------------------------------------------------


@dataclass
class KeyHit:
    """Where a field name was found: characters [start, end) of a cell."""

    cell: Cell
    start: int
    end: int
    similarity: float
    colon: bool  # a colon follows the key
    whole: bool  # the key is (nearly) the whole cell
    leading: bool  # the key starts the cell

    @property
    def keylike(self) -> float:
        """How much the place looks like a form's key: a colon, a cell of its own, a start."""
        return 0.1 * self.colon + 0.06 * self.whole + 0.04 * self.leading


def _boundary(cell: Cell, position: int) -> bool:
    """True when a normalised position starts or ends a word of the cell's text."""
    if position <= 0 or position >= len(cell.norm):
        return True
    before, after = cell.norm[position - 1], cell.norm[position]
    if cell.origin[position] - cell.origin[position - 1] > 1:
        return True  # a space or punctuation lies between
    if _is_cjk(before) or _is_cjk(after):
        return True
    text, origin = cell.text, cell.origin
    if text[origin[position - 1]].islower() and text[origin[position]].isupper():
        return True  # OCR lost the space of "Received byMark Ahearn"
    return before.isdigit() != after.isdigit()


def _is_cjk(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff"


def find_key(sheet: Sheet, name: str) -> list[KeyHit]:
    """Every cell position that reads as the field name, best first."""
    wanted = normal(name)
    if not wanted:
        return []
    out: list[KeyHit] = []
    for cell in [*sheet.cells, *sheet.stacks, *sheet.spaced]:
        if not cell.norm:
            continue
        first = len(cell.parts[0].norm) if cell.parts else len(cell.norm)
        last = len(cell.norm) - len(cell.parts[-1].norm) if cell.parts else 0
        for start, end, similarity in _occurrences(cell, wanted):
            if start < first and end > last:  # a joined key must use all its lines
                out.append(_key_hit(cell, start, end, similarity, name))
    out.sort(key=lambda hit: -(hit.similarity + hit.keylike))
    return out


def find_key_in(cell: Cell, name: str) -> bool:
    """True when the cell holds the field name as words of its own."""
    wanted = normal(name)
    return bool(wanted and cell.norm and _occurrences(cell, wanted))


def _occurrences(cell: Cell, wanted: str) -> list[tuple[int, int, float]]:
    """(start, end, similarity) in the cell's normalised text, at word boundaries."""
    norm = cell.norm
    out = []
    position = norm.find(wanted)
    while position >= 0:
        end = position + len(wanted)
        if _boundary(cell, position) and _boundary(cell, end):
            out.append((position, end, 1.0))
        position = norm.find(wanted, position + 1)
    if out or len(wanted) <= SHORT_KEY:
        return out
    if len(norm) <= len(wanted) + 2:  # the cell is the key, give or take an OCR slip
        similarity = Levenshtein.normalized_similarity(wanted, norm)
        if similarity >= KEY_MATCH:
            return [(0, len(norm), similarity)]
    alignment = fuzz.partial_ratio_alignment(wanted, norm, score_cutoff=KEY_MATCH * 100)
    if alignment is None or alignment.dest_end - alignment.dest_start < 0.7 * len(wanted):
        return []
    start, end = alignment.dest_start, alignment.dest_end
    while start > 0 and not _boundary(cell, start):
        start -= 1
    while end < len(norm) and not _boundary(cell, end):
        end += 1
    similarity = Levenshtein.normalized_similarity(wanted, norm[start:end])
    return [(start, end, similarity)] if similarity >= KEY_MATCH else []


def _key_hit(cell: Cell, start: int, end: int, similarity: float, name: str) -> KeyHit:
    text = cell.text
    first = cell.origin[start]
    last = cell.origin[end - 1] + 1
    marks = ")）]】." + "".join(char for char in name.rstrip()[-1:] if not char.isalnum())
    while last < len(text) and text[last] in marks:
        last += 1  # "Supplier(s)", "No." end with their marks
    mark = re.match(r"\s+([#№*])", text[last:])
    if mark and name.rstrip().endswith(mark.group(1)):
        last += mark.end()  # "Project #"
    rest = text[last:]
    colon = bool(re.match(r"\s*[)）.#]*\s*[:：]", rest))
    tail = re.sub(r"^[\s:：.)）#*]+", "", rest)
    head = re.sub(r"[\s*★☆▽▼△■□●•◆※#(（]+$", "", text[:first])
    return KeyHit(
        cell=cell,
        start=first,
        end=last,
        similarity=similarity,
        colon=colon,
        whole=not tail and not head,
        leading=not head,
    )


_COLON = re.compile(r"[:：]")
#: Words that end a form's key ("Phone Number:", "Date of Birth:"), so the word before belongs too.
_KEY_TAIL = frozenset(
    "number no no. num name date time code type address amount id # ext ext. of by to no.:".split()
)


#: Characters that follow a number as its unit ("666号", "30元", "3楼"), so never start a key.
_COUNTERS = frozenset("号室楼层栋幢元角分年月日时个件次人岁天周")


def key_start(text: str, colon: int) -> int:
    """Where the key that ends at `text[colon]` (a colon) starts.

    An all-capital key may be several words ("PHONE NUMBER:"); otherwise the key is the
    last word, with the words before it when it is a usual key ending ("Phone Number:",
    "Date of Birth:"); a Chinese key is the run of Chinese characters before the colon, less
    a unit right after a number ("…666号邮编：" → 邮编).
    """
    before = text[:colon].rstrip()
    if not before:
        return 0
    if _is_cjk(before[-1]):
        position = len(before)
        while position > 0 and (_is_cjk(before[position - 1]) or before[position - 1] in "()（）/"):
            position -= 1
        while position > 0 and before[position - 1] in "*★☆▽▼△#":
            position -= 1
        digit = 0 < position < len(before) - 2 and before[position - 1].isdigit()
        if digit and before[position] in _COUNTERS:
            position += 1  # "…路666号邮编：": 号 counts the number, 邮编 is the key
        return position
    words = list(re.finditer(r"\S+", before))
    if not words:
        return 0
    glued = re.search(r"\d([^\W\d_][^\d]*)$", words[-1].group())
    if glued:  # "1993DEPARTMENT:" — a value and the next key read as one word
        return words[-1].start() + glued.start(1)
    chosen = [words[-1]]
    caps = words[-1].group().isupper()
    for word in reversed(words[:-1]):
        token = word.group()
        sentence = (
            token.endswith(".") and token[:-1].isalpha() and token[:-1].islower()
        ) and token not in _KEY_TAIL
        if len(chosen) >= 4 or any(char.isdigit() for char in token) or token.endswith(","):
            break
        if sentence:
            break  # "…product samples. (Note:": the sentence before is no part of the key
        if caps and token.isupper() and any(char.isalpha() for char in token):
            chosen.append(word)
            continue
        last = chosen[-1].group().lower().strip("():")
        if not caps and (last in _KEY_TAIL or token.islower()) and token[:1].isalpha():
            chosen.append(word)
            continue
        break
    return chosen[-1].start()


def next_key(text: str, start: int) -> int:
    """Where the next "Key:" at or after `start` begins in a line (len(text) when none does).

    A colon between digits is a time (13:14:55), and one before "//" a URL, not a key.
    """
    for match in _COLON.finditer(text, start):
        colon = match.start()
        if 0 < colon < len(text) - 1 and text[colon - 1].isdigit() and text[colon + 1].isdigit():
            continue
        if text[colon + 1 : colon + 3] == "//":
            continue
        begin = key_start(text, colon)
        if begin >= start and text[begin:colon].strip():
            return begin
    return len(text)


def looks_like_key(text: str) -> bool:
    """A cell that is a form's label: it ends with a colon."""
    return bool(re.search(r"[:：]\s*$", text.strip()))


#: Words that end a form's field names, so a cell ending with one is a label, not a value:
#: "Approved by" beside "Submitted by" is the next column's header, its value is below.
LABEL_TAILS = frozenset(
    "name names date number no no. phone tel telephone fax address type code amount cost "
    "price total title by id email e-mail company department time sex age signature".split()
)
LABEL_TAILS_ZH = (
    "名称 姓名 电话 手机 地址 日期 时间 号码 证号 类型 方式 关系 单位 代码 金额 邮箱 职务 性别 "
    "年龄 民族 籍贯 面貌 学历 学位 专业 职业 邮编 传真 签字 签名 备注 等级 部门"
).split()


#: A line that starts with a required field's mark ("*电话", "* Name") starts the next field.
_REQUIRED = re.compile(r"\s*[*＊※]\s*[^\W\d_]")


def is_label(text: str) -> bool:
    """A cell that reads as a field name: it ends with a colon, or with a usual field
    name's last word ("Phone No", "Approved by", "联系电话"), and holds no digits but an
    index at its end ("地址1", "Address 2")."""
    text = text.strip()
    if looks_like_key(text):
        return True
    text = re.sub(r"(?<=\D)\s?\d$", "", text)
    if any(char.isdigit() for char in text) or text_width(text) > 30:
        return False
    words = re.findall(r"[a-z][a-z.&/-]*", text.lower())
    if words and words[-1].strip(".") in LABEL_TAILS:
        return True
    return text.endswith(tuple(LABEL_TAILS_ZH))


# --- values --------------------------------------------------------------------------------


@dataclass
class Value:
    """A value read next to a key: its spans, and how it was found."""

    spans: list[Span]
    where: str  # "inline" | "right" | "below" | "column" (all the cells under a header)

    @property
    def text(self) -> str:
        return " ".join(span.text.strip() for span in self.spans).strip()


#: The marks before a value ("Total: = 12"); a point before a digit is a decimal (".08").
_LEADING = re.compile(r"^(?:[\s:：=_|>)）\-–—]|\.(?!\d))*")


def _trim(cell: Cell, start: int, end: int, marks: str = " \t") -> Span | None:
    """Characters [start, end) of a cell without the marks before a value, and without
    `marks` at its end (by default only spaces: a comma at the end of a line the value runs
    on from belongs to the value)."""
    text = cell.text
    start += len(_LEADING.match(text[start:end]).group())  # type: ignore[union-attr]
    while end > start and text[end - 1] in marks:
        end -= 1
    return Span(cell, start, end) if end > start else None


def _ended(value: Value) -> Value | None:
    """A value without the commas, semicolons and bars it ends with (spans left empty are
    dropped)."""
    spans = list(value.spans)
    while spans:
        last = spans[-1]
        end = last.start + len(last.text.rstrip(" \t,;|"))
        if end > last.start:
            spans[-1] = Span(last.cell, last.start, end)
            return Value(spans, value.where)
        spans.pop()
    return None


def values(sheet: Sheet, key: KeyHit) -> list[Value]:
    """Value candidates for a key, in the order forms most often place them."""
    out: list[Value] = []
    cell = key.cell
    stop = next_key(cell.text, key.end)
    inline = _trim(cell, key.end, stop)
    if inline is not None:
        spans = _on_parts(inline)
        if stop >= len(cell.text):  # run on from the line the value ends on
            tail = spans[-1].cell
            spans += _along_row(sheet, tail) or _continued(
                sheet, tail, (spans[0].box.x0, tail.box.x0)
            )
        out.append(Value(spans, "inline"))
    below = sheet.below(cell)
    header = below is not None and inline is None and sheet.heads_column(cell, below)
    right = sheet.right_of(cell) if stop >= len(cell.text) and not header else None
    if below is None and right is None and inline is None and key.colon:
        below = sheet.after_colon(cell)
    if right is not None:
        part = _trim(right, 0, next_key(right.text, 0))
        if part is not None:
            more = _along_row(sheet, right) or _continued(sheet, right, (right.box.x0,))
            out.append(Value([part, *more], "right"))
    if below is not None:
        part = _trim(below, 0, next_key(below.text, 0))
        if part is not None:
            if header:
                more = [Span(other, 0, len(other.text)) for other in sheet.column(cell, below)]
                out.append(Value([part, *more], "column"))
            else:  # in a table, the next cell on the row is the next column's value
                more = _along_row(sheet, below, TOUCH_GAP) or _continued(
                    sheet, below, (below.box.x0,)
                )
                out.append(Value([part, *more], "below"))
    return [ended for value in out if (ended := _ended(value)) is not None]


_BASE_UNIT = r"(?:mm|cm|m|km|mg|g|gm|kg|lbs?|oz|ml|l|cc|in|ft|pcs|kw|v|hz|s|h|hrs?)[23]?"
#: A unit, compound ones included ("mg/cc", "gm/m2").
_UNIT = re.compile(
    rf"{_BASE_UNIT}(?:\s?/\s?{_BASE_UNIT})?\.?|%"
    r"|元|万元|亿元|岁|个月|年|月|日|天|人|次|克|千克|公斤|米|厘米|平方米",
    re.I,
)


#: A cell that starts with a unit as a word of its own ("个月（有关证明请附后）" after "8"),
#: not followed by more words ("In Stock:" is the next field).
_UNIT_WORD = re.compile(rf"\s*(?:{_UNIT.pattern})(?!\w)(?!\s*[A-Za-z])", re.I)


def _on_parts(span: Span) -> list[Span]:
    """A span of a joined cell (a key on several lines or spread over its row, and the value
    after it) as spans of the lines it joins, which are what can be cited."""
    if not span.cell.parts:
        return [span]
    whole = [Span(part, 0, len(part.text)) for part in span.cell.parts]
    return spans_of(whole, span.start, span.end)


def spans_of(pieces: list[Span], start: int, end: int) -> list[Span]:
    """Characters [start, end) of the pieces' texts joined by single spaces, as spans of the
    pieces."""
    out, offset = [], 0
    for piece in pieces:
        low, high = max(start, offset), min(end, offset + len(piece.text))
        if high > low:
            out.append(Span(piece.cell, piece.start + low - offset, piece.start + high - offset))
        offset += len(piece.text) + 1
    return out


#: How far the rest of a value may lie along its row, in line heights: a unit after its
#: number ("2700 | m"), a piece that touches it ("2026年7 | 月13日"), any other piece ("33 |
#: (42)", the same field's value in a second column).
UNIT_GAP, TOUCH_GAP, PIECE_GAP = 5.0, 0.4, 4.0


def _along_row(sheet: Sheet, cell: Cell, reach: float = PIECE_GAP) -> list[Span]:
    """The rest of a value that OCR read as cells of their own on the same row, up to a
    label, a key written on two lines, words after a number (the next field's name), or a
    gap wider than `reach` line heights; specks of dirt read as a letter are passed over."""
    out: list[Span] = []
    current = edge = cell  # the value's last cell; the last cell passed, specks included
    stacked = sheet.stacked_parts
    numeric = any(char.isdigit() for char in cell.text)
    while True:
        after = sheet.right_of(edge)
        if after is None or after.row != current.row:
            break
        text = after.text.strip()
        small = after.box.height < 0.5 * sheet.line_height and len(after.norm) <= 2
        if small and not any(char.isdigit() for char in text):
            edge = after  # a speck
            continue
        gap = (after.box.x0 - current.box.x1) / sheet.line_height
        if re.search(r"\d\s*$", current.text) and _UNIT_WORD.match(text):
            if gap > UNIT_GAP:
                break
        elif is_label(text) or id(after) in stacked:
            break
        elif gap > reach or (
            numeric
            and not any(char.isdigit() for char in text)
            and (gap > TOUCH_GAP or _UNIT.fullmatch(current.text.strip()))
        ):
            break  # far, or words after a number and its unit: the next field's name
        stop = next_key(after.text, 0)
        if stop == 0:
            break
        part = _trim(after, 0, stop)
        if part is not None:
            out.append(part)
        if stop < len(after.text):
            break
        numeric = numeric or any(char.isdigit() for char in text)
        current = edge = after
    return out


def _continued(sheet: Sheet, cell: Cell, starts: tuple[int, ...], limit: int = 8) -> list[Span]:
    """The lines a value runs on to, each up to the next key on it."""
    out: list[Span] = []
    current = cell
    for _ in range(limit):
        nxt = sheet.continuation(current, starts)
        if nxt is None or is_label(nxt.text) or _REQUIRED.match(nxt.text):
            break
        listed = (  # a list of short items, one under the other ("cc: A / B")
            abs(nxt.box.x0 - current.box.x0) <= 0.5 * sheet.line_height
            and nxt.box.y0 - current.box.y1 <= 0.5 * sheet.line_height
            and text_width(nxt.text) < WRAPPED_WIDTH
        )
        if text_width(current.text) < WRAPPED_WIDTH and not listed:
            break  # a short line ends its value: only a full line wraps, or a list goes on
        stop = next_key(nxt.text, 0)
        part = _trim(nxt, 0, stop)
        if part is None:
            break  # the line starts with another key
        out.append(part)
        if stop < len(nxt.text):
            break  # another key starts on that line
        current = nxt
    return out
