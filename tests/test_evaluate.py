"""Evaluation metrics: character error rate, box scaling, line matching, set loading,
retrieval ranks, evidence boxes, answer matching, and `run_eval` on a set built here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanrag import Settings, testing
from scanrag.cli import format_eval
from scanrag.errors import ScanragError
from scanrag.evaluate import (
    GroundTruth,
    Question,
    _best_iou,
    _retrieval_scores,
    answer_key,
    cer,
    evidence_hit,
    language,
    load_questions,
    load_truth,
    normalise,
    percentile,
    run_eval,
    scale_box,
    score_lines,
)
from scanrag.ingest.model import BBox, Document, Line, Page, PageRotation, ParserInfo, Region
from scanrag.retrieval.answer import Citation
from scanrag.retrieval.results import HitRegion


def test_cer_counts_edits_per_character_of_the_truth():
    assert cer("Total due", "Total due") == 0.0
    assert cer("hello", "hallo") == pytest.approx(0.2)
    assert cer("$2,448.50", "$2,44850") == pytest.approx(1 / 9)
    assert cer("abc", "a completely different and much longer text") == 1.0  # capped


def test_cer_ignores_width_case_and_spacing():
    assert normalise("  ＩＮＶＯＩＣＥ\n No.１２３ ") == "invoice no.123"
    assert cer("ＩＮＶＯＩＣＥ  INV-1001", "invoice inv-1001") == 0.0
    assert cer("联系人：徐明", "联系人:徐明") == 0.0  # full-width colon


def test_cer_of_empty_truth():
    assert cer("", "") == 0.0
    assert cer("", "noise") == 1.0


def test_scale_box_maps_ground_truth_to_another_render_size():
    assert scale_box(BBox(100, 200, 300, 400), (1000, 2000), (500, 1000)) == BBox(50, 100, 150, 200)
    assert scale_box(BBox(1, 1, 3, 3), (10, 10), (15, 15)) == BBox(1, 1, 5, 5)  # encloses


def test_box_iou_and_coverage_used_for_matching():
    truth = BBox(100, 100, 200, 140)
    padded = truth.pad(5)
    assert padded.coverage_of(truth) == 1.0
    assert truth.coverage_of(padded) == pytest.approx(4000 / (110 * 50))
    assert truth.iou(padded) == pytest.approx(4000 / (110 * 50))
    assert truth.iou(BBox(300, 300, 400, 400)) == 0.0


def parsed(lines: list[Line], width: int = 1000, height: int = 1000) -> Document:
    region = Region(
        id="d:p1:r0",
        page=1,
        index=0,
        label="text",
        bbox=BBox(0, 0, width, height),
        bbox_norm=BBox(0, 0, 1000, 1000),
        text="\n".join(line.text for line in lines),
        lines=lines,
    )
    return Document(
        id="d",
        source="x.png",
        sha256="0" * 64,
        mime="image/png",
        pages=[Page(number=1, width=width, height=height, dpi=200, regions=[region])],
        parser=ParserInfo(name="embedded", version="x", fingerprint="f"),
    )


def truth(*lines: tuple[str, BBox], size: tuple[int, int] = (1000, 1000)) -> GroundTruth:
    return GroundTruth.model_validate(
        {
            "file": "x.png",
            "pages": [
                {
                    "page": 1,
                    "width": size[0],
                    "height": size[1],
                    "lines": [{"text": text, "bbox": box} for text, box in lines],
                }
            ],
        }
    )


def test_score_lines_counts_a_hit_with_its_cer_and_a_miss_as_cer_1():
    gt = truth(
        ("Total due: $2,448.50", BBox(100, 100, 400, 130)),
        ("Payment due: 25 July", BBox(100, 500, 400, 530)),
    )
    doc = parsed([Line(text="Total due: $2,448.5O", bbox=BBox(95, 96, 410, 134))])

    score = score_lines(gt, doc)

    assert (score.lines, score.found) == (2, 1)
    assert score.recall == 0.5
    assert score.mean_cer == pytest.approx((1 / 20 + 1.0) / 2)


def test_score_lines_needs_half_the_truth_box_covered():
    gt = truth(("Seller: Orchid Logistics", BBox(100, 100, 500, 140)))
    half = parsed([Line(text="Seller: Orchid", bbox=BBox(100, 100, 299, 140))])
    most = parsed([Line(text="Seller: Orchid Logistics", bbox=BBox(100, 100, 320, 140))])
    assert score_lines(gt, half).found == 0
    assert score_lines(gt, most).found == 1


def test_score_lines_scales_truth_boxes_to_the_parsed_page_size():
    gt = truth(("Claim amount", BBox(200, 200, 400, 240)), size=(2000, 2000))
    doc = parsed([Line(text="Claim amount", bbox=BBox(100, 100, 200, 120))], 1000, 1000)
    score = score_lines(gt, doc)
    assert (score.found, score.mean_cer) == (1, 0.0)


def test_score_lines_compares_on_the_file_as_labelled_when_the_page_was_turned():
    # labelled on a 1000 x 600 file lying on its side; scanrag read it turned 90° clockwise
    gt = truth(("Claim amount", BBox(500, 100, 540, 300)), size=(1000, 600))
    doc = parsed([Line(text="Claim amount", bbox=BBox(300, 500, 500, 540))], 600, 1000)
    doc.pages[0].rotation = PageRotation(turn=90, source_width=1000, source_height=600)
    assert score_lines(gt, doc).found == 1
    doc.pages[0].rotation = None  # compared as it lies, the upright box misses
    assert score_lines(gt, doc).found == 0


def test_evidence_on_a_turned_page_is_compared_on_the_file_as_labelled():
    page = Page(
        number=1,
        width=1000,
        height=1000,
        dpi=200,
        rotation=PageRotation(turn=180, source_width=1000, source_height=1000),
    )
    region = hit_region([500, 560, 700, 600])  # the evidence box (300, 400, 500, 440), turned
    assert evidence_hit(question(), "invoice.pdf", [region], page_truth(), page)
    assert not evidence_hit(question(), "invoice.pdf", [region], page_truth())


def test_score_lines_with_a_missing_page_misses_every_line():
    gt = truth(("Claim amount", BBox(200, 200, 400, 240)))
    gt.pages[0].page = 2
    score = score_lines(gt, parsed([]))
    assert (score.lines, score.found, score.mean_cer) == (1, 0, 1.0)


def test_labelled_set_loads_truth_and_questions(tmp_path):
    gt = {"file": "invoice.pdf", "pages": [{"page": 1, "width": 10, "height": 10, "lines": []}]}
    (tmp_path / "invoice.gt.json").write_text(json.dumps(gt))
    (tmp_path / "qa.jsonl").write_text(
        json.dumps(
            {
                "file": "invoice.pdf",
                "question": "What is the total due?",
                "answer": "$19,020.08",
                "page": 1,
                "evidence_bbox": [1259, 807, 1419, 833],
            }
        )
        + "\n\n"
    )
    truths = load_truth(tmp_path)
    (question,) = load_questions(tmp_path)
    assert list(truths) == ["invoice.pdf"]
    assert truths["invoice.pdf"].dpi == 200
    assert question.evidence_bbox == BBox(1259, 807, 1419, 833)
    assert load_questions(tmp_path / "elsewhere") == []


def test_a_bad_label_names_its_file_line_and_field(tmp_path):
    good = {
        "file": "a.png",
        "question": "q",
        "answer": "a",
        "page": 1,
        "evidence_bbox": [0, 0, 1, 9],
    }
    (tmp_path / "qa.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(good | {"page": "x"}))
    with pytest.raises(ScanragError, match=r"qa\.jsonl line 2: page: .*integer"):
        load_questions(tmp_path)
    (tmp_path / "a.gt.json").write_text("{not json")
    with pytest.raises(ScanragError, match=r"a\.gt\.json: .*JSON"):
        load_truth(tmp_path)


def test_language_and_percentile():
    assert language("合计 ¥165.04") == "zh"
    assert language("Total due") == "en"
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([], 95) == 0.0


# --- retrieval ranks ----------------------------------------------------------------------


def test_retrieval_scores_from_hand_made_ranks():
    # ranks of the first chunk covering the evidence; 0 = not in the top k
    ranks = [
        ("en", 1, False),
        ("en", 2, False),
        ("en", 0, False),
        ("zh", 4, True),
        ("zh", 1, False),
    ]

    scores = _retrieval_scores(ranks)

    overall = scores["all"]
    assert overall.questions == 5
    assert overall.hit_at_1 == pytest.approx(2 / 5)
    assert overall.hit_at_k == pytest.approx(4 / 5)
    assert overall.mrr == pytest.approx(round((1 + 1 / 2 + 0 + 1 / 4 + 1) / 5, 4))
    assert overall.tied_first == 1
    assert (scores["en"].questions, scores["en"].hit_at_1, scores["en"].mrr) == (3, 0.3333, 0.5)
    assert (scores["zh"].hit_at_1, scores["zh"].hit_at_k, scores["zh"].mrr) == (0.5, 1.0, 0.625)


def test_retrieval_scores_leave_out_a_language_without_questions():
    scores = _retrieval_scores([("en", 0, False), ("en", 0, False)])
    assert list(scores) == ["all", "en"]
    assert (scores["all"].hit_at_1, scores["all"].hit_at_k, scores["all"].mrr) == (0, 0, 0)
    assert _retrieval_scores([]) == {}


# --- evidence boxes -----------------------------------------------------------------------


def question(file: str = "invoice.pdf", page: int = 1, evidence=(300, 400, 500, 440)) -> Question:
    return Question(
        file=file,
        question="What is the total due?",
        answer="$19.00",
        page=page,
        evidence_bbox=BBox(*evidence),
    )


def hit_region(box, page=1, lines=(), size=(1000, 1000)) -> HitRegion:
    return HitRegion.model_validate(
        {
            "region_id": f"d:p{page}:r0",
            "page": page,
            "bbox": box,
            "bbox_norm": [0, 0, 1000, 1000],
            "label": "text",
            "start": 0,
            "end": 10,
            "page_width": size[0],
            "page_height": size[1],
            "lines": [{"text": "x", "bbox": line, "start": 0, "end": 1} for line in lines],
        }
    )


def citation(box, lines=(), source="/data/set/invoice.pdf", page=1, size=(1000, 1000)):
    return Citation.model_validate(
        {
            "n": 1,
            "doc_id": "d",
            "source": source,
            "page": page,
            "region_id": f"d:p{page}:r0",
            "label": "text",
            "bbox": box,
            "bbox_norm": [0, 0, 1000, 1000],
            "page_width": size[0],
            "page_height": size[1],
            "text": "x",
            "score": 1.0,
            "lines": [{"text": "x", "bbox": line} for line in lines],
        }
    )


def page_truth(size=(1000, 1000), file="invoice.pdf") -> GroundTruth:
    return GroundTruth.model_validate(
        {"file": file, "pages": [{"page": 1, "width": size[0], "height": size[1]}]}
    )


def test_evidence_hit_when_a_region_box_on_the_right_page_covers_the_evidence():
    region = hit_region([250, 380, 900, 600])
    assert evidence_hit(question(), "/data/set/invoice.pdf", [region], page_truth())


def test_evidence_hit_by_a_line_box_inside_a_region_that_misses():
    # the region box lies elsewhere; one of its lines covers 60 % of the evidence box
    region = hit_region([0, 0, 100, 100], lines=[[300, 400, 420, 440]])
    assert evidence_hit(question(), "invoice.pdf", [region], page_truth())


def test_evidence_miss_from_another_file_even_with_the_same_box():
    region = hit_region([250, 380, 900, 600])
    assert not evidence_hit(question(), "/data/set/invoice_2.pdf", [region], page_truth())


def test_evidence_miss_from_another_page_even_with_the_same_box():
    region = hit_region([250, 380, 900, 600], page=2)
    assert not evidence_hit(question(), "invoice.pdf", [region], page_truth())


def test_evidence_miss_below_half_coverage():
    # covers 90 of the evidence's 200 pixels of width: 45 %
    region = hit_region([200, 380, 390, 600])
    assert not evidence_hit(question(), "invoice.pdf", [region], page_truth())
    exactly_half = hit_region([200, 380, 400, 600])
    assert evidence_hit(question(), "invoice.pdf", [exactly_half], page_truth())


def test_evidence_boxes_are_scaled_from_the_render_size_to_the_ground_truth_size():
    # scanrag rendered the page at twice the labelled size: its boxes are halved first
    region = hit_region([600, 800, 1000, 880], size=(2000, 2000))
    assert evidence_hit(question(), "invoice.pdf", [region], page_truth((1000, 1000)))
    unscaled = hit_region([600, 800, 1000, 880], size=(1000, 1000))
    assert not evidence_hit(question(), "invoice.pdf", [unscaled], page_truth((1000, 1000)))


def test_best_iou_picks_the_best_cited_box():
    evidence = question(evidence=(100, 100, 300, 200))  # 200 x 100
    region = citation([0, 0, 1000, 1000], lines=[[150, 100, 350, 200], [100, 500, 300, 600]])
    # the first line overlaps 150 x 100 of a 250 x 100 union: 0.6; the region 0.02
    assert _best_iou(evidence, [region], page_truth()) == pytest.approx(0.6)


def test_best_iou_is_zero_for_another_file_another_page_or_no_citation():
    evidence = question(evidence=(100, 100, 300, 200))
    assert _best_iou(evidence, [citation([100, 100, 300, 200], source="other.pdf")], None) == 0
    assert _best_iou(evidence, [citation([100, 100, 300, 200], page=2)], None) == 0
    assert _best_iou(evidence, [], None) == 0
    assert _best_iou(evidence, [citation([100, 100, 300, 200])], None) == 1.0


# --- answers ------------------------------------------------------------------------------


def test_answer_key_ignores_width_case_and_every_space():
    assert answer_key("25 July 2025") == "25july2025"
    assert answer_key("25 July 2025") in answer_key("Payment is due on 25 July2025 [1].")
    assert answer_key("ＩＮＶ－１００１") == "inv-1001"
    assert answer_key("徐 明") in answer_key("联系人：徐明 [1]")
    assert answer_key("$2,448.50") not in answer_key("Total due: $2,448.5O")


def test_score_lines_scales_a_wide_truth_page_on_each_axis():
    # labelled at 100 dpi (827 x 1170), parsed at 200 dpi (1654 x 2340): boxes double
    gt = truth(("Payment due: 25 July", BBox(100, 200, 300, 220)), size=(827, 1170))
    doc = parsed([Line(text="Payment due: 25 Juli", bbox=BBox(200, 400, 600, 440))], 1654, 2340)
    score = score_lines(gt, doc)
    assert (score.found, score.mean_cer) == (1, pytest.approx(1 / 20))
    elsewhere = parsed(
        [Line(text="Payment due: 25 July", bbox=BBox(100, 200, 300, 220))], 1654, 2340
    )
    assert score_lines(gt, elsewhere).found == 0  # the unscaled box covers a quarter


# --- the whole evaluation -----------------------------------------------------------------


def labelled_set(folder: Path) -> Path:
    """Two born-digital PDFs (English and Chinese), their ground truth and four questions.

    Boxes are page pixels at 200 dpi, as pdf-text reports them for these lines (A4 of
    595 x 842 pt → 1653 x 2339 px). The truth holds one line with a typo ("$1,234.60") and one
    line that is not on the page.
    """
    folder.mkdir()
    testing.text_pdf(
        [
            [
                (72, 80, "INVOICE INV-2001", 16),
                (72, 120, "Seller: Orchid Logistics Ltd.", 10),
                (72, 140, "Total due: $1,234.50", 10),
                (72, 160, "Payment due: 3 March 2025", 10),
            ]
        ],
        folder / "invoice.pdf",
    )
    testing.text_pdf(
        [
            [
                (72, 80, "燃气安全检查通知", 16),
                (72, 120, "联系人：徐明", 10),
                (72, 140, "请于3月15日前办理", 10),
            ]
        ],
        folder / "notice.pdf",
    )
    lines = {
        "invoice": [
            ("INVOICE INV-2001", [200, 174, 583, 236]),
            ("Seller: Orchid Logistics Ltd.", [200, 303, 539, 342]),
            ("Total due: $1,234.60", [200, 359, 455, 398]),  # one character off: CER 1/20
            ("Payment due: 3 March 2025", [200, 414, 549, 453]),
            ("Thank you for your business", [200, 500, 560, 540]),  # not on the page
        ],
        "notice": [
            ("燃气安全检查通知", [200, 174, 500, 236]),
            ("联系人：徐明", [200, 303, 400, 342]),
        ],
    }
    for name, rows in lines.items():
        page = {"page": 1, "width": 1653, "height": 2339}
        page["lines"] = [{"text": text, "bbox": box} for text, box in rows]
        gt = {"file": f"{name}.pdf", "dpi": 200, "pages": [page]}
        (folder / f"{name}.gt.json").write_text(json.dumps(gt, ensure_ascii=False), "utf-8")
    questions = [
        # retrieved first, answered, cited: the answer is the amount, its cited box the line
        # [200, 359, 455, 398] cut at the amount's characters ("Total due: " is 4.72 of 9.24
        # character widths): [330, 359, 455, 398], IoU 125 / 155 with the evidence
        (
            "invoice.pdf",
            "What is the total due on invoice INV-2001?",
            "$1,234.50",
            [300, 359, 455, 398],
        ),
        # retrieved first, answered, cited: line [200, 305, 367, 339] cut to 徐明 (the last 2
        # of 6 wide characters) [311, 305, 367, 339], IoU 1904 / 7800; the region's box
        # [200, 305, 478, 395] (both lines) matches better: IoU 7400 / 25420
        ("notice.pdf", "燃气安全检查通知的联系人是谁？", "徐明", [200, 303, 400, 342]),
        # labelled on the other file: its chunk ranks 2nd; the answer (from the invoice) holds
        # the gold text but its citation is in the wrong file
        (
            "notice.pdf",
            "Who is the seller on invoice INV-2001?",
            "Orchid Logistics",
            [200, 303, 400, 342],
        ),
        # nothing in the set: no chunk holds this empty part of the page; "not found"
        (
            "invoice.pdf",
            "Which orchestra performed the symphony?",
            "Berlin",
            [200, 1000, 600, 1040],
        ),
    ]
    with (folder / "qa.jsonl").open("w", encoding="utf-8") as out:
        for file, text, gold, box in questions:
            row = {"file": file, "question": text, "answer": gold, "page": 1, "evidence_bbox": box}
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return folder


def test_run_eval_on_a_small_labelled_set_gives_the_figures_worked_out_by_hand(tmp_path):
    set_dir = labelled_set(tmp_path / "set")
    data_dir = tmp_path / "data"

    report = run_eval(set_dir, Settings(parser="pdf-text"), k=5, data_dir=data_dir)

    assert (report.documents, report.pages, report.failed) == (2, 2, [])
    parsing = {key: (s.lines, s.recall, s.cer) for key, s in report.parsing.items()}
    assert parsing == {
        "all": (7, round(6 / 7, 4), round((1 / 20 + 1) / 7, 4)),
        "en": (5, 0.8, round((1 / 20 + 1) / 5, 4)),
        "zh": (2, 1.0, 0.0),
    }
    retrieval = {
        key: (s.questions, s.hit_at_1, s.hit_at_k, s.mrr) for key, s in report.retrieval.items()
    }
    assert retrieval == {
        "all": (4, 0.5, 0.75, round((1 + 1 + 1 / 2 + 0) / 4, 4)),
        "en": (3, 0.3333, 0.6667, 0.5),
        "zh": (1, 1.0, 1.0, 1.0),
    }
    assert report.retrieval["all"].tied_first == 0
    iou_total, iou_zh = 125 / 155, 7400 / 25420
    answers = {
        key: (s.questions, s.contains, s.not_found, s.citation_hit, s.mean_iou)
        for key, s in report.answers.items()
    }
    assert answers == {
        "all": (4, 0.75, 0.25, 0.5, round((iou_total + iou_zh) / 4, 4)),
        "en": (3, 0.6667, 0.3333, 0.3333, round(iou_total / 3, 4)),
        "zh": (1, 1.0, 0.0, 1.0, round(iou_zh, 4)),
    }
    assert (report.answer_contains, report.answer_not_found) == (0.75, 0.25)
    assert (report.citation_hit, report.mean_iou) == (0.5, answers["all"][4])
    assert report.pages_parsed == 2 and report.parse_seconds_per_page > 0
    assert 0 < report.query_p50_ms <= report.query_p95_ms

    again = run_eval(set_dir, Settings(parser="pdf-text"), k=5, data_dir=data_dir)

    # a reused data dir parses nothing: the time per page is unknown, not 0
    assert (again.pages_parsed, again.parse_seconds_per_page) == (0, None)
    assert again.parsing == report.parsing and again.answers == report.answers
    table = format_eval(again)
    assert "parse cached" in table and "0.00 s/page" not in table
    assert "parse " in format_eval(report) and "s/page (2 pages)" in format_eval(report)


def twin_invoices(folder: Path, scope: str | None) -> Path:
    """Two invoices that differ only in their totals, and one question about the second."""
    folder.mkdir()
    for name, total in (("a.pdf", "$1,111.00"), ("b.pdf", "$2,222.00")):
        items = [(72, 80, "INVOICE", 16), (72, 140, f"Total due: {total}", 10)]
        testing.text_pdf([items], folder / name)
    row = {
        "file": "b.pdf",
        "question": "What is the total due?",
        "answer": "$2,222.00",
        "page": 1,
        "evidence_bbox": [200, 359, 455, 398],
    }
    if scope:
        row["scope"] = scope
    (folder / "qa.jsonl").write_text(json.dumps(row) + "\n", "utf-8")
    return folder


def test_a_document_scoped_question_is_asked_within_its_own_file(tmp_path):
    # over the whole set the twin invoices tie; within b.pdf only its total can answer
    scoped = run_eval(twin_invoices(tmp_path / "scoped", "document"), Settings(parser="pdf-text"))
    per_doc = run_eval(
        twin_invoices(tmp_path / "plain", None), Settings(parser="pdf-text"), per_doc=True
    )

    for report in (scoped, per_doc):
        assert report.scoped == 1
        assert (report.retrieval["all"].hit_at_1, report.answer_contains) == (1.0, 1.0)
        assert report.citation_hit == 1.0
        assert "1 of 1 questions asked within their own file" in format_eval(report)
    unscoped = run_eval(twin_invoices(tmp_path / "global", None), Settings(parser="pdf-text"))
    assert unscoped.scoped == 0
    assert "within their own file" not in format_eval(unscoped)
