"""Evaluation metrics: character error rate, box scaling, line matching, set loading."""

from __future__ import annotations

import json

import pytest
from scanrag.evaluate import (
    GroundTruth,
    cer,
    language,
    load_questions,
    load_truth,
    normalise,
    percentile,
    scale_box,
    score_lines,
)
from scanrag.ingest.model import BBox, Document, Line, Page, ParserInfo, Region


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


def test_language_and_percentile():
    assert language("合计 ¥165.04") == "zh"
    assert language("Total due") == "en"
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([], 95) == 0.0
