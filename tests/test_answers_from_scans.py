"""Answers from scanned forms and receipts: pages rendered here, read by the default OCR,
indexed, and asked about one document at a time (a `source` filter), as a user asks about the
document open in front of them.

The answer is the value, not its row; the citation's line box covers the value's ink and not
the key beside it. Nothing here depends on an OCR engine's exact strings: answers are
compared after dropping spaces, boxes with a tolerance.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import ImageFont
from seams import open_index

from scanrag.config import Settings
from scanrag.ingest.model import BBox
from scanrag.retrieval.answer import NOT_FOUND, Answer
from scanrag.retrieval.index import Index
from scanrag.testing import Sheet, font, has_cjk

pytestmark = pytest.mark.slow  # OCRs six scans


class Page(Sheet):
    """A sheet that also remembers the ink box of each value it was asked to mark."""

    def __init__(self, width: int, height: int) -> None:
        super().__init__(width, height)
        self.values: dict[str, BBox] = {}

    def pair(self, x: int, y: int, key: str, value: str, size: int = 32) -> None:
        """Write "key value" as one line and remember where the value's ink is."""
        face: ImageFont.FreeTypeFont = font(size, cjk=has_cjk(key + value))
        self.write(x, y, f"{key}{value}", size)
        left = x + self.draw.textlength(key, font=face)
        self.values[value] = BBox(*self.draw.textbbox((left, y), value, font=face))

    def value(self, x: int, y: int, value: str, size: int = 32) -> None:
        self.values[value] = self.write(x, y, value, size)


def fax_cover() -> Page:
    page = Page(1240, 900)
    page.write(80, 60, "FAX TRANSMITTAL", size=48, bold=True)
    page.pair(80, 170, "TO: ", "George Baroody")
    page.pair(700, 170, "FROM: ", "Maria Kessler")
    page.pair(80, 240, "RE: ", "Spring promotion budget")
    page.pair(700, 240, "DATE: ", "2-Dec-97")
    page.pair(80, 310, "CC: ", "Legal department")
    # two pairs on one line: one OCR line holds both
    face = font(32)
    line = "FAX NUMBER: (336) 335-7392 PHONE NUMBER: (336) 335-7363"
    page.write(80, 380, line)
    for value in ("(336) 335-7392", "(336) 335-7363"):
        left = 80 + page.draw.textlength(line[: line.rindex(value)], font=face)
        page.values[value] = BBox(*page.draw.textbbox((left, 380), value, font=face))
    # column headers over their values
    page.write(80, 470, "Customer Name", bold=True)
    page.write(620, 470, "Account No.", bold=True)
    page.value(80, 520, "Harbor Freight")
    page.value(620, 520, "HF-44172")
    page.pair(80, 600, "Payment: ", "[X] Cash   [ ] Card")
    page.pair(80, 680, "Comments: ", "the shipment arrived two days late and the cartons were")
    page.value(80, 730, "damaged, please issue a credit note before the end of the month.")
    return page


def receipt(shop: str, when: str, rows: list[tuple[str, str]]) -> Page:
    """A shop receipt: the shop's name and registration number at the top, a date line,
    items, then subtotal / tax / total / cash / change rows, keys left and amounts right."""
    page = Page(720, 1100)
    page.value(60, 50, shop, size=34)
    page.write(60, 100, "(1234567-K)", size=26)
    page.write(60, 140, "NO 12 JALAN MERANTI, 81300 JOHOR", size=26)
    page.write(60, 220, "TAX INVOICE", size=30)
    page.value(60, 280, when, size=28)
    page.write(470, 280, "CASHIER: 03", size=28)
    for i, (key, amount) in enumerate(rows):
        page.write(60, 360 + i * 50, key, size=28)
        page.value(500, 360 + i * 50, amount, size=28)
    page.write(60, 380 + len(rows) * 50, "THANK YOU PLEASE COME AGAIN", size=26)
    return page


RECEIPTS = {
    "receipt_rm.png": receipt(
        "KEDAI RUNCIT MAJU SDN BHD",
        "12-01-19 14:32",
        [
            ("MILO 1KG", "24.50"),
            ("EGGS 30PCS", "33.50"),
            ("Sub-total", "58.00"),
            ("GST 6%", "2.30"),
            ("TOTAL", "60.30"),
            ("CASH", "100.00"),
            ("CHANGE", "39.70"),
        ],
    ),
    "receipt_usd.png": receipt(
        "HARBOR HARDWARE LLC",
        "Date: Jan 12 2019",
        [
            ("Drill", "$1,180.00"),
            ("Subtotal", "$1,180.00"),
            ("Tax", "$54.50"),
            ("Amount due", "$1,234.50"),
            ("Cash", "$1,300.00"),
        ],
    ),
    "receipt_dot.png": receipt(
        "BAKERY LIMITED",
        "12.01.2019 09:15",
        [("Bread", "RM 3.50"), ("Rounding", "RM 0.00"), ("Grand Total", "RM 3.50")],
    ),
}


def chinese_form() -> Page:
    page = Page(1240, 760)
    page.write(400, 50, "入职登记表", size=48)
    page.pair(80, 160, "姓名：", "王小明")
    page.pair(600, 160, "性别：", "男")
    page.pair(80, 230, "出生日期：", "1983/6/8")
    page.pair(600, 230, "联系电话：", "13912345678")
    page.pair(80, 300, "家庭住址：", "浙江省杭州市西湖区文三路90号")
    rows = [
        ["毕业院校", "浙江大学", "学历", "本科"],
        ["入职日期", "2019年1月12日", "部门", "财务部"],
    ]
    page.table(80, 380, rows, [260, 320, 160, 240])
    page.pair(80, 560, "合计金额：", "165.04元")
    return page


def chinese_receipt() -> Page:
    page = Page(900, 900)
    page.value(60, 60, "华联超市有限公司", size=40)
    page.pair(60, 150, "日期：", "2019年1月12日")
    for i, (item, price) in enumerate([("双汇火腿肠", "¥36.36"), ("清风抽纸3包", "¥36.28")]):
        page.write(60, 230 + i * 60, item)
        page.value(620, 230 + i * 60, price)
    page.write(60, 380, "小计")
    page.value(620, 380, "¥72.64")
    page.write(60, 440, "实付")
    page.value(620, 440, "¥72.64")
    return page


def annual_report() -> Page:
    """A report whose first line names it by its reference at body size (not a title)."""
    page = Page(1240, 700)
    page.write(80, 60, "Annual report 2023 of Westbrook Traders Ltd. (ref R40417)")
    lines = [
        "Our workforce grew to 812 employees this year, and the",
        "departments reviewed their supplier contracts twice.",
        "The board thanks every customer for a record season.",
    ]
    for i, line in enumerate(lines):
        page.write(80, 160 + i * 50, line)
    return page


PAGES = {
    "fax.png": fax_cover(),
    "report.png": annual_report(),
    **RECEIPTS,
    "form_zh.png": chinese_form(),
    "receipt_zh.png": chinese_receipt(),
}


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Iterator[Index]:
    folder = tmp_path_factory.mktemp("scans")
    for name, page in PAGES.items():
        page.image(noise=4, seed=len(name)).save(folder / name)
    with open_index(Settings(), data_dir=tmp_path_factory.mktemp("data")) as opened:
        report = opened.ingest([folder])
        assert not report.errors
        yield opened


def ask(index: Index, file: str, question: str) -> Answer:
    return index.ask(question, filters={"source": file})


def key(text: str) -> str:
    """Compared without spaces and case: OCR drops and adds spaces."""
    return re.sub(r"\s+", "", text).lower()


def value_of(answer: Answer) -> str:
    """The answer without its citation markers."""
    return re.sub(r"\s*(\[\d+\])+$", "", answer.answer)


def assert_cites_the_value(answer: Answer, value_box: BBox) -> None:
    """A cited line box covers most of the value's ink and is not much wider than it (the
    key before it on the same line is not highlighted)."""
    boxes = [line.bbox for citation in answer.citations for line in citation.lines]
    assert any(
        box.coverage_of(value_box) >= 0.8 and box.width <= 1.35 * value_box.width + 20
        for box in boxes
    ), (boxes, value_box)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("TO", "George Baroody"),
        ("FROM", "Maria Kessler"),
        ("RE", "Spring promotion budget"),
        ("CC", "Legal department"),
        ("DATE", "2-Dec-97"),
    ],
)
def test_short_common_keys_of_a_fax_cover_give_their_values(index, field, value):
    answer = ask(index, "fax.png", f'What is the value of the field "{field}"?')

    assert key(value_of(answer)) == key(value)
    assert_cites_the_value(answer, PAGES["fax.png"].values[value])


def test_two_pairs_on_one_ocr_line_each_give_their_own_value(index):
    fax = PAGES["fax.png"]
    phone = ask(index, "fax.png", "What is the phone number?")
    fax_number = ask(index, "fax.png", 'What is the value of the field "FAX NUMBER"?')

    assert key(value_of(phone)) == key("(336) 335-7363")
    assert key(value_of(fax_number)) == key("(336) 335-7392")
    assert_cites_the_value(phone, fax.values["(336) 335-7363"])
    assert_cites_the_value(fax_number, fax.values["(336) 335-7392"])


def test_a_column_header_gives_the_value_written_under_it(index):
    name = ask(index, "fax.png", 'What is the value of the field "Customer Name"?')
    number = ask(index, "fax.png", "Account No.?")

    assert key(value_of(name)) == key("Harbor Freight")
    assert key(value_of(number)) == key("HF-44172")
    assert_cites_the_value(name, PAGES["fax.png"].values["Harbor Freight"])


def test_check_box_options_are_the_value_of_their_key(index):
    answer = ask(index, "fax.png", 'What is the value of the field "Payment"?')

    assert "cash" in key(value_of(answer)) and "card" in key(value_of(answer))
    assert "payment" not in key(value_of(answer))


def test_a_value_that_runs_over_two_lines_is_answered_whole(index):
    answer = ask(index, "fax.png", 'What is the value of the field "Comments"?')

    assert key(value_of(answer)).startswith(key("the shipment arrived"))
    assert key(value_of(answer)).endswith(key("before the end of the month."))
    assert len([line for c in answer.citations for line in c.lines]) == 2


@pytest.mark.parametrize(
    ("file", "total", "date"),
    [
        ("receipt_rm.png", "60.30", "12-01-19"),
        ("receipt_usd.png", "$1,234.50", "Jan 12 2019"),
        ("receipt_dot.png", "RM 3.50", "12.01.2019"),
    ],
)
def test_a_receipt_gives_its_total_date_and_issuing_company(index, file, total, date):
    page = PAGES[file]
    total_answer = ask(index, file, "What is the total amount?")
    date_answer = ask(index, file, "What is the date of the receipt?")
    company = ask(index, file, "Which company issued this receipt?")

    # the total, not the subtotal, the tax, the cash given or the change
    assert key(total) in key(value_of(total_answer))
    assert_cites_the_value(total_answer, page.values[total])
    assert key(value_of(date_answer)) == key(date)
    shop = page.lines[0].text
    assert key(value_of(company)) == key(shop)  # without the registration number under it
    assert_cites_the_value(company, page.values[shop])


def test_chinese_form_fields_are_answered_with_their_values(index):
    form = PAGES["form_zh.png"]
    cases = {
        "“出生日期”的内容是什么？": "1983/6/8",
        "姓名是什么？": "王小明",
        "联系电话是多少？": "13912345678",
        "家庭住址是什么？": "浙江省杭州市西湖区文三路90号",
        "入职日期是哪天？": "2019年1月12日",  # a table cell right of its key
        "“学历”的内容是什么？": "本科",
        "合计金额是多少？": "165.04元",
    }
    for question, value in cases.items():
        answer = ask(index, "form_zh.png", question)
        assert key(value_of(answer)) == key(value), question
    birthday = ask(index, "form_zh.png", "“出生日期”的内容是什么？")
    assert_cites_the_value(birthday, form.values["1983/6/8"])


def test_a_chinese_receipt_gives_what_was_paid_and_its_date(index):
    paid = ask(index, "receipt_zh.png", "实付是多少？")
    date = ask(index, "receipt_zh.png", "日期是哪天？")
    shop = ask(index, "receipt_zh.png", "这张小票是哪家公司开的？")

    assert key(value_of(paid)) == key("¥72.64")
    assert key(value_of(date)) == key("2019年1月12日")
    assert key(value_of(shop)) == key("华联超市有限公司")


@pytest.mark.parametrize(
    ("file", "question"),
    [
        ("fax.png", 'What is the value of the field "Invoice number"?'),
        ("receipt_rm.png", 'What is the value of the field "Table No."?'),
        ("form_zh.png", "“婚姻状况”的内容是什么？"),
    ],
)
def test_a_field_that_is_not_on_the_page_is_not_found(index, file, question):
    answer = ask(index, file, question)

    assert answer.answer in NOT_FOUND.values() and answer.citations == []


def test_line_boxes_are_cut_to_the_value_and_region_boxes_stay_whole(index):
    answer = ask(index, "fax.png", 'What is the value of the field "TO"?')

    (citation,) = answer.citations
    (line,) = citation.lines
    region = citation.bbox
    assert region.coverage_of(line.bbox) == 1.0 and region.width > line.bbox.width
    drawn = next(d.bbox for d in PAGES["fax.png"].lines if d.text.startswith("TO: "))
    assert line.bbox.x0 > drawn.x0 + 0.1 * drawn.width  # "TO: " is left out
    assert Path(citation.source).name == "fax.png"


def test_a_document_reference_in_the_question_picks_the_document_not_its_title_line(index):
    answer = ask(index, "report.png", "How many employees are reported in report R40417?")
    assert "812" in value_of(answer)
