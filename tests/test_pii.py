"""With `mask_pii` on, answers, citations, search results, extracted values and the document's
Markdown and JSON mask Chinese resident ID numbers (checksum-valid), bank card numbers
(Luhn-valid) and phone numbers; other numbers — amounts, dates, invoice and order numbers —
are left as they are. Off by default."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from seams import app_for

from scanrag.config import Settings
from scanrag.retrieval.pii import luhn, mask_pii, valid_resident_id
from scanrag.testing import text_pdf

ID = "11010519491231002X"  # checksum X
ID_BAD = "110105194912310021"  # same digits, wrong check character
CARD = "6222 0212 3456 7894"  # Luhn-valid
CARD_BAD = "6222 0212 3456 7890"  # fails Luhn: an order number, say
VISA = "4111111111111111"


def test_the_checks_themselves():
    assert valid_resident_id(ID) and valid_resident_id(ID.lower())
    assert not valid_resident_id(ID_BAD)
    assert luhn(CARD.replace(" ", "")) and luhn(VISA)
    assert not luhn(CARD_BAD.replace(" ", ""))


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (f"身份证号：{ID}", "身份证号：110105********002X"),
        (f"ID {ID_BAD} (bad checksum)", f"ID {ID_BAD} (bad checksum)"),
        (f"卡号 {CARD}", "卡号 **** **** **** 7894"),
        (f"card {VISA}.", "card ************1111."),
        (f"order {CARD_BAD}", f"order {CARD_BAD}"),  # not Luhn: not a card
        ("order 6222021234567890", "order 6222021234567890"),
        ("联系电话：13884707867", "联系电话：138****7867"),
        ("mobile 138-8470-7867", "mobile 138-****-7867"),
        ("+86 138 8470 7867", "+86 138 **** 7867"),
        ("8613884707867", "86138****7867"),
        ("office 010-12345678", "office 010-****5678"),
        ("(021) 6123 4567", "(021) **** 4567"),
        ("London +44 20 7946 0958", "London +44 ** **** 0958"),
        ("+1 (555) 123-4567", "+1 (***) ***-4567"),
        # not personal numbers
        ("Total due: $2,448.50", "Total due: $2,448.50"),
        ("Date of issue: 2024-03-15", "Date of issue: 2024-03-15"),
        ("INVOICE INV-1001, 小票号：044571", "INVOICE INV-1001, 小票号：044571"),
        ("12345678901", "12345678901"),  # 11 digits, not 1[3-9]...
        ("138847078671", "138847078671"),  # 12 digits: no mobile inside a longer number
        ("workforce grew to 4594 employees", "workforce grew to 4594 employees"),
    ],
)
def test_what_is_masked_and_what_is_not(text, masked):
    assert mask_pii(text) == masked


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789 -+()Xx联系电话:,.$\n"), max_size=80))
def test_masking_keeps_the_length_changes_only_digits_and_is_stable(text):
    masked = mask_pii(text)
    assert len(masked) == len(text)
    assert all(
        a == b or (b == "*" and (a.isdigit() or a in "Xx"))
        for a, b in zip(text, masked, strict=True)
    )
    assert mask_pii(masked) == masked


# --- through the service ---------------------------------------------------------------------

LINES = [
    "客户资料 Customer record",
    f"姓名：徐明  身份证号：{ID}",
    "联系电话：13884707867",
    f"银行卡号：{CARD}",
    f"订单号：{CARD_BAD}",
    "合计金额：¥165.04",
]


@pytest.fixture(scope="module")
def pdf(tmp_path_factory):
    path = tmp_path_factory.mktemp("pii") / "record.pdf"
    return text_pdf([[(72, 80 + 24 * i, line, 12) for i, line in enumerate(LINES)]], path)


def everything(client: TestClient, pdf) -> str:
    """All the text the API gives about the record, as one string."""
    upload = client.post(
        "/v1/documents?wait=true", files={"files": ("record.pdf", pdf.read_bytes())}
    )
    assert upload.json()["job"]["report"]["added"] == 1, upload.text
    (doc,) = client.get("/v1/documents").json()
    doc_id = doc["doc_id"]
    texts = []
    for question in ("联系电话是多少？", "身份证号是多少？", "银行卡号是多少？"):
        texts.append(client.post("/v1/query", json={"question": question}).text)
        stream = client.post("/v1/query", json={"question": question, "stream": True})
        texts.append(stream.text)
    texts.append(client.post("/v1/search", json={"query": "联系电话 身份证号"}).text)
    fields = ["联系电话", "身份证号", "银行卡号", "订单号"]
    extract = client.post("/v1/extract", json={"doc_id": doc_id, "fields": fields})
    texts.append(extract.text)
    texts.append(client.get(f"/v1/documents/{doc_id}/markdown").text)
    texts.append(client.get(f"/v1/documents/{doc_id}/json").text)
    return "\n".join(texts)


def test_with_mask_pii_no_id_card_or_phone_leaves_the_api(tmp_path, pdf):
    settings_ = Settings(data_dir=tmp_path, mask_pii=True, parser="pdf-text")
    with TestClient(app_for(settings_)) as client:
        out = everything(client, pdf)
        extract = client.post(
            "/v1/extract",
            json={
                "doc_id": client.get("/v1/documents").json()[0]["doc_id"],
                "fields": ["联系电话"],
            },
        ).json()
    for secret in (ID, ID[6:14], "13884707867", "84707867", CARD, CARD.replace(" ", "")):
        assert secret not in out
    assert "138****7867" in out and "110105********002X" in out
    assert "**** **** **** 7894" in out
    assert CARD_BAD in out and "¥165.04" in out  # not personal: left as it is
    assert extract["fields"][0]["value"] == "138****7867"
    assert all("138****7867" in c["text"] for c in extract["fields"][0]["citations"])


def test_without_mask_pii_the_numbers_are_returned_as_written(tmp_path, pdf):
    with TestClient(app_for(Settings(data_dir=tmp_path, parser="pdf-text"))) as client:
        out = everything(client, pdf)
    assert "13884707867" in out and ID in out and CARD in out
    assert not re.search(r"\d\*{4}\d", out)
