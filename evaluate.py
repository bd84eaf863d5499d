"""Score scanrag on a labelled set: parsing (line recall, CER), retrieval, answers, boxes, time.

A labelled set is a folder of documents, and for each document `<name>.gt.json`:

    {"file": "invoice.pdf", "dpi": 200,
     "pages": [{"page": 1, "width": 1654, "height": 2339,
                "lines": [{"text": "INVOICE INV-17684", "bbox": [147, 150, 706, 192]}, ...],
                "regions": [{"label": "title", "bbox": [...], "text": "..."}, ...]}]}

plus one `qa.jsonl` for the set, one question per line:

    {"file": "invoice.pdf", "question": "What is the total due?", "answer": "$19,020.08",
     "page": 1, "evidence_bbox": [1259, 807, 1419, 833]}

Boxes are page-image pixels at the stated dpi, origin top-left. When scanrag renders a page at
another size, ground-truth boxes are scaled to it.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
from pydantic import BaseModel
from rapidfuzz.distance import Levenshtein

from .ingest.model import BBox, Document
from .retrieval.results import HitRegion

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


def score_lines(truth: GroundTruth, document: Document) -> LineScore:
    """Match each ground-truth line to the parsed line covering most of its box.

    Unmatched lines count as CER 1.
    """
    lines = found = 0
    cer_sum = 0.0
    for gt_page in truth.pages:
        page = document.page(gt_page.page)
        parsed = [line for region in page.regions for line in region.lines] if page else []
        for gt_line in gt_page.lines:
            lines += 1
            box = gt_line.bbox
            if page:
                box = scale_box(box, (gt_page.width, gt_page.height), (page.width, page.height))
            best = max(parsed, key=lambda line: line.bbox.coverage_of(box), default=None)
            if best is not None and best.bbox.coverage_of(box) >= LINE_COVERAGE:
                found += 1
                cer_sum += cer(gt_line.text, best.text)
            else:
                cer_sum += 1.0
    return LineScore(lines=lines, found=found, cer_sum=cer_sum)


def _gt_size(truth: GroundTruth | None, page: int) -> tuple[int, int] | None:
    if truth is None:
        return None
    return next(((p.width, p.height) for p in truth.pages if p.page == page), None)


def cited_boxes(
    question: Question, regions: list[HitRegion], truth: GroundTruth | None
) -> list[BBox]:
    """Region and line boxes on the question's page, scaled to ground-truth pixels."""
    size = _gt_size(truth, question.page)
    out: list[BBox] = []
    for region in regions:
        if region.page != question.page:
            continue
        for box in [region.bbox, *(line.bbox for line in region.lines)]:
            if size:
                box = scale_box(box, (region.page_width, region.page_height), size)
            out.append(box)
    return out


def evidence_hit(
    question: Question, source: str, regions: list[HitRegion], truth: GroundTruth | None
) -> bool:
    """True when a box from the right file and page covers ≥ 50 % of the evidence box."""
    if Path(source).name != question.file:
        return False
    return any(
        box.coverage_of(question.evidence_bbox) >= LINE_COVERAGE
        for box in cited_boxes(question, regions, truth)
    )


def load_truth(set_dir: Path) -> dict[str, GroundTruth]:
    """Every `<name>.gt.json` in the set, keyed by the document's file name."""
    out = {}
    for path in sorted(set_dir.glob("*.gt.json")):
        truth = GroundTruth.model_validate_json(path.read_text(encoding="utf-8"))
        out[truth.file] = truth
    return out


def load_questions(set_dir: Path) -> list[Question]:
    path = set_dir / "qa.jsonl"
    if not path.exists():
        return []
    return [
        Question.model_validate_json(line)
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def language(text: str) -> str:
    """'zh' when the text holds CJK characters, else 'en'."""
    return "zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100), linear interpolation; 0 for no values."""
    return float(np.percentile(values, q)) if values else 0.0
