"""`tesseract` for real on generated English and Chinese pages (CI installs tesseract)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from scanrag import ConfigError, testing
from scanrag.config import Settings
from scanrag.ingest.model import BBox
from scanrag.ingest.parsers import get_parser
from scanrag.ingest.parsers.tesseract import (
    TesseractOptions,
    TesseractParser,
    join_words,
    lines_from_tsv,
)
from scanrag.ingest.pipeline import parse_file

pytestmark = pytest.mark.slow  # runs Tesseract

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None and not os.environ.get("CI"),
    reason="tesseract is not installed (apt-get install tesseract-ocr tesseract-ocr-chi-sim)",
)


def parse_sheet(sheet: testing.Sheet, tmp_path: Path):
    path = tmp_path / "page.png"
    bottom = max(line.bbox.y1 for line in sheet.lines) + 60  # blank paper only costs time
    sheet.image(noise=2).crop((0, 0, sheet.width, bottom)).save(path)
    config = Settings(parser="tesseract")
    return parse_file(path, config, get_parser(config))


def line_near(doc, box: BBox):
    lines = [line for region in doc.regions() for line in region.lines]
    return max(lines, key=lambda line: line.bbox.iou(box))


@needs_tesseract
def test_an_english_invoice_is_read_into_lines_and_regions(tmp_path: Path):
    sheet = testing.invoice()
    doc = parse_sheet(sheet, tmp_path)
    regions = doc.pages[0].regions
    assert {r.source for r in regions} == {"tesseract"}
    assert regions[0].label == "title" and regions[0].text == "INVOICE INV-1001"
    text = "\n".join(r.text for r in regions)
    for expected in ("Seller: Orchid Logistics Ltd.", "$2,448.50", "Tariq Tanaka"):
        assert expected in text
    drawn = sheet.find("Seller:")
    line = line_near(doc, drawn.bbox)
    assert line.text == drawn.text and line.bbox.iou(drawn.bbox) > 0.8
    assert 0.5 < line.confidence <= 1
    # the key and the value of a row are separate lines, as RapidOCR reports them
    total = line_near(doc, sheet.find("$2,448.50").bbox)
    assert total.text == "$2,448.50"


@needs_tesseract
def test_a_chinese_receipt_is_read_without_spaces_between_characters(tmp_path: Path):
    sheet = testing.receipt_zh()
    doc = parse_sheet(sheet, tmp_path)
    text = "\n".join(r.text for r in doc.regions())
    for expected in ("小票号", "044571", "康师傅红烧牛肉面", "合计", "¥165.04", "徐明"):
        assert expected in text
    drawn = sheet.find("合计")
    line = line_near(doc, drawn.bbox)
    assert line.text == "合计" and line.bbox.iou(drawn.bbox) > 0.6
    page = doc.pages[0]
    assert page.regions[0].bbox_norm == page.regions[0].bbox.to_norm(page.width, page.height)


@needs_tesseract
def test_a_missing_language_names_the_package_to_install():
    with pytest.raises(ConfigError, match="tesseract-ocr-klingon"):
        TesseractParser(TesseractOptions(tesseract_lang="eng+klingon"))


def test_tsv_words_become_lines_split_at_wide_gaps():
    header = (
        "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\t"
        "left\ttop\twidth\theight\tconf\ttext"
    )
    rows = [
        "1\t1\t0\t0\t0\t0\t0\t0\t900\t600\t-1\t",
        "4\t1\t1\t1\t1\t0\t60\t240\t700\t30\t-1\t",
        "5\t1\t1\t1\t1\t1\t60\t240\t60\t29\t96.3\t双汇",
        "5\t1\t1\t1\t1\t2\t122\t240\t60\t29\t93.1\t火腿",
        "5\t1\t1\t1\t1\t3\t640\t242\t95\t24\t91.0\t¥36.36",
        "5\t1\t1\t1\t1\t4\t740\t242\t10\t24\t95.0\t ",
    ]
    lines = lines_from_tsv("\n".join([header, *rows]))
    assert [(line.text, line.bbox) for line in lines] == [
        ("双汇火腿", BBox(60, 240, 182, 269)),
        ("¥36.36", BBox(640, 242, 735, 266)),
    ]
    assert lines[0].confidence == pytest.approx(0.947)


def test_words_join_with_spaces_in_latin_text_only():
    def word(text: str, x0: int) -> tuple[str, BBox]:
        return text, BBox(x0, 0, x0 + 10 * len(text), 30)

    assert join_words([word("Bill", 0), word("to:", 50)]) == "Bill to:"
    assert join_words([word("清风", 0), word("抽纸", 22), word("3", 44), word("包", 56)]) == (
        "清风抽纸3包"
    )
