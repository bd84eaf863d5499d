"""Answers with citations: an offline extractive answerer and an OpenAI-compatible LLM/VLM one.

Both return the same `Answer`: the text with `[n]` markers and numbered citations that point
at page regions (and, for the extractive answerer, at the exact lines). Neither invents a
citation: a marker that does not resolve is dropped, and when the evidence does not hold the
answer the service says so, with no citations.
"""

from __future__ import annotations

import base64
import io
import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image
from pydantic import BaseModel, Field

from ..config import Settings
from ..errors import ModelServerError
from ..ingest.layout import rows
from ..ingest.model import BBox
from . import extract, fields, values
from .embedding import terms
from .extract import Found
from .fields import Span
from .questions import QUESTION_TYPES, Query, expected_kind, understand
from .results import HitLine, HitRegion, SearchHit

log = logging.getLogger(__name__)

NOT_FOUND = {"en": "The documents do not say.", "zh": "文档中没有找到答案。"}


# --- response models --------------------------------------------------------------------


class CitedLine(BaseModel):
    text: str
    bbox: BBox


class Citation(BaseModel):
    n: int
    doc_id: str
    source: str
    page: int
    region_id: str
    label: str
    bbox: BBox = Field(description="Region box: page-image pixels, origin top-left.")
    bbox_norm: BBox = Field(description="Region box as integers 0–1000.")
    page_width: int
    page_height: int
    text: str
    score: float
    lines: list[CitedLine] = Field(default_factory=list, description="The lines that answer.")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="The document's metadata (given at upload or ingest)."
    )


class Answer(BaseModel):
    answer: str
    citations: list[Citation] = Field(default_factory=list)


def cite(
    n: int, hit: SearchHit, region: HitRegion, lines: Sequence[HitLine | CitedLine] = ()
) -> Citation:
    """A numbered citation of one region of a search hit (by ids: links are the API's)."""
    text = hit.text[region.start : region.end]
    return Citation(
        n=n,
        doc_id=hit.doc_id,
        source=hit.source,
        page=region.page,
        region_id=region.region_id,
        label=region.label,
        bbox=region.bbox,
        bbox_norm=region.bbox_norm,
        page_width=region.page_width,
        page_height=region.page_height,
        text=text,
        score=round(hit.score, 4),
        lines=[CitedLine(text=line.text, bbox=line.bbox) for line in lines],
        metadata=hit.metadata,
    )


def language(text: str) -> str:
    """'zh' when the text holds CJK characters, else 'en': how answers and scores are split."""
    return "zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"


class Answerer(Protocol):
    def answer(self, question: str, hits: list[SearchHit]) -> Answer: ...

    def stream(self, question: str, hits: list[SearchHit]) -> Iterator[dict[str, Any]]:
        """Events: {"citations": [...]}, then {"token": str}..., then {"done": Answer}."""


# --- extractive -------------------------------------------------------------------------

#: Question words that appear in answers under another name ("Who wrote" → "From:").
SYNONYMS: dict[str, tuple[str, ...]] = {
    "wrote": ("from", "author", "by"),
    "written": ("from", "author", "by"),
    "author": ("from", "by"),
    "sender": ("from",),
    "recipient": ("to",),
    "cost": ("price", "amount", "total"),
    "price": ("amount", "cost"),
    "paid": ("total", "amount"),
}
#: Words of Chinese questions that say nothing about the answer.
QUESTION_STOP = frozenset(
    "的 是 多 少 多少 什 么 什么 哪 哪里 里 谁 几 吗 呢 请 问 请问 要 求 要求".split()
)


@dataclass
class _Unit:
    """A candidate answer: a row (a key and its value) or a sentence, with its lines."""

    text: str
    lines: list[HitLine]
    regions: list[HitRegion]
    hit: SearchHit
    rank: int
    sentence: tuple[int, int] | None = None  # its span in the hit text (else a row)
    terms: set[str] = field(default_factory=set)


def _units(hit: SearchHit, rank: int) -> list[_Unit]:
    """Rows rebuilt from line geometry across the hit's regions, and sentences per region.

    Titles are context, not answers: they never form a unit.
    """
    units: list[_Unit] = []
    by_page: dict[int, list[tuple[HitLine, HitRegion]]] = {}
    for region in hit.regions:
        for line in region.lines:
            by_page.setdefault(region.page, []).append((line, region))
    for pairs in by_page.values():
        pairs = [(line, region) for line, region in pairs if region.label != "title"]
        region_of = {id(line): region for line, region in pairs}
        for row in rows([line for line, _ in pairs], box=lambda line: line.bbox):
            regions = list({id(region_of[id(line)]): region_of[id(line)] for line in row}.values())
            joiner = " | " if any(region.label == "table" for region in regions) else " "
            units.append(_Unit(joiner.join(line.text for line in row), row, regions, hit, rank))
    for region in hit.regions:
        if region.label in ("table", "title"):
            continue
        text = hit.text[region.start : region.end].replace("\n", " ")
        for match in _SENTENCE.finditer(text):
            sentence = match.group().strip()
            start, end = region.start + match.start(), region.start + match.end()
            lines = [line for line in region.lines if line.start < end and line.end > start]
            if len(lines) > 1:  # a sentence on one line is a row already
                units.append(_Unit(sentence, lines, [region], hit, rank, (start, end)))
    return units


#: A sentence ends at . ! ? before a space (not inside "$7,709,959.28") or at 。！？；
_SENTENCE = re.compile(r"\S.*?(?:[.!?](?=\s|$)|[。！？；])")


#: Synonyms that are search stopwords ("from", "by", "to") and so never among `terms()`.
_SYNONYM_WORDS = frozenset(word for words in SYNONYMS.values() for word in words)


def _unit_terms(text: str) -> set[str]:
    """The unit's terms, plus the synonym words it holds that `terms()` drops as stopwords."""
    words = set(re.findall(r"[^\W_]+", text.lower()))
    return set(terms(text)) | (words & _SYNONYM_WORDS)


def _question_terms(question: str) -> set[str]:
    out = {term for term in terms(question) if term not in QUESTION_STOP}
    for term in list(out):
        out.update(SYNONYMS.get(term, ()))
    return out


#: "in report R62975", "on invoice INV-1001", "for form APP-96452": the phrase names the
#: document the question is about, not the row or sentence that answers it.
_DOCUMENT_REFERENCE = re.compile(
    r"\b(?:in|on|of|for|from|about)\s+(?:the\s+|this\s+)?(?:report|invoice|form|notice|memo"
    r"|receipt|letter|contract|document|statement|order|application|claim|bill|quotation"
    r"|policy)\s+(?:no\.?\s*|number\s+|#\s*)?[\w-]*\d[\w-]*",
    re.I,
)


def _reference_terms(question: str) -> set[str]:
    """The terms of the question's document reference: they pick the document (through
    the document's score), never the unit within it, where a title naming the document
    would otherwise answer every question about it."""
    return {t for match in _DOCUMENT_REFERENCE.finditer(question) for t in terms(match.group())}


def _cue_terms(question: str, kind: str | None) -> set[str]:
    """The question's words that name the kind of value asked for ("date", "phone", "total").

    The value pattern already rewards a unit for holding such a value; counting these words
    in full as well lets a key that merely names the kind ("Date of issue") beat the key the
    question is about ("Payment due" for "the due date").
    """
    pattern = dict(QUESTION_TYPES).get(kind or "")
    if pattern is None:
        return set()
    return {t for match in pattern.finditer(question) for t in terms(match.group())}


def _fresh_values(kind: str, text: str, question: str) -> list[tuple[int, int]]:
    """Spans of values of the kind in the text that the question does not already hold."""
    question = question.lower()
    return [
        (start, end)
        for start, end in values.spans(kind, text)
        if text[start:end].strip(" :：").lower() not in question
    ]


#: Numbers in a question name the document or the row ("INV-17684", "第31909号", "Fuse 10A").
#: A Chinese question splits into dozens of character and bigram terms, which would drown
#: them: the notice's number counted less than the retrieval rank of a sibling notice.
NUMBER_WEIGHT = 3.0


def _citations(found: Found) -> list[Citation]:
    """One citation per region the answer's spans lie in; its lines are exactly the spans,
    pieces of one printed line that OCR read apart ("749" | "mg") given as one line."""
    by_region: dict[str, list[Span]] = {}
    for span in found.spans:
        by_region.setdefault(span.cell.region.region_id, []).append(span)
    return [
        cite(n, spans[0].cell.hit, spans[0].cell.region, _printed_lines(spans))
        for n, spans in enumerate(by_region.values(), start=1)
    ]


def _printed_lines(spans: list[Span]) -> list[CitedLine]:
    """Consecutive spans on one row joined into one line: their texts, the box around them."""
    out: list[CitedLine] = []
    row: int | None = None
    for span in spans:
        if out and span.cell.row == row:
            last = out[-1]
            out[-1] = CitedLine(text=f"{last.text} {span.text}", bbox=last.bbox.union(span.box))
        else:
            out.append(CitedLine(text=span.text, bbox=span.box))
        row = span.cell.row
    return out


class ExtractiveAnswerer:
    """Offline: find the value that answers and cite exactly its characters.

    A question that names a field ("What is the value of the field "TO"?", "合计是多少？")
    is answered from the page's key–value structure (`fields`, scored in `extract`): the name
    is found on the page and the value beside or below it is the answer. Other questions
    fall back to the
    row or sentence that best answers: a unit scores by the question terms it shares
    (IDF-weighted over the retrieved text), by the terms its document shares (so "INV-17684"
    picks the right invoice's "Total due" row), and by holding a value of the kind the
    question asks for (an amount, a date, a name...).
    """

    def __init__(self, min_score: float = 0.35) -> None:
        self.min_score = min_score

    def best_units(
        self,
        question: str,
        hits: list[SearchHit],
        doc_terms: dict[str, set[str]] | None = None,
    ) -> list[tuple[float, _Unit]]:
        units = [unit for rank, hit in enumerate(hits) for unit in _units(hit, rank)]
        if not units:
            return []
        for unit in units:
            unit.terms = _unit_terms(unit.text)
        wanted = _question_terms(question)
        doc_terms = doc_terms if doc_terms is not None else _doc_terms(hits)
        idf = {t: math.log(1 + len(units) / (1 + sum(t in u.terms for u in units))) for t in wanted}
        kind = expected_kind(question)
        for t in _cue_terms(question, kind) & wanted:
            idf[t] /= 2  # "date" in "due date" names the kind of value, not which one
        for t in wanted:
            if any(char.isdigit() for char in t):
                idf[t] *= NUMBER_WEIGHT
        total = sum(idf.values()) or 1.0
        about = (wanted - _reference_terms(question)) or wanted  # what the unit must hold
        scored: list[tuple[float, _Unit]] = []
        for unit in units:
            if not unit.terms - wanted:
                continue  # repeats the question (a title, a key without its value)
            if not unit.terms & about:
                continue  # shares nothing with the question: a value of the right kind is no answer
            unit_overlap = sum(idf[t] for t in about & unit.terms) / total
            doc_overlap = sum(idf[t] for t in wanted & doc_terms[unit.hit.doc_id]) / total
            score = 0.55 * unit_overlap + 0.45 * doc_overlap + 0.05 / (1 + unit.rank)
            if kind:
                score += 0.35 if _fresh_values(kind, unit.text, question) else -0.15
            score -= 0.004 * max(0, len(unit.terms) - 30)
            scored.append((round(score, 4), unit))
        scored.sort(key=lambda item: -item[0])
        return scored

    def cite_hit(self, question: str, hit: SearchHit, n: int = 1) -> Citation:
        """The citation, numbered `n`, of the region of one hit that best answers the
        question: the region holding most of the lines of its best row or sentence, with
        those lines (on a tie the later region, which holds the value of a "key: value" row
        read left to right); when nothing in it answers, its first region that is not a
        title."""
        best = self.best_units(question, [hit])
        if not best:
            region = next((r for r in hit.regions if r.label != "title"), hit.regions[0])
            return cite(n, hit, region)
        unit = best[0][1]
        region = max(
            reversed(unit.regions), key=lambda r: sum(line in r.lines for line in unit.lines)
        )
        return cite(n, hit, region, [line for line in unit.lines if line in region.lines])

    def find(self, question: str, hits: list[SearchHit]) -> Found | None:
        """The answer's value and its spans, or None when the hits do not hold it.

        In order: a value read next to the named field; the name at the top for "who issued
        it"; nothing when a quoted field is nowhere on the page; the best row or sentence
        when it holds a value of the kind asked for; a lone value of a strict kind (a
        receipt's unlabelled date); the best row or sentence; the best weak field reading
        (a cited best candidate rather than a refusal)."""
        query = understand(question)
        pages = fields.sheets(hits)
        doc_terms = _doc_terms(hits)
        doc_scores = _doc_scores(question, doc_terms)
        candidates = extract.field_answers(query, pages, doc_scores)
        if candidates and candidates[0].score >= extract.FIELD_MIN:
            return candidates[0]
        if query.issuer:
            found = extract.issuer(pages)
            if found is not None:
                return found
        if query.field and query.quoted and not candidates:
            return None  # the field the question names is nowhere on the page
        scored = self.best_units(question, hits, doc_terms)
        unit = scored[0][1] if scored and scored[0][0] >= self.min_score else None
        if unit is not None and query.kind and _fresh_values(query.kind, unit.text, question):
            return _tight(unit, query, pages)
        if query.kind in extract.STRICT_KINDS and query.field:
            typed = extract.typed_answer(query, pages, doc_scores)
            if typed is not None:
                return typed
        if unit is not None:
            return _tight(unit, query, pages)
        return candidates[0] if candidates else None

    def answer(self, question: str, hits: list[SearchHit]) -> Answer:
        found = self.find(question, hits)
        if found is None:
            return Answer(answer=NOT_FOUND[language(question)], citations=[])
        citations = _citations(found)
        markers = "".join(f"[{c.n}]" for c in citations)
        return Answer(answer=f"{found.text} {markers}", citations=citations)

    def stream(self, question: str, hits: list[SearchHit]) -> Iterator[dict[str, Any]]:
        result = self.answer(question, hits)
        yield {"citations": [c.model_dump() for c in result.citations]}
        for token in re.findall(r"\S+\s*", result.answer):
            yield {"token": token}
        yield {"done": result.model_dump()}


def _doc_terms(hits: list[SearchHit]) -> dict[str, set[str]]:
    """The terms of each document's retrieved text (titles included: they name it)."""
    out: dict[str, set[str]] = {}
    for hit in hits:
        out.setdefault(hit.doc_id, set()).update(terms(hit.text))
    return out


def _doc_scores(question: str, texts: dict[str, set[str]]) -> dict[str, float]:
    """How much of the question (IDF-weighted, numbers counting triple) each document's
    retrieved text (`_doc_terms`) holds: "on invoice INV-55043" picks that invoice's "Total
    due"."""
    wanted = _question_terms(question)
    if len(texts) < 2 or not wanted:
        return dict.fromkeys(texts, 0.0)
    idf = {t: math.log(1 + len(texts) / (1 + sum(t in d for d in texts.values()))) for t in wanted}
    for t in wanted:
        if any(char.isdigit() for char in t):
            idf[t] *= NUMBER_WEIGHT
    total = sum(idf.values()) or 1.0
    return {doc: sum(idf[t] for t in wanted & held) / total for doc, held in texts.items()}


#: A row of more words than this reads as a sentence: it is the answer as a whole.
SENTENCE_WORDS = 8


def _tight(unit: _Unit, query: Query, pages: list[fields.Sheet]) -> Found:
    """A unit as an answer: the value of the kind asked for in a row of cells (a table row
    → its amount), else the whole row, or the sentence cut out of its first and last lines."""
    cells = {
        fields.line_key(cell.hit, cell.region, cell.line): cell
        for sheet in pages
        for cell in sheet.cells
    }
    pairs = [
        (cells[key], line)
        for line in unit.lines
        for region in unit.regions
        if line in region.lines and (key := fields.line_key(unit.hit, region, line)) in cells
    ]
    unit_cells = [cell for cell, _ in pairs]
    if unit.sentence is not None:
        start, end = unit.sentence
        spans = [
            Span(cell, max(start, line.start) - line.start, min(end, line.end) - line.start)
            for cell, line in pairs
        ]
        return Found(unit.text, [span for span in spans if span.end > span.start], 0.5)
    row = len(unit.lines) == len(unit_cells)
    if len(unit_cells) == 1 and len(unit.text.split()) > SENTENCE_WORDS:
        row = False  # one long line: a sentence
    if query.kind in extract.STRICT_KINDS | {"count"} and row:
        for cell in unit_cells:
            found = _fresh_values(query.kind or "", cell.text, query.text)
            if found:
                start, end = found[0]
                return Found(cell.text[start:end], [Span(cell, start, end)], 0.5)
    if row and unit_cells:
        value = _after_key(unit_cells)
        if value:
            return Found(" ".join(span.text for span in value), value, 0.5)
    spans = [Span(cell, 0, len(cell.text)) for cell in unit_cells]
    return Found(unit.text, spans, 0.5)


_LEADING_KEY = re.compile(r"^\s*[^:：]{1,40}?[:：]\s*")


def _after_key(row: list[fields.Cell]) -> list[Span]:
    """The value of a "Key: value" row: the cells after a key cell ("From:" | "Rosa"), or
    the text after the key's colon up to the next key on the line."""
    if len(row) > 1 and fields.looks_like_key(row[0].text):
        return [Span(cell, 0, len(cell.text)) for cell in row[1:]]
    key = _LEADING_KEY.match(row[0].text)
    if len(row) == 1 and key:
        end = fields.next_key(row[0].text, key.end())
        if row[0].text[key.end() : end].strip():
            return [Span(row[0], key.end(), len(row[0].text[:end].rstrip()))]
    return []


def extract_value(
    name: str, hits: list[SearchHit], min_score: float = 0.35
) -> tuple[str | None, list[Citation]]:
    """The value of a named field ("total", "date", "发票号码") from one document's hits."""
    found = ExtractiveAnswerer(min_score).find(name, hits)
    if found is None:
        return None, []
    return found.text, _citations(found)


# --- OpenAI-compatible LLM / VLM --------------------------------------------------------

SYSTEM_PROMPT = (
    "You answer questions about scanned documents using only the numbered evidence. "
    "Cite every statement with the evidence number in square brackets, like [2]. "
    "Quote names, numbers, amounts and dates exactly as written. "
    "If the evidence does not contain the answer, reply exactly: NOT_FOUND"
)
_MARKER = re.compile(r"\[(\d+)\]")

#: Gives the image of a region, for vision models (region id → PIL image), or None.
CropFn = Callable[[str], Image.Image | None]


class OpenAIAnswerer:
    """Any OpenAI-compatible chat endpoint: GLM-4.6V-Flash / GLM-4-Flash on Zhipu's API,
    vLLM, SGLang, Ollama. The `openai` client retries 429/5xx with backoff."""

    def __init__(self, settings: Settings, crop: CropFn | None = None) -> None:
        from openai import OpenAI

        if not settings.llm_url:
            raise ModelServerError(
                "the openai answerer needs SCANRAG_LLM_URL (e.g. http://localhost:8000/v1)"
            )
        self.url = settings.llm_url
        self.timeout = settings.llm_timeout
        self.model = settings.llm_model
        self.images = settings.llm_images
        self.crop = crop
        self.client = OpenAI(
            base_url=settings.llm_url,
            api_key=settings.llm_api_key or "not-needed",
            timeout=settings.llm_timeout,
            max_retries=settings.llm_retries,
        )

    def evidence(self, hits: list[SearchHit]) -> list[Citation]:
        """Every region of every hit, numbered: the model cites regions, not chunks."""
        out: list[Citation] = []
        for hit in hits:
            for region in hit.regions:
                out.append(cite(len(out) + 1, hit, region, region.lines))
        return out

    def messages(
        self, question: str, evidence: list[Citation], hits: list[SearchHit]
    ) -> list[dict[str, Any]]:
        """The question and the numbered evidence, each region given as the rows of key–value
        pairs it is on (`fields.region_rows`), so the model reads pairs, not loose lines."""
        rows = fields.region_rows(fields.sheets(hits))
        blocks = [
            f"[{c.n}] ({c.source}, page {c.page}, {c.label})\n{rows.get(c.region_id, c.text)}"
            for c in evidence
        ]
        text = f"Question: {question}\n\nEvidence:\n\n" + "\n\n".join(blocks)
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if self.images and self.crop:
            for c in evidence:
                image = self.crop(c.region_id)
                if image is not None:
                    content.append({"type": "text", "text": f"Image of evidence [{c.n}]:"})
                    content.append({"type": "image_url", "image_url": {"url": data_uri(image)}})
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]

    def _call(self, **kwargs: Any) -> Any:
        import openai

        try:
            return self.client.chat.completions.create(model=self.model, temperature=0, **kwargs)
        except openai.APIError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: Exception) -> ModelServerError:
        """One line naming the URL and the setting to look at."""
        import openai

        if isinstance(exc, openai.APITimeoutError):  # a subclass of APIConnectionError
            return ModelServerError(
                f"the LLM at {self.url} did not answer within {self.timeout:g} s; "
                "check the server or raise SCANRAG_LLM_TIMEOUT"
            )
        if isinstance(exc, openai.APIConnectionError):
            return ModelServerError(
                f"cannot reach the LLM at {self.url} ({exc}); check SCANRAG_LLM_URL"
            )
        if isinstance(exc, openai.APIStatusError):
            return ModelServerError(
                f"the LLM at {self.url} answered {exc.status_code}: {exc.message}; "
                "check SCANRAG_LLM_MODEL and SCANRAG_LLM_API_KEY"
            )
        return ModelServerError(f"the LLM at {self.url} failed: {exc}")

    def answer(self, question: str, hits: list[SearchHit]) -> Answer:
        evidence = self.evidence(hits)
        if not evidence:
            return Answer(answer=NOT_FOUND[language(question)])
        reply = self._call(messages=self.messages(question, evidence, hits))
        return resolve(reply.choices[0].message.content or "", evidence, question)

    def stream(self, question: str, hits: list[SearchHit]) -> Iterator[dict[str, Any]]:
        evidence = self.evidence(hits)
        yield {"citations": [c.model_dump() for c in evidence]}
        if not evidence:
            yield {"done": Answer(answer=NOT_FOUND[language(question)]).model_dump()}
            return
        import openai

        parts: list[str] = []
        chunks = self._call(messages=self.messages(question, evidence, hits), stream=True)
        try:
            for chunk in chunks:
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    parts.append(delta)
                    yield {"token": delta}
        except openai.APIError as exc:  # the model stalled or hung up mid-answer
            raise self._error(exc) from exc
        yield {"done": resolve("".join(parts), evidence, question).model_dump()}


def resolve(text: str, evidence: list[Citation], question: str) -> Answer:
    """Keep the citations the answer refers to, renumbered 1..n; drop unknown markers."""
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.S).strip()
    if not text or "NOT_FOUND" in text:
        return Answer(answer=NOT_FOUND[language(question)])
    by_number = {c.n: c for c in evidence}
    renumber: dict[int, int] = {}
    for match in _MARKER.finditer(text):
        n = int(match.group(1))
        if n in by_number and n not in renumber:
            renumber[n] = len(renumber) + 1
    if not renumber:
        return Answer(answer=NOT_FOUND[language(question)])

    def replace(match: re.Match[str]) -> str:
        n = int(match.group(1))
        return f"[{renumber[n]}]" if n in renumber else ""

    answer = re.sub(r"\s+([.,;:!?。，])", r"\1", _MARKER.sub(replace, text)).strip()
    citations = [by_number[old].model_copy(update={"n": new}) for old, new in renumber.items()]
    return Answer(answer=answer, citations=citations)


def data_uri(image: Image.Image, fmt: str = "JPEG") -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format=fmt, quality=90)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def make_answerer(settings: Settings, crop: CropFn | None = None) -> Answerer:
    if settings.answerer == "openai":
        return OpenAIAnswerer(settings, crop)
    return ExtractiveAnswerer(settings.min_answer_score)
