"""Answers from scanned forms and receipts: pages rendered here, read by the default OCR,
indexed, and asked about one document at a time (a `source` filter), as a user asks about the
document open in front of them.

The answer is the value, not its row; the citation's line box covers the value's ink and not
the key beside it. Nothing here depends on an OCR engine's exact strings: answers are
compared after dropping spaces, boxes with a tolerance.
"""

from __future__ import annotations

import re
import unicodedata
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


def spec_sheet() -> Page:
    """A product specification: keys left, numbers and their units as cells of their own,
    a second column of the same values, a header row over a row of data, a list."""
    page = Page(1240, 1120)
    page.write(80, 40, "PRODUCT SPECIFICATION", size=40, bold=True)
    # a row whose unit sits a little low, right above the next row
    page.write(80, 130, "Overall Length", size=26)
    page.value(470, 130, "84", size=26)
    page.write(520, 142, "mm", size=26)
    page.write(578, 130, "Total Wt.", size=26)
    page.write(850, 130, "974", size=26)
    page.write(910, 142, "mg", size=26)
    page.write(80, 160, "Rod Length", size=26)
    page.value(470, 160, "64", size=26)
    page.write(520, 160, "mm", size=26)
    # a number, its unit far off; two columns of one value
    page.write(80, 230, "Filter Length", size=26)
    page.write(470, 230, "27", size=26)
    page.write(560, 230, "mm", size=26)
    page.write(730, 230, "27 mm", size=26)
    page.write(80, 262, "Tipping Length", size=26)
    page.write(470, 262, "32", size=26)
    page.write(560, 262, "mm", size=26)
    page.write(730, 262, "32 mm", size=26)
    page.write(80, 300, "Roll Width", size=26)
    page.write(470, 300, "120", size=26)
    page.write(660, 300, "mm", size=26)
    # a key over two long lines, its value beside the second
    page.write(80, 350, "Perforation Type", size=26)
    page.write(92, 380, "and No. of lines", size=26)
    page.value(470, 380, "None", size=26)
    # a header row over a row of data
    columns = [("BLEND", "OGS"), ("CASING", "OGS"), ("RECASING", "OGS"), ("FLAVOR", "NONE")]
    for x, (head, data) in zip((80, 300, 520, 760), columns, strict=True):
        page.write(x, 470, head, size=26, bold=True)
        page.write(x, 505, data, size=26)
    page.write(80, 540, "Samples were kept at 20 C for two days before the tests.", size=26)
    # a list of names under each other
    page.write(80, 600, "cc:", size=26)
    page.write(200, 600, "MRA File", size=26)
    page.write(200, 630, "N. W. Kremer", size=26)
    page.write(200, 660, "Address 2", size=26)
    # a value over two lines, a speck of dirt after the first
    page.write(80, 820, "Location", size=26)
    page.write(240, 820, "CHICAGO, DALLAS, INDIANAPOLIS, LOS ANGELES", size=26)
    page.write(905, 822, "a", size=13)
    page.write(240, 852, "MEMPHIS, PHILADELPHIA", size=26)
    # a value that runs on to a line holding a note with its own "Key:"
    page.write(80, 930, "Suggestion:", size=26)
    page.write(260, 930, "Discontinue the coal retention analyses on all", size=26)
    page.write(260, 962, "submitted samples. (Note: few licensees test it)", size=26)
    # a value over two lines, the first ending with a comma
    page.write(80, 1020, "Prepared by:", size=26)
    page.write(260, 1020, "Director of Technical Operations,", size=26)
    page.write(260, 1052, "Brown & Williamson International", size=26)
    # a signature written above its line, a date further on the line
    page.write(80, 730, "Approved by:", size=26)
    page.value(300, 703, "L. E. Gravely", size=30)
    page.write(700, 730, "Date: 5/3/90", size=26)
    return page


def chinese_application() -> Page:
    """A Chinese application form: keys over several lines or spread over their box, values
    split into cells by the OCR, a family table whose phone column holds two numbers."""
    page = Page(1240, 1440)
    page.write(400, 40, "报名登记表", size=44)
    # a key over three short lines, its value beside it
    page.write(80, 140, "身体状", size=30)
    page.write(80, 176, "况及以", size=30)
    page.write(80, 212, "往病史", size=30)
    page.value(300, 176, "健康", size=30)
    # a key whose characters are spread over its box
    page.write(700, 176, "民", size=30)
    page.write(820, 176, "族", size=30)
    page.value(960, 176, "汉族", size=30)
    page.pair(80, 300, "传真：", "（+86）431 81032022", size=30)
    page.write(80, 360, "地址：吉林省长春市柳莺西路666号邮编：130122", size=30)
    page.write(80, 420, "申请有效期限", size=30)
    page.value(360, 420, "8", size=30)
    page.write(520, 420, "个月（有关证明请附后）", size=30)
    page.write(80, 480, "日期：2020 年 6 月 8", size=30)
    page.write(460, 480, "日", size=30)
    # a header row over a family's rows: the phone column holds two numbers
    rows = [
        ["关系", "姓名", "联系电话"],
        ["父亲", "巴图", "13081511161"],
        ["母亲", "柳灵", "18991917402"],
    ]
    page.table(80, 560, rows, [240, 260, 400], size=30, pitch=56)
    # a note right under the table, across its columns
    page.write(80, 740, "注：以上内容由本人填写，如有虚假，后果由本人承担。", size=30)
    # a total written under its key, currency and number read as two cells
    page.write(80, 820, "展位数量", size=30)
    page.write(360, 820, "总额", size=30)
    page.write(340, 870, "RMB", size=30)
    page.write(420, 862, "40000", size=30)
    # a key spread over its box, its value read with its second character
    page.write(80, 960, "籍", size=30)
    page.write(200, 960, "贯", size=30)
    page.value(236, 960, "浙江杭州", size=30)
    # a paragraph under its key, its first line indented by two characters
    page.write(80, 1040, "本人承诺：", size=30)
    page.write(160, 1090, "此表所填信息真实可靠，如有虚假，本人愿意承担由此产生的", size=30)
    page.write(80, 1136, "全部法律责任。", size=30)
    # a value that fills its line, the next field's name written under it
    page.write(80, 1210, "备注", size=30)
    page.write(260, 1210, "申请人于本月迁入本市，材料齐全，同意受理", size=30)
    page.write(260, 1256, "经办部门", size=30)
    # a key whose value is written on the next line, past the key's end
    page.write(80, 1330, "办理情况：", size=30)
    page.write(290, 1378, "准许办理", size=30)
    return page


PAGES = {
    "fax.png": fax_cover(),
    "spec.png": spec_sheet(),
    "application_zh.png": chinese_application(),
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


def field(index: Index, file: str, name: str) -> str:
    """The answer to "the value of the field NAME", without its markers."""
    question = (
        f"“{name}”的内容是什么？" if has_cjk(name) else f'What is the value of the field "{name}"?'
    )
    return value_of(ask(index, file, question))


def test_a_line_printed_a_little_low_does_not_join_the_next_row_to_its_own(index):
    # "84 | mm" where "mm" sits low, right above "Rod Length | 64 | mm"
    assert key(field(index, "spec.png", "Rod Length")) == key("64 mm")
    assert key(field(index, "spec.png", "Overall Length")) == key("84 mm")  # not "Total Wt."


def test_a_number_and_its_unit_in_cells_of_their_own_are_one_value(index):
    assert key(field(index, "spec.png", "Roll Width")) == key("120 mm")  # a unit far off


def test_a_field_with_a_value_in_each_column_gives_both(index):
    assert key(field(index, "spec.png", "Filter Length")) == key("27 mm 27 mm")


def test_a_key_over_two_long_lines_is_found(index):
    assert key(field(index, "spec.png", "Perforation Type and No. of lines")) == "none"


def test_a_header_over_a_row_of_data_gives_the_data_not_the_next_header(index):
    answer = ask(index, "spec.png", 'What is the value of the field "CASING"?')

    under = next(d.bbox for d in PAGES["spec.png"].lines if d.text == "OGS" and d.bbox.x0 >= 300)
    assert key(value_of(answer)) == "ogs"
    assert_cites_the_value(answer, under)


def test_a_list_of_names_under_each_other_is_one_value_up_to_a_label(index):
    assert key(field(index, "spec.png", "cc")) == key("MRA File N. W. Kremer")


def test_a_speck_after_a_line_does_not_end_the_value_that_runs_on_below(index):
    assert key(field(index, "spec.png", "Location")) == key(
        "CHICAGO, DALLAS, INDIANAPOLIS, LOS ANGELES MEMPHIS, PHILADELPHIA"
    )


def test_a_key_later_on_a_line_does_not_take_the_sentence_before_it(index):
    assert key(field(index, "spec.png", "Suggestion")) == key(
        "Discontinue the coal retention analyses on all submitted samples."
    )


def test_a_comma_that_ends_a_line_the_value_runs_on_from_is_kept(index):
    assert key(field(index, "spec.png", "Prepared by")) == key(
        "Director of Technical Operations, Brown & Williamson International"
    )


def test_a_signature_written_above_its_line_is_the_value_not_the_date_after_it(index):
    assert key(field(index, "spec.png", "Approved by")) == key("L. E. Gravely")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("身体状况及以往病史", "健康"),  # a key over three short lines
        ("民族", "汉族"),  # a key spread over its box: "民 | 族"
        ("传真", "(+86)43181032022"),  # full-width brackets around the country code
        ("地址", "吉林省长春市柳莺西路666号"),  # "…666号邮编：": 号 ends the address
        ("申请有效期限", "8个月(有关证明请附后)"),  # a unit that starts the next cell
        ("日期", "2020年6月8日"),  # a date the OCR read as two cells
        ("联系电话", "13081511161 18991917402"),  # a column header: the column's numbers
        ("总额", "RMB40000"),  # under its key, currency and amount as two cells
        ("籍贯", "浙江杭州"),  # "籍 | 贯浙江杭州": the value read with the key's last character
        ("本人承诺", "此表所填信息真实可靠,如有虚假,本人愿意承担由此产生的全部法律责任。"),
        ("备注", "申请人于本月迁入本市,材料齐全,同意受理"),  # not the label under it
        ("办理情况", "准许办理"),  # on the next line, past the key's end
    ],
    ids=[
        "three-lines",
        "spread",
        "full-width",
        "number-unit",
        "unit-cell",
        "split-date",
        "column",
        "under",
        "spread-inline",
        "indented",
        "label-under",
        "next-line",
    ],
)
def test_chinese_application_fields_read_as_the_form_lays_them_out(index, name, value):
    assert key(unicodedata.normalize("NFKC", field(index, "application_zh.png", name))) == key(
        value
    )


def test_a_value_read_with_a_spread_key_cites_only_its_own_characters(index):
    answer = ask(index, "application_zh.png", "“籍贯”的内容是什么？")

    value = PAGES["application_zh.png"].values["浙江杭州"]
    (line,) = [line for citation in answer.citations for line in citation.lines]
    assert abs(line.bbox.x0 - value.x0) <= 12 and abs(line.bbox.x1 - value.x1) <= 12
