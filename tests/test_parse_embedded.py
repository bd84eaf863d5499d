"""The `embedded` parser (RapidLayout + RapidOCR) on scans rendered here with known text.

OCR costs a second or two per page on a small CPU, so each document is parsed once per module
and several specifications look at the same result.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import scanrag
from scanrag import testing
from scanrag.ingest.blocks import LayoutBox, build_blocks, drop_nested
from scanrag.ingest.model import BBox, Document, Line, Region
from scanrag.ingest.parsers.glm import drop_duplicates

#: OCR boxes hold a few pixels of margin around the ink that `Sheet` records.
OCR_MARGIN = 6


def scan(sheet: testing.Sheet, folder: Path, name: str, seed: int) -> Document:
    """`sheet` saved as a grainy JPEG scan, then parsed with `embedded`."""
    path = folder / f"{name}.jpg"
    sheet.image(noise=3, seed=seed).save(path, quality=85)
    return scanrag.parse(path, parser="embedded")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("scans")


@pytest.fixture(scope="module")
def invoice(folder):
    sheet = testing.invoice()
    return sheet, scan(sheet, folder, "invoice", seed=1)


@pytest.fixture(scope="module")
def report(folder):
    sheet = testing.two_column_report()
    return sheet, scan(sheet, folder, "report", seed=2)


@pytest.fixture(scope="module")
def claim_form(folder):
    sheet = testing.form()
    return sheet, scan(sheet, folder, "form", seed=3)


@pytest.fixture(scope="module")
def receipt(folder):
    sheet = testing.receipt_zh()
    return sheet, scan(sheet, folder, "receipt", seed=4)


ALL = ["invoice", "report", "claim_form", "receipt"]


def squeeze(text: str) -> str:
    """Text without whitespace: OCR may drop the space between words set close together."""
    return "".join(text.split())


def all_lines(doc: Document) -> list[Line]:
    return [line for region in doc.regions() for line in region.lines]


def region_with(doc: Document, text: str) -> Region:
    return next(region for region in doc.regions() if text in region.text)


# --- lines: text, boxes, confidences ----------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_every_drawn_line_is_read_with_its_text_at_its_place(request, name):
    sheet, doc = request.getfixturevalue(name)
    lines = all_lines(doc)
    for drawn in sheet.lines:
        best = max(lines, key=lambda line: line.bbox.iou(drawn.bbox.pad(OCR_MARGIN)))
        assert squeeze(best.text) == squeeze(drawn.text), drawn.text
        assert best.bbox.iou(drawn.bbox.pad(OCR_MARGIN)) >= 0.6, drawn.text
        assert best.bbox.coverage_of(drawn.bbox) >= 0.9, drawn.text
        if drawn.bbox.width >= 300:  # long lines: the margin hardly matters
            assert best.bbox.iou(drawn.bbox) >= 0.5, drawn.text


@pytest.mark.parametrize("name", ALL)
def test_one_line_is_read_per_drawn_line_and_nothing_else(request, name):
    sheet, doc = request.getfixturevalue(name)
    assert len(all_lines(doc)) == len(sheet.lines)


@pytest.mark.parametrize("name", ALL)
def test_regions_carry_ids_boxes_and_confidences(request, name):
    _, doc = request.getfixturevalue(name)
    (page,) = doc.pages
    assert doc.parser.name == "embedded"
    assert doc.mime == "image/jpeg"
    assert page.text_layer is False and page.error is None
    assert [region.index for region in page.regions] == list(range(len(page.regions)))
    for region in page.regions:
        assert region.id == f"{doc.id}:p1:r{region.index}"
        assert region.source == "embedded"
        assert region.bbox_norm == region.bbox.to_norm(page.width, page.height)
        assert all(region.bbox.coverage_of(line.bbox) == 1.0 for line in region.lines)
        assert all(0.5 < line.confidence <= 1 for line in region.lines)
        assert 0.5 < region.confidence <= 1


# --- labels, headings, reading order ----------------------------------------------------


def test_title_is_labelled_and_becomes_a_heading(invoice):
    sheet, doc = invoice
    first = doc.pages[0].regions[0]
    assert first.label == "title"
    assert first.markdown.startswith("# ")
    assert squeeze(first.text) == squeeze(sheet.find("INVOICE").text)
    assert first.bbox.iou(sheet.find("INVOICE").bbox.pad(OCR_MARGIN)) >= 0.6
    assert [region.label for region in doc.regions()].count("title") == 1


def test_two_column_page_reads_left_column_first(report):
    sheet, doc = report
    regions = doc.pages[0].regions
    middle = doc.pages[0].width / 2
    left = [r for r in regions[1:] if r.bbox.x1 < middle]
    right = [r for r in regions[1:] if r.bbox.x0 > middle]

    assert regions[0].label == "title" and regions[0].markdown.startswith("# Annual report")
    assert left and right and len(left) + len(right) == len(regions) - 1  # no region spans both
    assert max(r.index for r in left) < min(r.index for r in right)
    drawn = [squeeze(line.text) for line in sheet.lines[1:]]  # left column first, line by line
    read = [squeeze(line.text) for region in regions[1:] for line in region.lines]
    assert read == drawn
    assert "4594 employees" in region_with(doc, "4594").text.replace("\n", " ")


def test_form_keys_and_values_share_a_row(claim_form):
    _, doc = claim_form
    rows = [row for region in doc.regions() for row in region.text.splitlines()]
    assert rows[1:] == [
        "Claimant name: Ines Alvarez",
        "Date of birth: 17 March 2019",
        "Policy number: P779344",
        "Claim amount: $5,512.69",
    ]
    assert doc.pages[0].regions[0].markdown == "# Insurance claim form APP-96452"


def test_table_becomes_a_markdown_table_with_the_right_cells(invoice):
    _, doc = invoice
    (table,) = [region for region in doc.regions() if region.label == "table"]
    assert table.markdown.splitlines() == [
        "| Item | Qty | Unit price | Amount |",
        "| --- | --- | --- | --- |",
        "| Drill bit 6mm | 25 | $28.60 | $715.00 |",
        "| Fuse 10A | 120 | $4.55 | $546.00 |",
        "| Cable reel 50m | 7 | $169.64 | $1,187.50 |",
    ]
    assert table.text.splitlines()[1] == "Drill bit 6mm | 25 | $28.60 | $715.00"
    assert table.bbox.coverage_of(BBox(150, 600, 1320, 810)) >= 0.95  # the drawn cells


def test_invoice_reads_top_to_bottom_with_totals_in_one_row(invoice):
    _, doc = invoice
    labels = [(region.label, region.text.splitlines()[0]) for region in doc.regions()]
    assert [label for label, _ in labels] == ["title", "text", "table", "text", "text"]
    assert labels[1][1] == "Seller: Orchid Logistics Ltd."
    assert labels[3][1] == "Total due: $2,448.50"
    assert labels[4][1].startswith("Questions about this invoice")


def test_chinese_receipt_is_read_with_items_beside_their_prices(receipt):
    _, doc = receipt
    text = "\n".join(region.text for region in doc.regions())
    assert doc.pages[0].regions[0].label == "title"
    assert doc.pages[0].regions[0].markdown == "# 华联超市（天河店）"
    for row in ["小票号：044571", "双汇火腿肠 ¥36.36", "康师傅红烧牛肉面 ¥92.40", "合计 ¥165.04"]:
        assert row in text.splitlines()
    assert "联系人：徐明" in text and "13884707867" in text
    # "合计" is a key beside its amount, not a heading
    assert region_with(doc, "合计").label == "text"


# --- assembling lines and layout boxes (no OCR) -----------------------------------------


def line(text: str, x0: int, y0: int, x1: int, y1: int) -> Line:
    return Line(text=text, bbox=BBox(x0, y0, x1, y1), confidence=0.9)


def test_lines_go_to_the_layout_region_that_covers_them_and_the_rest_form_text():
    lines = [
        line("Report", 100, 100, 400, 150),
        line("Name", 100, 300, 250, 340),
        line("Qty", 500, 300, 600, 340),
        line("Bolt", 100, 360, 250, 400),
        line("4", 500, 360, 530, 400),
        line("Signed by the auditor.", 100, 600, 700, 640),
    ]
    layout = [LayoutBox("title", BBox(90, 90, 410, 160), 0.9)]
    layout.append(LayoutBox("table", BBox(90, 290, 610, 410), 0.9))

    blocks = build_blocks(lines, layout, 1000, 1400, "embedded")

    assert [(block.label, block.text) for block in blocks] == [
        ("title", "Report"),
        ("table", "Name | Qty\nBolt | 4"),
        ("text", "Signed by the auditor."),
    ]
    assert blocks[1].markdown == "| Name | Qty |\n| --- | --- |\n| Bolt | 4 |"
    assert blocks[1].bbox == BBox(100, 300, 600, 400)  # around its lines, not the layout box
    assert [len(block.lines) for block in blocks] == [1, 4, 1]
    assert blocks[1].confidence == 0.9


def test_a_layout_box_reported_twice_keeps_exactly_one():
    """Of two identical boxes the first owns the lines (dropping both lost the title)."""
    box = BBox(0, 0, 100, 100)
    twice = [LayoutBox("text", box, 0.9), LayoutBox("text", box, 0.9)]
    (kept,) = drop_nested(twice, lambda outer, inner: outer.label == inner.label)
    assert kept is twice[0]
    (kept,) = drop_duplicates(twice)  # GLM's region plan: the region is read once, not twice
    assert kept is twice[0]

    lines = [line("Report", 100, 100, 400, 150), line("Signed by the auditor.", 100, 600, 700, 640)]
    title = BBox(90, 90, 410, 160)
    layout = [LayoutBox("title", title, 0.9), LayoutBox("title", title, 0.9)]
    blocks = build_blocks(lines, layout, 1000, 1400, "embedded")
    assert [(block.label, block.text) for block in blocks] == [
        ("title", "Report"),
        ("text", "Signed by the auditor."),
    ]


def test_a_layout_title_beside_a_value_is_a_key_not_a_heading():
    lines = [line("Total", 100, 100, 200, 140), line("$12.00", 600, 100, 720, 140)]
    layout = [LayoutBox("title", BBox(90, 90, 210, 150), 0.6)]
    blocks = build_blocks(lines, layout, 1000, 1400, "embedded")
    assert [(block.label, block.text) for block in blocks] == [("text", "Total $12.00")]


def test_columns_of_running_text_are_read_one_after_the_other():
    def column(name: str, x0: int) -> list[Line]:
        return [
            line(f"{name} {i} budget review", x0, 200 + 50 * i, x0 + 600, 240 + 50 * i)
            for i in range(6)
        ]

    blocks = build_blocks(column("right", 800) + column("left", 100), [], 1500, 2000, "embedded")
    read = [ln.text.split()[:2] for block in blocks for ln in block.lines]
    assert read == [["left", str(i)] for i in range(6)] + [["right", str(i)] for i in range(6)]
