"""Reading an answer off a page's key–value structure: the value next to the field a question
names, the total of a receipt, the date nobody labelled, the company at the top.

`fields` finds keys and the values around them; here candidates are scored (how well the key
matched and looks like a key, where the value sits, whether it is the kind of value asked
for, which document the question names) and the best one becomes a `Found`: the answer's
text and the character spans of the page it cites.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import groupby

from . import fields, values
from .fields import Span
from .questions import Query, normal


@dataclass
class Found:
    """What the extractive answerer settled on: the answer's text and the spans it cites."""

    text: str
    spans: list[Span]
    score: float


#: A field answer needs at least this score: the name found (similarity ≥ KEY_MATCH) and a
#: value beside it.
FIELD_MIN = 0.8
#: Kinds whose pattern is strict enough to cut a value to, and to count against a value that
#: lacks it.
STRICT_KINDS = frozenset({"date", "money", "phone", "email", "percent"})
#: The words around "total" that make it some other total (of items, of tax, before discount).
_OTHER_TOTAL = re.compile(
    r"sub[\s-]*total|total\s*(?:qty|quantity|items?|pcs|discount|savings?|tax|gst|vat|excl"
    r"|before|weight|points?|count|no\b|number|units?)|(?:qty|quantity|items?|tax|gst)\s*total"
    r"|\(?\s*excl(?:uding|usive|uded|\.)?\b|小计|税额|税率|数量|折扣|件数",
    re.I,
)
_COMPANY = re.compile(
    r"\b(?:sdn\.?\s*bhd|bhd|berhad|ltd|limited|inc|incorporated|corp|corporation|co\.|company|llc"
    r"|plc|gmbh|s\.?a\.?|pte|pty|enterprise|trading|holdings?|restaurant|cafe|bakery|mart"
    r"|store|shop|supermarket|pharmacy)\b|有限公司|公司|商店|超市|商行|餐厅|饭店|药房|便利店",
    re.I,
)
_NOT_NAME = re.compile(
    r"\b(?:receipt|invoice|tax|gst|tel|fax|phone|welcome|thank|date|time|cashier|table|order"
    r"|bill|no\.?|reg|www|http|email)\b|发票|收据|小票|电话|日期|欢迎",
    re.I,
)
#: A company registration number printed after the name: "(126926-H)", "Co. Reg. 1234".
_REGISTRATION = re.compile(
    r"\s*(?:\((?=[^)]*\d)[^)]*\)?|\b(?:co\.?\s*)?reg(?:istration)?\b.*)$", re.I
)


def field_answers(
    query: Query, pages: list[fields.Sheet], doc_scores: dict[str, float]
) -> list[Found]:
    """Values read beside the field names the question asks for, best first."""
    out: list[Found] = []
    for sheet in pages:
        for number, name in enumerate(query.names):
            weight = 1.0 if number == 0 else 0.95
            for key in fields.find_key(sheet, name)[:12]:
                bonus = _total_bonus(sheet, key) if query.total else 0.0
                for value in fields.values(sheet, key):
                    found = _valued(query, key, value)
                    if found is None:
                        continue
                    found.score += key.similarity * weight + key.keylike + bonus
                    found.score += doc_scores.get(sheet.doc_id, 0.0) - 0.01 * key.cell.rank
                    out.append(found)
    out.sort(key=lambda found: (-found.score, *found.spans[0].cell.box[1::-1]))
    return out


def _total_bonus(sheet: fields.Sheet, key: fields.KeyHit) -> float:
    """For "the total": not a subtotal, a count or a tax (−0.3); not a row of a tax summary
    table holding several amounts (−0.3); and the lower on the page the better (the total
    after rounding comes last)."""
    row = sheet.row_of(key.cell)
    amounts = sum(
        len(values.spans("money", cell.text)) for cell in row if cell.box.x0 >= key.cell.box.x0
    )
    bottom = max(cell.box.y1 for cell in sheet.cells) or 1
    return (
        -0.3 * bool(_OTHER_TOTAL.search(key.cell.text))
        - 0.3 * (amounts > 1)
        + 0.1 * key.cell.box.y0 / bottom
    )


_WHERE_BONUS = {"inline": 0.08, "right": 0.06, "below": 0.02, "column": 0.02}


def _valued(query: Query, key: fields.KeyHit, value: fields.Value) -> Found | None:
    """A value as an answer, cut to the kind of value asked for where the kind is strict."""
    spans = value.spans
    score = _WHERE_BONUS[value.where]
    if fields.looks_like_key(value.text) or (
        value.where != "inline" and fields.is_label(value.text)
    ):
        score -= 0.3
    if query.kind:
        typed = typed_spans(query.kind, spans)
        if typed:
            score += 0.15
            if query.kind in STRICT_KINDS:  # a column's values all answer, else the first
                column = value.where == "column"
                spans = [part for found in typed for part in found] if column else typed[0]
        elif query.kind in STRICT_KINDS:
            score -= 0.3
        else:
            score -= 0.05
    text = " ".join(span.text.strip() for span in spans).strip()
    if not text or normal(text) == normal(key.cell.text[key.start : key.end]):
        return None
    return Found(text=text, spans=spans, score=score)


def typed_spans(kind: str, spans: list[Span]) -> list[list[Span]]:
    """The values of a kind in a value read as several spans, each as the spans it covers.
    The pieces of one row are read together (a date OCR split, "2020 年 6 月8" | "日"); rows
    one by one (the numbers of a column are no phone number)."""
    runs = [list(run) for _, run in groupby(spans, key=lambda span: span.cell.row)]
    return [
        fields.spans_of(run, a, b)
        for run in runs
        for a, b in values.spans(kind, " ".join(span.text for span in run))
    ]


def typed_answer(
    query: Query, pages: list[fields.Sheet], doc_scores: dict[str, float]
) -> Found | None:
    """A value of the strict kind asked for, when no key names it (a receipt's bare date):
    the first one on the page, preferring a line that holds one of the names."""
    best: Found | None = None
    for sheet in pages:
        for cell in sorted(sheet.cells, key=lambda c: (c.rank, c.box.y0, c.box.x0)):
            found = values.spans(query.kind or "", cell.text)
            if not found:
                continue
            named = any(fields.find_key_in(cell, name) for name in query.names)
            score = 0.6 + 0.1 * named + doc_scores.get(sheet.doc_id, 0.0) - 0.01 * cell.rank
            if best is None or score > best.score:
                start, end = found[0]
                best = Found(cell.text[start:end], [fields.Span(cell, start, end)], score)
    return best


def issuer(pages: list[fields.Sheet]) -> Found | None:
    """The issuing company: the name printed at the top of the first page (a line in its
    top two fifths that reads as a name; a company's suffix such as "SDN BHD" or 有限公司
    counts for much, capitals for some)."""
    first = [sheet for sheet in pages if sheet.page == 1] or pages
    best: tuple[float, fields.Span] | None = None
    for sheet in first:
        top = min(cell.box.y0 for cell in sheet.cells)
        bottom = max(cell.box.y1 for cell in sheet.cells)
        for cell in sheet.cells:
            registration = _REGISTRATION.search(cell.text)
            end = registration.start() if registration and registration.start() > 0 else None
            name = cell.text[:end].strip()
            letters = sum(char.isalpha() for char in name)
            if letters < 3 or letters < 0.6 * len(name.replace(" ", "")):
                continue
            company = bool(_COMPANY.search(name))
            if _NOT_NAME.search(name) and not company:
                continue
            height = (cell.box.y0 - top) / max(1, bottom - top)
            if height > 0.4:
                continue
            score = 1.0 - height + 0.5 * company + 0.2 * name.isupper()
            if best is None or score > best[0]:
                best = (score, fields.Span(cell, 0, end or len(cell.text)))
    if best is None:
        return None
    return Found(best[1].text.strip(), [best[1]], best[0])
