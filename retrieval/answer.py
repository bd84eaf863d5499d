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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image
from pydantic import BaseModel, Field

from ..config import Settings
from ..errors import ModelServerError
from ..ingest.layout import rows
from ..ingest.model import BBox
from .embedding import terms
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
    crop_url: str
    page_image_url: str
    highlight_url: str


class Answer(BaseModel):
    answer: str
    citations: list[Citation] = Field(default_factory=list)


def cite(n: int, hit: SearchHit, region: HitRegion, lines: list[HitLine] | None = None) -> Citation:
    """A numbered citation of one region of a search hit (URLs follow the /v1 API)."""
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
        lines=[CitedLine(text=line.text, bbox=line.bbox) for line in (lines or [])],
        crop_url=f"/v1/regions/{region.region_id}/crop",
        page_image_url=f"/v1/documents/{hit.doc_id}/pages/{region.page}/image",
        highlight_url=f"/v1/documents/{hit.doc_id}/pages/{region.page}/image?highlight={region.region_id}",
    )


def language(text: str) -> str:
    """'zh' when the text holds CJK characters, else 'en': how answers and scores are split."""
    return "zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"


class Answerer(Protocol):
    def answer(self, question: str, hits: list[SearchHit]) -> Answer: ...

    def stream(self, question: str, hits: list[SearchHit]) -> Iterator[dict[str, Any]]:
        """Events: {"citations": [...]}, then {"token": str}..., then {"done": Answer}."""


# --- extractive -------------------------------------------------------------------------

_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec"
ENTITY_PATTERNS: dict[str, re.Pattern[str]] = {
    "money": re.compile(
        r"[$¥€£]\s?\d[\d,]*(?:\.\d+)?|\d[\d,]*(?:\.\d+)?\s?(?:元|usd|eur|cny|rmb)", re.I
    ),
    "date": re.compile(
        rf"\b\d{{1,2}}\s*(?:{_MONTHS})[a-z]*\.?\s*\d{{4}}\b|\b(?:{_MONTHS})[a-z]*\.?\s+\d{{1,2}},?\s+\d{{4}}\b"
        r"|\d{4}年\d{1,2}月\d{1,2}日|\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}/\d{1,2}/\d{2,4}\b",
        re.I,
    ),
    "count": re.compile(r"\b\d[\d,]*\b"),
    "phone": re.compile(r"\+?\d[\d\s-]{7,}\d|1[3-9]\d{9}"),
    "person": re.compile(r"\b[A-Z][a-z]+(?:\s[A-Z][a-z]+)+\b|[：:]\s*[\u4e00-\u9fff]{2,4}(?:\s|$)"),
    "place": re.compile(
        r"\b(?:room|suite|floor|building)\s*\d\w*|\d+号楼|单元|室|\b\d+\s+\w+\s+(?:street|road|lane|avenue)\b",
        re.I,
    ),
    "id": re.compile(r"\b[A-Z]{0,4}-?\d{4,}\b|\b[A-Z]+\d+[A-Z\d]*\b"),
}
#: Question cues → the kind of value that answers them (checked in this order).
QUESTION_TYPES: list[tuple[str, re.Pattern[str]]] = [
    ("phone", re.compile(r"\bphone\b|\btelephone\b|\bmobile\b|电话|手机", re.I)),
    ("date", re.compile(r"\bwhen\b|\bdate\b|\bdeadline\b|几号|日期|什么时候|何时|哪天", re.I)),
    (
        "count",
        re.compile(r"\bhow many\b|\bhow much\b(?!.*\b(?:cost|pay)\b)|多少(?:个|人|件|名)", re.I),
    ),
    (
        "money",
        re.compile(
            r"\b(?:total|amount|price|cost|budget|revenue|paid|balance|fee|sum)\b|金额|价格|多少钱|合计|总计|费用|预算",
            re.I,
        ),
    ),
    ("person", re.compile(r"\bwho\b|\bwhom\b|\bname\b|谁|联系人|姓名", re.I)),
    ("place", re.compile(r"\bwhere\b|哪里|地点|地址|哪儿", re.I)),
    ("id", re.compile(r"\bnumber\b|\bno\b\.?|\bid\b|编号|号码", re.I)),
]
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
    terms: set[str] = field(default_factory=set)

    def citations(self) -> list[Citation]:
        """One citation per region the unit spans, highlighting only the unit's lines."""
        return [
            cite(n, self.hit, region, [line for line in self.lines if line in region.lines])
            for n, region in enumerate(self.regions, start=1)
        ]


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
                units.append(_Unit(sentence, lines, [region], hit, rank))
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


def expected_type(question: str) -> str | None:
    for kind, pattern in QUESTION_TYPES:
        if pattern.search(question):
            return kind
    return None


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


#: Numbers in a question name the document or the row ("INV-17684", "第31909号", "Fuse 10A").
#: A Chinese question splits into dozens of character and bigram terms, which would drown
#: them: the notice's number counted less than the retrieval rank of a sibling notice.
NUMBER_WEIGHT = 3.0


class ExtractiveAnswerer:
    """Offline: choose the row or sentence that best answers, cite its lines and region.

    A unit scores by the question terms it shares (IDF-weighted over the retrieved text), by
    the terms its document shares (so "INV-17684" picks the right invoice's "Total due" row),
    and by holding a value of the kind the question asks for (an amount, a date, a name...).
    """

    def __init__(self, min_score: float = 0.35) -> None:
        self.min_score = min_score

    def best_units(self, question: str, hits: list[SearchHit]) -> list[tuple[float, _Unit]]:
        units = [unit for rank, hit in enumerate(hits) for unit in _units(hit, rank)]
        if not units:
            return []
        for unit in units:
            unit.terms = _unit_terms(unit.text)
        wanted = _question_terms(question)
        doc_terms: dict[str, set[str]] = {}  # titles included: they name the document
        for hit in hits:
            doc_terms.setdefault(hit.doc_id, set()).update(terms(hit.text))
        idf = {t: math.log(1 + len(units) / (1 + sum(t in u.terms for u in units))) for t in wanted}
        kind = expected_type(question)
        for t in _cue_terms(question, kind) & wanted:
            idf[t] /= 2  # "date" in "due date" names the kind of value, not which one
        for t in wanted:
            if any(char.isdigit() for char in t):
                idf[t] *= NUMBER_WEIGHT
        total = sum(idf.values()) or 1.0
        question_text = question.lower()
        scored: list[tuple[float, _Unit]] = []
        for unit in units:
            if not unit.terms - wanted:
                continue  # repeats the question (a title, a key without its value)
            if not unit.terms & wanted:
                continue  # shares nothing with the question: a value of the right kind is no answer
            unit_overlap = sum(idf[t] for t in wanted & unit.terms) / total
            doc_overlap = sum(idf[t] for t in wanted & doc_terms[unit.hit.doc_id]) / total
            score = 0.55 * unit_overlap + 0.45 * doc_overlap + 0.05 / (1 + unit.rank)
            if kind:
                values = [m.group() for m in ENTITY_PATTERNS[kind].finditer(unit.text)]
                fresh = [v for v in values if v.strip(" :：").lower() not in question_text]
                score += 0.35 if fresh else -0.15
            score -= 0.004 * max(0, len(unit.terms) - 30)
            scored.append((round(score, 4), unit))
        scored.sort(key=lambda item: -item[0])
        return scored

    def answer(self, question: str, hits: list[SearchHit]) -> Answer:
        scored = self.best_units(question, hits)
        if not scored or scored[0][0] < self.min_score:
            return Answer(answer=NOT_FOUND[language(question)], citations=[])
        _, unit = scored[0]
        citations = unit.citations()
        markers = "".join(f"[{c.n}]" for c in citations)
        return Answer(answer=f"{unit.text} {markers}", citations=citations)

    def stream(self, question: str, hits: list[SearchHit]) -> Iterator[dict[str, Any]]:
        result = self.answer(question, hits)
        yield {"citations": [c.model_dump() for c in result.citations]}
        for token in re.findall(r"\S+\s*", result.answer):
            yield {"token": token}
        yield {"done": result.model_dump()}


def extract_value(
    name: str, hits: list[SearchHit], min_score: float = 0.35
) -> tuple[str | None, list[Citation]]:
    """The value of a named field ("total", "date", "发票号码") from one document's hits.

    The best unit for "What is the <name>?" is reduced to its value: an entity of the kind
    the name implies (an amount for "total"), else the text after the key's colon, else the
    cells of a table row that are not the key.
    """
    question = name if language(name) == "zh" else f"What is the {name}?"
    scored = ExtractiveAnswerer(min_score).best_units(question, hits)
    if not scored or scored[0][0] < min_score:
        return None, []
    _, unit = scored[0]
    kind = expected_type(question)
    value = None
    if kind:
        found = [m.group().strip(" :：") for m in ENTITY_PATTERNS[kind].finditer(unit.text)]
        value = next((v for v in found if v.lower() not in question.lower()), None)
    if value is None:
        parts = re.split(r"[:：]", unit.text, maxsplit=1)
        wanted = _question_terms(question)
        if len(parts) == 2 and parts[1].strip():
            value = parts[1].strip()
        elif " | " in unit.text:
            cells = [c for c in unit.text.split(" | ") if not set(terms(c)) <= wanted]
            value = " | ".join(cells) or unit.text
        else:
            value = unit.text
    return value, unit.citations()


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

    def messages(self, question: str, evidence: list[Citation]) -> list[dict[str, Any]]:
        blocks = [f"[{c.n}] ({c.source}, page {c.page}, {c.label})\n{c.text}" for c in evidence]
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
        reply = self._call(messages=self.messages(question, evidence))
        return resolve(reply.choices[0].message.content or "", evidence, question)

    def stream(self, question: str, hits: list[SearchHit]) -> Iterator[dict[str, Any]]:
        evidence = self.evidence(hits)
        yield {"citations": [c.model_dump() for c in evidence]}
        if not evidence:
            yield {"done": Answer(answer=NOT_FOUND[language(question)]).model_dump()}
            return
        import openai

        parts: list[str] = []
        chunks = self._call(messages=self.messages(question, evidence), stream=True)
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
