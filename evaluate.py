"""Score scanrag on a labelled set: parsing (line recall, CER), retrieval, answers, boxes, time.

A labelled set is a folder of documents, and for each document `<name>.gt.json`:

    {"file": "invoice.pdf", "dpi": 200,
     "pages": [{"page": 1, "width": 1654, "height": 2339,
                "lines": [{"text": "INVOICE INV-17684", "bbox": [147, 150, 706, 192]}, ...],
                "regions": [{"label": "title", "bbox": [...], "text": "..."}, ...]}]}

plus one `qa.jsonl` for the set, one question per line:

    {"file": "invoice.pdf", "question": "What is the total due?", "answer": "$19,020.08",
     "page": 1, "evidence_bbox": [1259, 807, 1419, 833]}

Boxes are page-image pixels at the stated dpi, origin top-left, on the file as given (a turned
or skewed scan is labelled as it lies). scanrag's boxes are on the upright page, so they are
mapped back onto the file (`Page.source_box`) before they are compared; when scanrag renders
a page at another size, ground-truth boxes are scaled to it. `file` is the document's file
name in the set folder; extra keys (such as "key" or "evidence_text") are ignored.
`"scope": "document"` asks the question with a filter on its own file, as a user asks about
the document open in front of them (`per_doc=True`, `scanrag eval --per-doc`, scopes every
question).

What is scored:

- parsing: a ground-truth line is found when one parsed line box covers ≥ 50 % of its box;
  CER against that line's text, a missed line counting as CER 1. Texts are compared after
  `normalise` (NFKC, so full-width forms equal half-width ones; whitespace runs collapsed to
  one space; lower case). A document is "zh" when its ground truth holds a CJK character.
- retrieval: the ranked chunks of the search (top k). A chunk is a hit when it comes from the
  question's file and one of its region or line boxes on the question's page covers ≥ 50 % of
  the evidence box: the chunk holds what a citation would point at. hit@1, hit@k, MRR
  (1/rank of the first hit, 0 beyond k). A question is "zh" when it holds a CJK character.
- answers: the answer contains the gold answer after `answer_key` (NFKC, lower case, every
  whitespace removed: OCR drops spaces, as in "July2025", and Chinese has none); "not found"
  = an answer without citations (every answerer says "not found" exactly then).
- citations: the same coverage test on the answer's own citations (region and line boxes);
  mean IoU of the best-matching cited box with the evidence box (0 for a question answered
  "not found" or cited elsewhere).
"""

from __future__ import annotations

import math
import re
import tempfile
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np
from pydantic import BaseModel, Field, ValidationError
from rapidfuzz.distance import Levenshtein

from .config import Settings
from .errors import ScanragError, problems
from .ingest.model import BBox, Document, Page
from .retrieval.answer import Citation, language
from .retrieval.results import HitRegion, SearchHit
from .retrieval.store import SearchFilters

#: A ground-truth line is found when a parsed line covers at least this share of its box.
LINE_COVERAGE = 0.5


class GTLine(BaseModel):
    text: str
    bbox: BBox


class GTRegion(BaseModel):
    label: str
    bbox: BBox
    text: str = ""


class GTPage(BaseModel):
    page: int
    width: int
    height: int
    lines: list[GTLine] = []
    regions: list[GTRegion] = []


class GroundTruth(BaseModel):
    file: str
    dpi: int = 200
    pages: list[GTPage]


class Question(BaseModel):
    file: str
    question: str
    answer: str
    page: int
    evidence_bbox: BBox
    scope: str | None = Field(
        None, description='"document": asked with a filter on its own file; else over the set.'
    )


def normalise(text: str) -> str:
    """NFKC (full-width → half-width), whitespace collapsed, lower case."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text)).strip().lower()


def answer_key(text: str) -> str:
    """Normalised for answer matching: NFKC, lower case, no whitespace (OCR drops spaces,
    as in "July2025", and Chinese has none)."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).lower()


def cer(truth: str, hypothesis: str) -> float:
    """Character error rate of `hypothesis` against `truth`, capped at 1."""
    truth, hypothesis = normalise(truth), normalise(hypothesis)
    if not truth:
        return 0.0 if not hypothesis else 1.0
    return min(1.0, Levenshtein.distance(truth, hypothesis) / len(truth))


def scale_box(box: BBox, from_size: tuple[int, int], to_size: tuple[int, int]) -> BBox:
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    return BBox.enclosing(box.x0 * sx, box.y0 * sy, box.x1 * sx, box.y1 * sy)


class LineScore(BaseModel):
    lines: int
    found: int
    cer_sum: float

    @property
    def recall(self) -> float:
        return self.found / self.lines if self.lines else 0.0

    @property
    def mean_cer(self) -> float:
        return self.cer_sum / self.lines if self.lines else 0.0


def file_size(page: Page) -> tuple[int, int]:
    """The page's size in pixels as the file gives it (before it was stood upright)."""
    if page.rotation is None:
        return page.width, page.height
    return page.rotation.source_width, page.rotation.source_height


def score_lines(truth: GroundTruth, document: Document) -> LineScore:
    """Match each ground-truth line to the parsed line covering most of its box.

    Unmatched lines count as CER 1.
    """
    lines = found = 0
    cer_sum = 0.0
    for gt_page in truth.pages:
        page = document.page(gt_page.page)
        parsed = (
            [(line.text, page.source_box(line.bbox)) for r in page.regions for line in r.lines]
            if page
            else []
        )
        for gt_line in gt_page.lines:
            lines += 1
            box = gt_line.bbox
            if page:
                box = scale_box(box, (gt_page.width, gt_page.height), file_size(page))
            best = max(parsed, key=lambda line: line[1].coverage_of(box), default=None)
            if best is not None and best[1].coverage_of(box) >= LINE_COVERAGE:
                found += 1
                cer_sum += cer(gt_line.text, best[0])
            else:
                cer_sum += 1.0
    return LineScore(lines=lines, found=found, cer_sum=cer_sum)


def _gt_size(truth: GroundTruth | None, page: int) -> tuple[int, int] | None:
    if truth is None:
        return None
    return next(((p.width, p.height) for p in truth.pages if p.page == page), None)


def cited_boxes(
    question: Question,
    regions: Sequence[HitRegion | Citation],
    truth: GroundTruth | None,
    page: Page | None = None,
) -> list[BBox]:
    """Region and line boxes on the question's page, mapped onto the file as given (`page`:
    the parsed page, which knows how it was stood upright) and scaled to ground-truth pixels."""
    size = _gt_size(truth, question.page)
    out: list[BBox] = []
    for region in regions:
        if region.page != question.page:
            continue
        for box in [region.bbox, *(line.bbox for line in region.lines)]:
            frame = (region.page_width, region.page_height)
            if page is not None:
                box, frame = page.source_box(box), file_size(page)
            if size:
                box = scale_box(box, frame, size)
            out.append(box)
    return out


def evidence_hit(
    question: Question,
    source: str,
    regions: Sequence[HitRegion | Citation],
    truth: GroundTruth | None,
    page: Page | None = None,
) -> bool:
    """True when a box from the right file and page covers ≥ 50 % of the evidence box."""
    if Path(source).name != question.file:
        return False
    return any(
        box.coverage_of(question.evidence_bbox) >= LINE_COVERAGE
        for box in cited_boxes(question, regions, truth, page)
    )


_Label = TypeVar("_Label", GroundTruth, Question)


def load_truth(set_dir: Path) -> dict[str, GroundTruth]:
    """Every `<name>.gt.json` in the set, keyed by the document's file name."""
    out = {}
    for path in sorted(set_dir.glob("*.gt.json")):
        truth = _read_label(GroundTruth, path.read_bytes(), str(path))
        out[truth.file] = truth
    return out


def load_questions(set_dir: Path) -> list[Question]:
    path = set_dir / "qa.jsonl"
    if not path.exists():
        return []
    return [
        _read_label(Question, line, f"{path} line {number}")
        for number, line in enumerate(path.read_bytes().splitlines(), start=1)
        if line.strip()
    ]


def _read_label(model: type[_Label], raw: bytes, where: str) -> _Label:
    """One labelled record, or an error naming the file (and line) and the first problem."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ScanragError(f"{where}: {problems(exc, 'record')[0]}") from None


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100), linear interpolation; 0 for no values."""
    return float(np.percentile(values, q)) if values else 0.0


# --- the whole evaluation ---------------------------------------------------------------


class ParseScore(BaseModel):
    lines: int
    recall: float
    cer: float


class RetrievalScore(BaseModel):
    questions: int
    hit_at_1: float
    hit_at_k: float
    mrr: float
    tied_first: int = Field(
        0,
        description="Questions whose first two chunks have the same score: which one ranks "
        "first is the store's tie-break, so hit@1 and MRR may change from run to run.",
    )


class AnswerScore(BaseModel):
    questions: int
    contains: float
    not_found: float
    citation_hit: float
    mean_iou: float


class EvalReport(BaseModel):
    set_dir: str
    parser: str
    k: int
    documents: int
    pages: int
    failed: list[str]
    parsing: dict[str, ParseScore]
    retrieval: dict[str, RetrievalScore]
    answers: dict[str, AnswerScore]
    # overall figures, the same as answers["all"]
    answer_contains: float
    answer_not_found: float
    citation_hit: float
    mean_iou: float
    scoped: int = Field(0, description="Questions asked with a filter on their own file.")
    pages_parsed: int = Field(description="Pages parsed in this run (cached ones are not).")
    parse_seconds_per_page: float | None = Field(
        description="Parse time per page parsed in this run; null when every page came from "
        "the parse cache of a reused --data-dir."
    )
    query_p50_ms: float
    query_p95_ms: float


def _first_hit_rank(
    question: Question, hits: list[SearchHit], truth: GroundTruth | None, page: Page | None
) -> int:
    """1-based rank of the first hit whose boxes cover the evidence; 0 when none does."""
    for rank, hit in enumerate(hits, start=1):
        if evidence_hit(question, hit.source, hit.regions, truth, page):
            return rank
    return 0


def _best_iou(
    question: Question,
    citations: list[Citation],
    truth: GroundTruth | None,
    page: Page | None = None,
) -> float:
    boxes = [
        box
        for citation in citations
        if Path(citation.source).name == question.file
        for box in cited_boxes(question, [citation], truth, page)
    ]
    return max((box.iou(question.evidence_bbox) for box in boxes), default=0.0)


def run_eval(
    set_dir: Path,
    settings: Settings,
    k: int = 5,
    data_dir: Path | None = None,
    on_progress: Callable[[str], None] | None = None,
    per_doc: bool = False,
) -> EvalReport:
    """Parse and index the set, ask every question the way POST /v1/query does, score it all.

    A question with `"scope": "document"` (every question with `per_doc`) is asked with a
    `source` filter on its own file.
    """
    from .retrieval.index import Index  # the retrieval stack loads torch: only when evaluating

    truth = load_truth(set_dir)
    questions = load_questions(set_dir)
    with tempfile.TemporaryDirectory(prefix="scanrag-eval-") as scratch:
        index = Index(settings, data_dir=data_dir or Path(scratch))
        with index:
            if on_progress:
                on_progress(f"indexing {set_dir}")
            report = index.ingest([set_dir])
            index.optimize()  # as `scanrag ingest` does (a no-op below 10k chunks)
            docs = {
                Path(path).name: index.document(info.doc_id)
                for info in index.documents()
                if info.doc_id
                for path in info.paths  # identical files share one document
            }
            parsing = _parsing_scores(truth, docs)
            rows: list[_Asked] = []
            latencies = []
            ask = index.answerer
            scoped = 0
            for number, question in enumerate(questions, start=1):
                if on_progress:
                    on_progress(f"question {number}/{len(questions)}")
                scope = per_doc or question.scope == "document"
                scoped += scope
                filters = SearchFilters(source=question.file) if scope else None
                started = time.perf_counter()  # POST /v1/query's two steps
                hits = index.search(question.question, top_k=k, filters=filters)
                answer = ask.answer(question.question, hits)
                latencies.append(time.perf_counter() - started)
                gt = truth.get(question.file)
                doc = docs.get(question.file)
                page = doc.page(question.page) if doc else None
                rows.append(
                    _Asked(
                        lang=language(question.question),
                        rank=_first_hit_rank(question, hits, gt, page),
                        tied=len(hits) > 1 and math.isclose(hits[0].score, hits[1].score),
                        contains=answer_key(question.answer) in answer_key(answer.answer),
                        not_found=not answer.citations,
                        cited=any(
                            evidence_hit(question, c.source, [c], gt, page)
                            for c in answer.citations
                        ),
                        iou=_best_iou(question, answer.citations, gt, page),
                    )
                )
    answers = _answer_scores(rows)
    overall = answers.get("all", AnswerScore(questions=0, **dict.fromkeys(_ANSWER_FIGURES, 0.0)))
    unique = {doc.id: doc for doc in docs.values() if doc}
    return EvalReport(
        set_dir=str(set_dir),
        parser=settings.parser,
        k=k,
        documents=len(unique),
        pages=sum(len(doc.pages) for doc in unique.values()),
        failed=[error.error for error in report.errors],
        parsing=parsing,
        retrieval=_retrieval_scores([(row.lang, row.rank, row.tied) for row in rows]),
        answers=answers,
        answer_contains=overall.contains,
        answer_not_found=overall.not_found,
        citation_hit=overall.citation_hit,
        mean_iou=overall.mean_iou,
        scoped=scoped,
        pages_parsed=report.pages,
        parse_seconds_per_page=(
            round(report.parse_seconds / report.pages, 3) if report.pages else None
        ),
        query_p50_ms=round(percentile(latencies, 50) * 1000, 1),
        query_p95_ms=round(percentile(latencies, 95) * 1000, 1),
    )


class _Asked(NamedTuple):
    """One question's outcome."""

    lang: str
    rank: int  # of the first search hit covering the evidence, 0 for none in the top k
    tied: bool  # the first two hits have the same score
    contains: bool
    not_found: bool
    cited: bool
    iou: float


_ANSWER_FIGURES = ("contains", "not_found", "citation_hit", "mean_iou")


def _answer_scores(rows: list[_Asked]) -> dict[str, AnswerScore]:
    out = {}
    for key in ("all", "en", "zh"):
        chosen = [row for row in rows if key in ("all", row.lang)]
        if not chosen:
            continue
        n = len(chosen)
        out[key] = AnswerScore(
            questions=n,
            contains=round(sum(row.contains for row in chosen) / n, 4),
            not_found=round(sum(row.not_found for row in chosen) / n, 4),
            citation_hit=round(sum(row.cited for row in chosen) / n, 4),
            mean_iou=round(sum(row.iou for row in chosen) / n, 4),
        )
    return out


def _parsing_scores(
    truth: dict[str, GroundTruth], docs: dict[str, Document | None]
) -> dict[str, ParseScore]:
    totals: dict[str, list[float]] = {}
    for name, gt in truth.items():
        doc = docs.get(name)
        if doc is None:
            score = LineScore(lines=sum(len(p.lines) for p in gt.pages), found=0, cer_sum=0.0)
            score.cer_sum = float(score.lines)
        else:
            score = score_lines(gt, doc)
        lang = language(" ".join(line.text for page in gt.pages for line in page.lines))
        for key in ("all", lang):
            bucket = totals.setdefault(key, [0, 0, 0.0])
            bucket[0] += score.lines
            bucket[1] += score.found
            bucket[2] += score.cer_sum
    return {
        key: ParseScore(
            lines=int(n),
            recall=round(found / n, 4) if n else 0.0,
            cer=round(cer_sum / n, 4) if n else 0.0,
        )
        for key, (n, found, cer_sum) in sorted(totals.items())
    }


def _retrieval_scores(ranks: Sequence[tuple[str, int, bool]]) -> dict[str, RetrievalScore]:
    """hit@1, hit@k and MRR from (language, rank of the first hit or 0, tie at the top)."""
    out = {}
    for key in ("all", "en", "zh"):
        chosen = [(rank, tied) for lang, rank, tied in ranks if key in ("all", lang)]
        if not chosen:
            continue
        n = len(chosen)
        out[key] = RetrievalScore(
            questions=n,
            hit_at_1=round(sum(rank == 1 for rank, _ in chosen) / n, 4),
            hit_at_k=round(sum(rank > 0 for rank, _ in chosen) / n, 4),
            mrr=round(sum(1 / rank for rank, _ in chosen if rank) / n, 4),
            tied_first=sum(tied for _, tied in chosen),
        )
    return out
