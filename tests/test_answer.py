"""The extractive answerer finds the value that answers and cites exactly its characters;
`resolve` turns an LLM's `[n]` markers into citations and never invents one."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import INVOICE, R, hit, invoice_hits

from scanrag.api import urls
from scanrag.retrieval.answer import (
    NOT_FOUND,
    Citation,
    ExtractiveAnswerer,
    cite,
    extract_value,
    resolve,
)


def texts(citation: Citation) -> list[str]:
    return [line.text for line in citation.lines]


def test_a_key_in_one_region_and_its_value_in_the_next_on_its_row_answer_with_the_value():
    answer = ExtractiveAnswerer().answer(
        "What is the total due on invoice INV-1001?", invoice_hits()
    )

    assert answer.answer == "$2,448.50 [1]"
    (first,) = answer.citations
    assert first.region_id == f"{INVOICE}:p1:r3"  # the value's region, not the key's
    assert texts(first) == ["$2,448.50"]
    assert tuple(first.lines[0].bbox) == (1180, 880, 1330, 927)
    assert tuple(first.bbox) == (1180, 880, 1330, 927)  # the region's own box
    assert (first.page_width, first.page_height) == (1654, 2339)
    linked = urls.Citation.of(first)  # as the API hands it out
    assert linked.crop_url == f"/v1/regions/{INVOICE}:p1:r3/crop"
    assert linked.page_image_url == f"/v1/documents/{INVOICE}/pages/1/image"
    page = f"/v1/documents/{INVOICE}/pages/1/image"
    assert linked.highlight_url == f"{page}?highlight={INVOICE}:p1:r3"
    assert linked.model_dump(exclude=set(urls.links("", 0, ""))) == first.model_dump()


def test_a_line_item_question_is_answered_by_the_count_in_its_table_row():
    answer = ExtractiveAnswerer().answer(
        "How many units of Fuse 10A are on invoice INV-1001?", invoice_hits()
    )

    assert answer.answer == "120 [1]"  # not Drill bit's 25, not the 10 of "10A"
    (citation,) = answer.citations
    assert citation.label == "table"
    assert texts(citation) == ["120"]


def test_a_sentence_across_two_lines_is_answered_whole_and_cites_just_its_characters():
    answer = ExtractiveAnswerer().answer(
        "Who should questions about invoice INV-1001 be sent to?", invoice_hits()
    )

    assert answer.answer == (
        "Questions about this invoice should be sent to Tariq Tanaka in the accounts "
        "department. [1]"
    )
    (citation,) = answer.citations
    assert texts(citation) == [
        "Questions about this invoice should be sent to",
        "Tariq Tanaka in the accounts department.",
    ]  # not the next sentence's "Late" that shares the second line
    cut = citation.lines[1].bbox  # of the line [150, 1050, 800, 1090]
    assert (cut.x0, cut.y0, cut.y1) == (150, 1050, 1090) and cut.x1 < 800


def test_a_date_question_takes_the_date_after_its_key_and_cites_only_the_date():
    answer = ExtractiveAnswerer().answer(
        "When is payment due for invoice INV-1001?", invoice_hits()
    )

    assert answer.answer == "25 July 2025 [1]"  # not the date of issue
    (line,) = answer.citations[0].lines
    assert line.text == "25 July 2025"
    # "Payment due: 25 July 2025" spans x 150–530; the date is its right part
    assert 300 < line.bbox.x0 < 380 and line.bbox.x1 == 530
    assert (line.bbox.y0, line.bbox.y1) == (480, 520)


def test_who_wrote_is_answered_by_the_from_line_not_another_name():
    memo = hit(
        "1111222233334444",
        [
            R("title", [("MEMORANDUM MEMO-87707", (160, 140, 900, 200))]),
            R(
                "text",
                [
                    ("To: Chen Haddad", (163, 240, 430, 270)),
                    ("From: Rosa Santos", (163, 287, 459, 314)),
                    ("Subject: Project Falcon-31 budget review", (163, 334, 800, 361)),
                ],
            ),
        ],
        heading="MEMORANDUM MEMO-87707",
    )
    answer = ExtractiveAnswerer().answer("Who wrote memorandum MEMO-87707?", [memo])

    assert answer.answer == "Rosa Santos [1]"
    assert texts(answer.citations[0]) == ["Rosa Santos"]


def test_a_chinese_key_value_line_answers_who_the_contact_is():
    notice = hit(
        "0123456789abcdef",
        [
            R("title", [("燃气安全检查的通知（第31909号）", (300, 120, 1300, 190))]),
            R(
                "text",
                [
                    ("各位居民：为保障燃气使用安全，请于2021年5月13日前", (150, 260, 1500, 305)),
                    ("到20号楼6单元活动室办理登记。", (150, 320, 700, 365)),
                ],
            ),
            R("text", [("联系人：陈静", (150, 460, 420, 505))]),
            R("text", [("联系电话：13810362941", (700, 460, 1150, 505))]),
        ],
        heading="燃气安全检查的通知（第31909号）",
    )
    answer = ExtractiveAnswerer().answer("燃气安全检查的通知（第31909号）的联系人是谁？", [notice])

    assert answer.answer == "陈静 [1]"
    assert texts(answer.citations[0]) == ["陈静"]
    # "联系人：陈静" spans x 150–420 over six wide characters: 陈静 is the last third
    assert tuple(answer.citations[0].lines[0].bbox) == (330, 460, 420, 505)
    assert all(c.doc_id == "0123456789abcdef" for c in answer.citations)


def notice(doc_id: str, number: str, date: str, place: str):
    return hit(
        doc_id,
        [
            R("title", [(f"关于燃气安全检查的通知（第{number}号)", (300, 120, 1300, 190))]),
            R(
                "text",
                [
                    (
                        f"各位居民：为做好燃气安全检查工作，请于{date}前到{place}",
                        (150, 260, 1500, 305),
                    ),
                    ("办理相关手续。办理时请携带身份证。", (150, 320, 900, 365)),
                ],
            ),
        ],
        heading=f"关于燃气安全检查的通知（第{number}号)",
        score=0.0331,
    )


def test_the_number_of_a_chinese_notice_outweighs_the_rank_of_its_sibling():
    hits = [
        notice("5913459134591345", "59134", "2022年8月5日", "14号楼6单元活动室"),
        notice("3190931909319093", "31909", "2021年5月13日", "20号楼6单元活动室"),
    ]  # the same score: which comes first is up to the store
    answer = ExtractiveAnswerer().answer(
        "燃气安全检查的通知（第31909号）要求居民在几号前办理？", hits
    )

    assert "2021年5月13日" in answer.answer
    assert {c.doc_id for c in answer.citations} == {"3190931909319093"}


def test_the_document_named_in_the_question_wins_among_similar_ones():
    others = {
        "aaaaaaaaaaaaaaaa": ("INV-17684", "$19,020.08"),
        "bbbbbbbbbbbbbbbb": ("INV-87535", "$21,018.05"),
    }
    hits = [h for doc, (number, total) in others.items() for h in invoice_hits(doc, number, total)]
    wanted = invoice_hits("cccccccccccccccc", "INV-55043", "$27,457.35")
    answer = ExtractiveAnswerer().answer(
        "What is the total due on invoice INV-55043?",
        hits + wanted,  # ranked last
    )

    assert answer.answer == "$27,457.35 [1]"
    assert {c.doc_id for c in answer.citations} == {"cccccccccccccccc"}
    assert {c.source for c in answer.citations} == {"scans/invoice_INV-55043.png"}


def test_an_unrelated_question_gets_not_found_and_no_citations():
    answerer = ExtractiveAnswerer()
    for question in ("What is the capital of Mongolia?", "Who won the 1998 World Cup?"):
        answer = answerer.answer(question, invoice_hits())
        assert (answer.answer, answer.citations) == (NOT_FOUND["en"], [])
    answer = answerer.answer("蒙古的首都是哪里？", invoice_hits())
    assert (answer.answer, answer.citations) == (NOT_FOUND["zh"], [])
    assert answerer.answer("What is the total due?", []).citations == []


def test_the_stream_sends_citations_then_tokens_that_join_into_the_answer_then_done():
    events = list(
        ExtractiveAnswerer().stream("What is the total due on invoice INV-1001?", invoice_hits())
    )

    names = [next(iter(event)) for event in events]
    assert names[0] == "citations" and names[-1] == "done"
    assert set(names[1:-1]) == {"token"} and len(names) > 3
    done = events[-1]["done"]
    assert "".join(event["token"] for event in events[1:-1]) == done["answer"]
    assert events[0]["citations"] == done["citations"]


def test_extract_value_reads_the_value_next_to_the_named_key():
    hits = invoice_hits()

    total, citations = extract_value("total", hits)
    assert total == "$2,448.50"
    assert [texts(c) for c in citations] == [["$2,448.50"]]
    assert extract_value("seller", hits)[0] == "Orchid Logistics Ltd."
    assert extract_value("payment due", hits)[0] == "25 July 2025"
    assert extract_value("due date", hits)[0] == "25 July 2025"  # not the date of issue
    assert extract_value("shoe size", hits) == (None, [])


# --- resolve: an LLM's [n] markers → citations ------------------------------------------------


def evidence() -> list[Citation]:
    hits = invoice_hits()
    regions = [(h, r) for h in hits for r in h.regions]
    return [cite(n, h, r, r.lines) for n, (h, r) in enumerate(regions, start=1)]


def test_resolve_keeps_only_cited_evidence_renumbered_in_order_of_first_mention():
    ev = evidence()
    answer = resolve("It is $2,448.50 [4], due 25 July 2025 [2][4].", ev, "What is due?")

    assert answer.answer == "It is $2,448.50 [1], due 25 July 2025 [2][1]."
    assert [c.n for c in answer.citations] == [1, 2]
    assert [c.region_id for c in answer.citations] == [ev[3].region_id, ev[1].region_id]


def test_resolve_drops_markers_that_point_at_no_evidence():
    ev = evidence()
    answer = resolve("The total is $2,448.50 [9] [4]. See also [0].", ev, "What is the total?")

    assert "[9]" not in answer.answer and "[0]" not in answer.answer
    assert answer.answer.startswith("The total is $2,448.50")
    assert "[1]" in answer.answer
    assert [c.region_id for c in answer.citations] == [ev[3].region_id]

    only_unknown = resolve("The total is $2,448.50 [17].", ev, "What is the total?")
    assert (only_unknown.answer, only_unknown.citations) == (NOT_FOUND["en"], [])


def test_resolve_says_not_found_in_the_question_language():
    ev = evidence()
    assert resolve("NOT_FOUND", ev, "What is the VAT number?").answer == NOT_FOUND["en"]
    assert resolve(" NOT_FOUND.", ev, "增值税号是多少？").answer == NOT_FOUND["zh"]
    assert resolve("", ev, "What?").citations == []
    no_markers = resolve("The total is $2,448.50.", ev, "What is the total?")
    assert (no_markers.answer, no_markers.citations) == (NOT_FOUND["en"], [])


def test_resolve_strips_the_reasoning_block_and_its_markers():
    ev = evidence()
    answer = resolve(
        "<think>\nMaybe [1] or [2]? The total row is [4].\n</think>\nThe total is $2,448.50 [4].",
        ev,
        "What is the total?",
    )

    assert answer.answer == "The total is $2,448.50 [1]."
    assert [c.region_id for c in answer.citations] == [ev[3].region_id]


def test_how_the_store_orders_tied_hits_does_not_change_the_answer():
    # one form in two chunks of equal score, the field "Name" in both: the answer is the one
    # higher on the page whichever chunk comes first
    applicant = hit(
        "aaaabbbbccccdddd",
        [R("text", [("Name:", (150, 300, 260, 340)), ("Ann Lee", (300, 300, 420, 340))])],
        score=0.5,
    )
    contact = hit(
        "aaaabbbbccccdddd",
        [R("text", [("Name:", (150, 900, 260, 940)), ("Bo Chen", (300, 900, 430, 940))], 3)],
        score=0.5,
        chunk=1,
    )
    answerer = ExtractiveAnswerer()
    for hits in ([applicant, contact], [contact, applicant]):
        answer = answerer.answer('What is the value of the field "Name"?', hits)
        assert answer.answer == "Ann Lee [1]"
