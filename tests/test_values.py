"""Value types as real documents write them, and what questions ask for."""

from __future__ import annotations

import pytest

from scanrag.retrieval.questions import understand
from scanrag.retrieval.values import spans


def found(kind: str, text: str) -> list[str]:
    return [text[start:end] for start, end in spans(kind, text)]


@pytest.mark.parametrize(
    ("text", "date"),
    [
        ("12-01-19", "12-01-19"),
        ("Date: 18/01/2018 20:27", "18/01/2018"),
        ("23-01-2019", "23-01-2019"),
        ("2-Dec-97", "2-Dec-97"),
        ("12.01.2019", "12.01.2019"),
        ("Jan 12 2019", "Jan 12 2019"),
        ("March 27, 1984", "March 27, 1984"),
        ("2019年1月12日", "2019年1月12日"),
        ("2018 年 9 月 15 日", "2018 年 9 月 15 日"),
        ("2000-06-16", "2000-06-16"),
        ("20180428/191204", "20180428"),
        ("16-04-201814:51", "16-04-2018"),  # the time glued on by OCR
        ("12-01-1914:32", "12-01-19"),
    ],
)
def test_dates_in_every_common_order_and_separator(text, date):
    assert found("date", text) == [date]


@pytest.mark.parametrize("text", ["Total 1.65", "Tel 07-5208680", "INV-20190112X", "60.30"])
def test_amounts_codes_and_phone_numbers_are_not_dates(text):
    assert found("date", text) == []


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("TOTAL 60.30", "60.30"),
        ("RM 60.30", "RM 60.30"),
        ("RM5.00", "RM5.00"),
        ("$1,234.50", "$1,234.50"),
        ("¥165.04", "¥165.04"),
        ("合计：165.04元", "165.04元"),
        ("TOTAL:MYR 81.80", "MYR 81.80"),
        ("注册资本 50万元", "50万元"),
    ],
)
def test_amounts_with_or_without_a_currency(text, amount):
    assert found("money", text) == [amount]


def test_phone_numbers_with_their_punctuation_and_not_dates_or_amounts():
    line = "FAX NUMBER: (336) 335-7392 PHONE NUMBER: (336) 335-7363"
    assert found("phone", line) == ["(336) 335-7392", "(336) 335-7363"]
    assert found("phone", "Tel:07-5208680 手机 13912345678") == ["07-5208680", "13912345678"]
    assert found("phone", "18/04/2018 $1,234.50") == []


def test_two_mobile_numbers_in_one_text_are_two_and_a_country_code_in_brackets_is_kept():
    assert found("phone", "13081511161 18991917402") == ["13081511161", "18991917402"]
    assert found("phone", "传真：（+86）431 81032022") == ["（+86）431 81032022"]
    assert found("money", "合计：１６５．０４元") == ["１６５．０４元"]  # full-width digits


@pytest.mark.parametrize(
    ("question", "key", "kind"),
    [
        ('What is the value of the field "TO"?', "TO", None),
        ("What is the value of the field \"SUBMITTER'S SS#\"?", "SUBMITTER'S SS#", None),
        ("What is the value of the field 'Date'?", "Date", "date"),
        ("What is the total amount?", "total amount", "money"),
        ("What is the date of the receipt?", "date", "date"),
        ("Invoice No.?", "Invoice No.", "id"),
        ("When is payment due for invoice INV-17684?", "payment due", "date"),
        ("What phone number is given on claim form APP-73440?", "phone number", "phone"),
        ("“出生日期”的内容是什么？", "出生日期", "date"),
        ("合计是多少？", "合计", "money"),
        ("燃气安全检查通知的联系人是谁？", "联系人", "person"),
        ("Who wrote memorandum MEMO-87707?", None, "person"),
    ],
)
def test_a_question_names_its_field_and_the_kind_of_value(question, key, kind):
    query = understand(question)
    assert (query.key, query.kind) == (key, kind)


def test_receipt_fields_bring_their_usual_names_along():
    assert {"grand total", "amount due", "合计", "实付"} <= set(
        understand("What is the total?").names
    )
    assert "invoice no" in understand("What is the receipt number?").names
    assert understand("Which company issued this receipt?").issuer
    quoted = understand('What is the value of the field "Total"?')
    assert quoted.quoted and not quoted.total  # a quoted field is read as written
