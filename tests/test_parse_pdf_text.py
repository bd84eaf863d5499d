"""`pdf-text` reads born-digital PDFs from their own text layer; `auto` chooses per page."""

from __future__ import annotations

import math
import random

import pymupdf
import pytest

import scanrag
from scanrag import Settings, testing
from scanrag.ingest.loaders import PageImage, iter_pages, open_source
from scanrag.ingest.model import BBox, Line
from scanrag.ingest.parsers.auto import has_text_layer

LINES = [
    (72, 100, "Statement of account", 20),
    (72, 160, "Account holder: Pioneer Ceramics Ltd.", 11),
    (72, 180, "Statement date: 30 June 2025", 11),
    (300, 400, "Closing balance: $12,040.75", 11),
]


def points_to_pixels(value: float, dpi: int) -> float:
    return value * dpi / 72


@pytest.fixture
def statement(tmp_path):
    return testing.text_pdf([LINES], tmp_path / "statement.pdf")


def test_each_pdf_line_keeps_its_text_and_its_position_in_pixels(statement):
    doc = scanrag.parse(statement, parser="pdf-text")
    (page,) = doc.pages
    lines = {line.text: line for region in page.regions for line in region.lines}

    assert (page.width, page.height, page.dpi) == (1653, 2339, 200)
    assert (page.width_pt, page.height_pt) == (595, 842)
    assert page.text_layer is True
    assert sorted(lines) == sorted(text for _, _, text, _ in LINES)
    for x, baseline, text, size in LINES:
        box = lines[text].bbox
        assert abs(box.x0 - points_to_pixels(x, 200)) <= 2, text
        assert box.y0 < points_to_pixels(baseline, 200) <= box.y1, text
        assert 1.0 <= box.height / points_to_pixels(size, 200) <= 1.5, text
        assert lines[text].confidence is None  # the PDF's own text: no recognition score


def test_pdf_text_boxes_match_pymupdf_positions_times_dpi_over_72(statement):
    with pymupdf.open(statement) as pdf:  # where PyMuPDF finds each line, in points
        expected = {text: pdf[0].search_for(text)[0] for _, _, text, _ in LINES}
    for dpi in (100, 200, 300):
        doc = scanrag.parse(statement, parser="pdf-text", dpi=dpi)
        for line in (line for region in doc.regions() for line in region.lines):
            rect = expected[line.text]
            scaled = BBox.enclosing(*(value * dpi / 72 for value in rect))
            assert line.bbox.iou(scaled) >= 0.85, (dpi, line.text)
        assert doc.pages[0].width == math.ceil(595 * dpi / 72 - 0.01)


def test_pdf_text_boxes_cover_the_ink_of_the_rendered_page(statement):
    settings = Settings(parser="pdf-text")
    doc = scanrag.parse(statement, settings)
    (page_image,) = [page.image for page in iter_pages(open_source(statement, settings), settings)]
    for line in (line for region in doc.regions() for line in region.lines):
        ink = testing.ink_box(page_image, within=line.bbox.pad(20))
        assert line.bbox.coverage_of(ink) >= 0.98, line.text
    page_ink = testing.ink_box(page_image)
    regions = [region.bbox for region in doc.regions()]
    assert page_ink.x0 >= min(b.x0 for b in regions) and page_ink.y1 <= max(b.y1 for b in regions)


def test_title_becomes_a_heading_and_key_values_stay_in_rows(statement):
    doc = scanrag.parse(statement, parser="pdf-text")
    regions = doc.pages[0].regions
    assert [(region.label, region.markdown) for region in regions] == [
        ("title", "# Statement of account"),
        ("text", "Account holder: Pioneer Ceramics Ltd.\nStatement date: 30 June 2025"),
        ("text", "Closing balance: $12,040.75"),
    ]
    assert all(region.source == "pdf-text" for region in regions)


def test_two_column_pdf_reads_left_column_first(tmp_path):
    rng = random.Random(5)
    left = f"Left column opens here. {testing.filler(rng, 80)} Left column closes here."
    right = f"Right column opens here. {testing.filler(rng, 80)} Right column closes here."
    items = [
        (50, 80, "Two-column annual review", 20),
        *testing.pdf_paragraph(50, 130, left, width=230),
        *testing.pdf_paragraph(315, 130, right, width=230),
    ]
    path = testing.text_pdf([items], tmp_path / "review.pdf")

    doc = scanrag.parse(path, parser="pdf-text")
    read = [line.text for region in doc.regions() for line in region.lines]

    assert read == [text for _, _, text, _ in items]  # title, the left column, then the right
    assert doc.pages[0].regions[0].markdown == "# Two-column annual review"
    left_regions = [r for r in doc.regions()[1:] if r.bbox.x1 < doc.pages[0].width / 2]
    assert left_regions and left_regions[-1].text.endswith("Left column closes here.")


def test_table_in_a_pdf_is_read_row_by_row(tmp_path):
    rows = [
        ["Item", "Qty", "Unit price", "Amount"],
        ["Drill bit 6mm", "25", "$28.60", "$715.00"],
        ["Fuse 10A", "120", "$4.55", "$546.00"],
    ]
    items = [(72, 90, "Line items", 16)]
    items += [
        (x, 140 + 22 * r, cell, 11)
        for r, row in enumerate(rows)
        for x, cell in zip((72, 260, 340, 460), row, strict=True)
    ]
    path = testing.text_pdf([items], tmp_path / "items.pdf")

    doc = scanrag.parse(path, parser="pdf-text")

    assert [region.text for region in doc.regions()] == [
        "Line items",
        "Item Qty Unit price Amount\nDrill bit 6mm 25 $28.60 $715.00\nFuse 10A 120 $4.55 $546.00",
    ]


def test_chinese_text_layer_is_read(tmp_path):
    items = [(72, 100, "华联超市（天河店）", 18), (72, 150, "联系人：徐明", 11)]
    path = testing.text_pdf([items], tmp_path / "zh.pdf")
    doc = scanrag.parse(path, parser="pdf-text")
    assert [region.text for region in doc.regions()] == ["华联超市（天河店）", "联系人：徐明"]


@pytest.mark.parametrize("rotation", [90, 270])
def test_rotated_pdf_page_gets_boxes_on_the_rotated_image(tmp_path, rotation):
    pdf = pymupdf.open()
    page = pdf.new_page(width=595, height=842)
    page.insert_text((72, 100), "A page turned by its /Rotate entry", fontsize=14)
    page.set_rotation(rotation)
    pdf.save(tmp_path / "turned.pdf")
    pdf.close()
    settings = Settings(parser="pdf-text")

    doc = scanrag.parse(tmp_path / "turned.pdf", settings)
    (image,) = [
        p.image for p in iter_pages(open_source(tmp_path / "turned.pdf", settings), settings)
    ]
    (region,) = doc.regions()

    assert (doc.pages[0].width, doc.pages[0].height) == (2339, 1653)
    assert (doc.pages[0].width_pt, doc.pages[0].height_pt) == (842, 595)
    assert region.text == "A page turned by its /Rotate entry"
    assert region.bbox.coverage_of(testing.ink_box(image)) >= 0.98
    assert region.bbox.height > 5 * region.bbox.width  # the line runs down the page image


# --- auto -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixed_pdf(tmp_path_factory):
    """Page 1 born-digital, page 2 a scan (image only), page 3 born-digital again."""
    folder = tmp_path_factory.mktemp("mixed")
    text = testing.text_pdf(
        [[(72, 100, "Born-digital cover page of the claim file", 14)], LINES], folder / "t.pdf"
    )
    sheet = testing.Sheet(1000, 700)
    sheet.write(80, 120, "Scanned letter of claim", size=48)
    sheet.write(80, 260, "Claimant name: Ines Alvarez")
    sheet.write(80, 330, "Policy number: P779344")
    sheet.write(80, 400, "Claim amount: $5,512.69")
    scanned = testing.image_pdf([sheet.image(noise=2, seed=1)], folder / "s.pdf")
    pdf = pymupdf.open(text)
    with pymupdf.open(scanned) as other:
        pdf.insert_pdf(other, start_at=1)
    path = folder / "claim_file.pdf"
    pdf.save(path)
    pdf.close()
    return path, sheet, scanrag.parse(path, parser="auto")


def test_auto_reads_text_pages_from_the_pdf_and_scanned_pages_with_ocr(mixed_pdf):
    _, _, doc = mixed_pdf
    assert doc.parser.name == "auto"
    assert [page.text_layer for page in doc.pages] == [True, False, True]
    assert [{region.source for region in page.regions} for page in doc.pages] == [
        {"pdf-text"},
        {"embedded"},
        {"pdf-text"},
    ]
    assert [region.text for region in doc.pages[1].regions] == [
        "Scanned letter of claim",
        "Claimant name: Ines Alvarez\nPolicy number: P779344\nClaim amount: $5,512.69",
    ]
    assert doc.pages[1].regions[0].label == "title"
    assert all(line.confidence for region in doc.pages[1].regions for line in region.lines)
    assert doc.pages[0].regions[0].text == "Born-digital cover page of the claim file"


def test_auto_ocr_boxes_are_in_the_pixels_of_the_rendered_scan(mixed_pdf):
    _, sheet, doc = mixed_pdf
    page = doc.pages[1]
    assert (page.width, page.height, page.dpi) == (1000, 700, 200)  # the scan's own pixels
    lines = [line for region in page.regions for line in region.lines]
    for line, drawn in zip(lines, sheet.lines, strict=True):
        assert line.bbox.iou(drawn.bbox.pad(6)) >= 0.6, drawn.text


def test_pdf_text_alone_finds_nothing_on_a_scanned_page(mixed_pdf):
    path, _, _ = mixed_pdf
    doc = scanrag.parse(path, parser="pdf-text")
    assert [len(page.regions) for page in doc.pages] == [1, 0, 3]
    assert all(page.error is None for page in doc.pages)


def _page(text: str) -> PageImage:
    lines = [Line(text=text, bbox=BBox(0, 0, 100, 20))] if text else []
    return PageImage(
        number=1, width=100, height=100, dpi=200, render=lambda: None, text_lines=lines
    )


@pytest.mark.parametrize(
    ("text", "usable"),
    [
        ("Twenty characters or more of real text", True),
        ("Page 3", False),  # a page number stamped on a scan is not a text layer
        ("", False),
        ("\ufffd\ufffd\ufffd broken encoding \ufffd\ufffd\ufffd\ufffd\ufffd\ufffd", False),
    ],
)
def test_auto_trusts_a_text_layer_only_with_enough_real_characters(text, usable):
    assert has_text_layer(_page(text), Settings().min_text_layer_chars) is usable
