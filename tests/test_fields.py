"""The geometry rules that read a form's values (retrieval/fields.py), on pages laid out
here line by line: each case is the smallest layout that shows one rule, with boxes in
page pixels as OCR gives them (line height 20)."""

from __future__ import annotations

from scanrag.ingest.layout import rows
from scanrag.ingest.model import BBox, Line
from scanrag.retrieval import fields
from scanrag.retrieval.extract import typed_spans
from scanrag.retrieval.results import HitLine, HitRegion, SearchHit

Layout = list[tuple[str, tuple[int, int, int, int]]]


def sheet_of(layout: Layout) -> fields.Sheet:
    """One page holding these OCR lines, as the answerer sees it after a search."""
    lines = [HitLine(text=text, bbox=BBox(*box), start=0, end=len(text)) for text, box in layout]
    region = HitRegion(
        region_id="d:p1:r0",
        page=1,
        bbox=BBox(0, 0, 1000, 1000),
        bbox_norm=BBox(0, 0, 1000, 1000),
        label="text",
        start=0,
        end=1,
        page_width=1000,
        page_height=1000,
        lines=lines,
    )
    hit = SearchHit(
        chunk_id="c", doc_id="d", source="form.png", score=1.0, text="", pages=[1], regions=[region]
    )
    (sheet,) = fields.sheets([hit])
    return sheet


def read(layout: Layout, key: str, lines: int = 1) -> list[str]:
    """The value candidates of the key written on `lines` lines."""
    sheet = sheet_of(layout)
    hits = [hit for hit in fields.find_key(sheet, key) if len(hit.cell.parts or (1,)) == lines]
    assert hits, f"key {key!r} not found"
    return [value.text for value in fields.values(sheet, hits[0])]


def test_a_key_on_three_lines_takes_the_line_after_its_end_not_its_own_second_line():
    layout = [
        ("身体状", (100, 100, 160, 120)),
        ("况及以", (100, 122, 160, 142)),
        ("往病史：", (100, 144, 180, 164)),
        ("良好", (190, 168, 230, 188)),
    ]
    assert read(layout, "身体状况及以往病史", lines=3) == ["良好"]


def test_a_value_after_a_key_on_two_lines_runs_on_to_the_line_under_it():
    layout = [
        ("Perforation Type", (100, 100, 260, 120)),
        ("and No. of lines: round holes set in", (100, 122, 460, 142)),
        ("two rows of twelve", (272, 144, 452, 164)),
    ]
    values = read(layout, "Perforation Type and No. of lines", lines=2)
    assert values[0] == "round holes set in two rows of twelve"


def test_a_word_after_a_number_is_no_unit_when_words_follow_it():
    layout = [("Qty: 12", (100, 100, 170, 120)), ("In Stock: yes", (190, 100, 320, 120))]
    assert read(layout, "Qty")[0] == "12"


def test_a_speck_between_a_number_and_its_unit_is_passed_over():
    layout = [
        ("Weight: 12", (100, 100, 200, 120)),
        (".", (206, 112, 209, 116)),
        ("kg", (230, 100, 250, 120)),
    ]
    assert read(layout, "Weight")[0] == "12 kg"


def test_a_line_with_no_height_does_not_join_a_row_far_from_it():
    lines = [
        Line(text="top", bbox=BBox(0, 500, 100, 520)),
        Line(text="flat", bbox=BBox(0, 1000, 100, 1000)),
    ]
    assert [[line.text for line in row] for row in rows(lines)] == [["top"], ["flat"]]


def test_numbers_in_separate_cells_are_not_read_as_one_phone_number():
    column = [
        ("120", (100, 100, 130, 120)),
        ("4500", (100, 130, 140, 150)),
        ("30", (100, 160, 120, 180)),
    ]
    sheet = sheet_of(column)
    spans = [fields.Span(cell, 0, len(cell.text)) for cell in sheet.cells]
    assert all(len(found) == 1 for found in typed_spans("phone", spans))


def test_a_key_glued_to_its_value_ends_where_the_case_changes():
    layout = [("Received byMark Ahearn", (100, 100, 320, 120))]
    assert read(layout, "Received by")[0] == "Mark Ahearn"


def test_a_decimal_point_before_a_value_is_kept():
    layout = [("This Change:", (100, 100, 220, 120)), (".08", (240, 100, 280, 120))]
    assert read(layout, "This Change")[0] == ".08"


def test_a_value_does_not_run_on_into_a_line_starting_with_a_required_fields_mark():
    layout = [
        ("*地址 Address 四川省成都市武侯区人民南路四段一号附近的一个小区", (100, 100, 900, 130)),
        ("*电话 Telephone number 13800001111", (100, 136, 700, 166)),
    ]
    assert read(layout, "*地址 Address")[0] == "四川省成都市武侯区人民南路四段一号附近的一个小区"
