"""The `openai` answerer against a fake OpenAI-compatible server on 127.0.0.1: what it sends
(model, system and user messages, numbered evidence, region crops as JPEG data URIs), how it
reads plain and streamed replies, its retries, timeouts and errors — alone and through
POST /v1/query."""

from __future__ import annotations

import base64
import io
import re
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import AMOUNT, Reply, fake_openai, free_port, invoice_hits, memo_pdf, streamed_query
from seams import app_for

from scanrag.config import Settings
from scanrag.errors import ModelServerError
from scanrag.retrieval.answer import NOT_FOUND, SYSTEM_PROMPT, OpenAIAnswerer

QUESTION = "What is the total due on invoice INV-1001?"
TOTAL_REGION = "3f9c0a1b2c3d4e5f:p1:r3"  # evidence [4]: the "$2,448.50" region


def answerer(url: str, crop=None, **options) -> OpenAIAnswerer:
    settings = Settings(
        answerer="openai",
        llm_url=url,
        llm_model="glm-test",
        llm_api_key="sk-test",
        llm_timeout=options.pop("llm_timeout", 10),
        llm_retries=options.pop("llm_retries", 0),
        **options,
    )
    return OpenAIAnswerer(settings, crop=crop)


def user_text(request: dict) -> str:
    return request["messages"][1]["content"][0]["text"]


def test_the_request_carries_the_model_the_instructions_and_numbered_evidence():
    with fake_openai(Reply("The total due is $2,448.50 [4].")) as fake:
        result = answerer(fake.url).answer(QUESTION, invoice_hits())

    (request,) = fake.requests
    assert request["model"] == "glm-test"
    assert request["temperature"] == 0
    assert not request.get("stream")
    system, user = request["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert "NOT_FOUND" in system["content"] and "[2]" in system["content"]
    assert user["role"] == "user"
    assert [part["type"] for part in user["content"]] == ["text"]  # no images unless asked
    text = user["content"][0]["text"]
    assert text.startswith(f"Question: {QUESTION}\n\nEvidence:\n\n")
    assert re.findall(r"^\[(\d+)\] ", text, re.M) == ["1", "2", "3", "4", "5", "6"]
    # a region is given as the rows it is on: the key beside its value, a table row by row
    assert "[3] (scans/invoice_INV-1001.png, page 1, text)\nTotal due: $2,448.50\n" in text
    assert "[4] (scans/invoice_INV-1001.png, page 1, text)\nTotal due: $2,448.50\n" in text
    assert (
        "[6] (scans/invoice_INV-1001.png, page 1, table)\nItem | Qty | Unit price | Amount\n"
        "Drill bit 6mm | 25 | $28.60 | $715.00\nFuse 10A | 120 | $4.55 | $546.00"
    ) in text
    assert fake.headers[0]["authorization"] == "Bearer sk-test"

    assert result.answer == "The total due is $2,448.50 [1]."
    (citation,) = result.citations
    assert (citation.n, citation.region_id, citation.text) == (1, TOTAL_REGION, "$2,448.50")
    assert [line.text for line in citation.lines] == ["$2,448.50"]


def test_markers_are_renumbered_and_unknown_ones_dropped():
    reply = "It is $2,448.50 [4] [12], due 25 July 2025 [2][4][0]."
    with fake_openai(Reply(reply)) as fake:
        result = answerer(fake.url).answer(QUESTION, invoice_hits())

    assert result.answer == "It is $2,448.50 [1], due 25 July 2025 [2][1]."
    assert [c.region_id for c in result.citations] == [TOTAL_REGION, "3f9c0a1b2c3d4e5f:p1:r1"]


def test_not_found_from_the_model_is_said_without_citations():
    with fake_openai(Reply("NOT_FOUND")) as fake:
        result = answerer(fake.url).answer("What is the VAT number?", invoice_hits())
        chinese = answerer(fake.url).answer("增值税号是多少？", invoice_hits())
    assert (result.answer, result.citations) == (NOT_FOUND["en"], [])
    assert (chinese.answer, chinese.citations) == (NOT_FOUND["zh"], [])


def test_an_answer_citing_nothing_it_was_given_is_not_found():
    with fake_openai(Reply("The total due is $2,448.50 [9].")) as fake:
        result = answerer(fake.url).answer(QUESTION, invoice_hits())
    assert (result.answer, result.citations) == (NOT_FOUND["en"], [])


def test_region_crops_go_with_the_evidence_as_jpeg_data_uris_for_vision_models():
    hits = invoice_hits()
    boxes = {r.region_id: r.bbox for h in hits for r in h.regions}

    def crop(region_id: str) -> Image.Image | None:
        if region_id.endswith(":r0"):
            return None  # a page image can be missing: that evidence goes without
        box = boxes[region_id]
        return Image.new("RGB", (box.width, box.height), (200, 30, 30))

    with fake_openai(Reply("The total due is $2,448.50 [4].")) as fake:
        result = answerer(fake.url, crop=crop, llm_images=True).answer(QUESTION, hits)

    content = fake.requests[0]["messages"][1]["content"]
    assert content[0]["type"] == "text" and content[0]["text"].startswith("Question:")
    labels = [part["text"] for part in content[1::2]]
    assert labels == [f"Image of evidence [{n}]:" for n in (2, 3, 4, 5, 6)]
    images = [part["image_url"]["url"] for part in content[2::2]]
    assert len(images) == 5 and all(u.startswith("data:image/jpeg;base64,") for u in images)
    expected = [boxes[rid] for rid in list(boxes)[1:]]
    for url, box in zip(images, expected, strict=True):
        data = base64.b64decode(url.split(",", 1)[1])
        with Image.open(io.BytesIO(data)) as image:
            assert image.format == "JPEG"
            assert image.size == (box.width, box.height)
            r, g, b = image.convert("RGB").getpixel((image.width // 2, image.height // 2))
            assert r > 150 and g < 90 and b < 90  # the crop itself, not a placeholder
    assert result.citations[0].region_id == TOTAL_REGION


def test_a_streamed_reply_is_passed_on_token_by_token_then_resolved():
    chunks = ["The total", " due is ", "$2,448.50 [4]", "."]
    with fake_openai(Reply("".join(chunks), chunks=chunks)) as fake:
        events = list(answerer(fake.url).stream(QUESTION, invoice_hits()))

    assert fake.requests[0]["stream"] is True
    names = [next(iter(event)) for event in events]
    assert names == ["citations", "token", "token", "token", "token", "done"]
    assert [c["n"] for c in events[0]["citations"]] == [1, 2, 3, 4, 5, 6]  # all the evidence
    assert [e["token"] for e in events[1:-1]] == chunks
    done = events[-1]["done"]
    assert done["answer"] == "The total due is $2,448.50 [1]."
    assert [c["region_id"] for c in done["citations"]] == [TOTAL_REGION]


def test_a_server_error_is_retried_and_then_answered():
    with fake_openai(Reply(status=500), Reply("The total due is $2,448.50 [4].")) as fake:
        result = answerer(fake.url, llm_retries=2).answer(QUESTION, invoice_hits())
    assert len(fake.requests) == 2
    assert result.citations[0].region_id == TOTAL_REGION


def test_rate_limiting_is_retried_and_reported_when_it_lasts():
    with fake_openai(Reply(status=429), Reply("The total due is $2,448.50 [4].")) as fake:
        result = answerer(fake.url, llm_retries=1).answer(QUESTION, invoice_hits())
    assert len(fake.requests) == 2 and result.answer.endswith("[1].")

    with fake_openai(Reply(status=429)) as fake, pytest.raises(ModelServerError) as error:
        answerer(fake.url, llm_retries=1).answer(QUESTION, invoice_hits())
    assert len(fake.requests) == 2  # one try and one retry
    assert "429" in str(error.value) and fake.url in str(error.value)


def test_an_unreachable_endpoint_is_a_clear_error_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    started = time.monotonic()
    with pytest.raises(ModelServerError) as error:
        answerer(url).answer(QUESTION, invoice_hits())
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert url in message and "SCANRAG_LLM_URL" in message
    assert error.value.http_status == 502

    with pytest.raises(ModelServerError, match="SCANRAG_LLM_URL"):
        OpenAIAnswerer(Settings(answerer="openai"))


def test_a_reply_slower_than_the_timeout_is_an_error_not_a_hang():
    with fake_openai(Reply("too late [4]", delay=4)) as fake:
        started = time.monotonic()
        with pytest.raises(ModelServerError) as error:
            answerer(fake.url, llm_timeout=0.5).answer(QUESTION, invoice_hits())
        elapsed = time.monotonic() - started
    assert elapsed < 3
    message = str(error.value)
    assert fake.url in message and "SCANRAG_LLM_TIMEOUT" in message


def test_a_stream_that_stalls_mid_answer_ends_in_a_clear_error():
    events = []
    with fake_openai(Reply("The total due is $2,448.50 [4].", stall=3)) as fake:
        started = time.monotonic()
        with pytest.raises(ModelServerError) as error:
            for event in answerer(fake.url, llm_timeout=0.5).stream(QUESTION, invoice_hits()):
                events.append(event)
        elapsed = time.monotonic() - started
    assert elapsed < 2.5
    assert [next(iter(e)) for e in events] == ["citations", "token"]  # what came before
    assert fake.url in str(error.value) and "SCANRAG_LLM_TIMEOUT" in str(error.value)


# --- end to end: an index, the app, POST /v1/query --------------------------------------------

MEMO_QUESTION = "What budget was approved for Project Falcon-31?"


def cite_the_amount(body: dict) -> str:
    """Answer like a model would: cite the evidence block that holds the amount."""
    text = user_text(body)
    blocks = re.split(r"\n\n(?=\[\d+\] \()", text.split("Evidence:\n\n", 1)[1])
    n = next(b.split("]")[0][1:] for b in blocks if AMOUNT in b)
    return f"The approved budget is {AMOUNT} [{n}]."


@pytest.fixture(scope="module")
def llm():
    with fake_openai(Reply(respond=cite_the_amount)) as fake:
        yield fake


@pytest.fixture(scope="module")
def client(llm, tmp_path_factory):
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("openai-index"),
        answerer="openai",
        llm_url=llm.url,
        llm_model="glm-4.6v-flash",
        llm_images=True,
        llm_retries=1,
        llm_timeout=20,
    )
    pdf = memo_pdf(tmp_path_factory.mktemp("memo") / "memo.pdf")
    with TestClient(app_for(settings)) as client:
        upload = client.post(
            "/v1/documents?wait=true",
            files={"files": ("memo.pdf", pdf.read_bytes(), "application/pdf")},
        )
        assert upload.status_code == 200, upload.text
        assert upload.json()["job"]["status"] == "done"
        yield client


@pytest.fixture
def fresh(llm):
    llm.requests.clear()
    llm.replies[:] = [Reply(respond=cite_the_amount)]
    return llm


def test_query_through_the_api_sends_crops_and_resolves_the_citation(client, fresh):
    query = client.post("/v1/query", json={"question": MEMO_QUESTION, "top_k": 3})
    assert query.status_code == 200, query.text
    body = query.json()

    assert body["answer"] == f"The approved budget is {AMOUNT} [1]."
    (citation,) = body["citations"]
    assert AMOUNT in citation["text"] and citation["source"].endswith("memo.pdf")
    (request,) = fresh.requests
    assert request["model"] == "glm-4.6v-flash"
    assert MEMO_QUESTION in user_text(request)

    # the images sent are the evidence regions' crops, in evidence order
    hits = client.post("/v1/search", json={"query": MEMO_QUESTION, "top_k": 3}).json()["hits"]
    boxes = [region["bbox"] for hit in hits for region in hit["regions"]]
    content = request["messages"][1]["content"]
    images = [part["image_url"]["url"] for part in content if part["type"] == "image_url"]
    assert len(images) == len(boxes) >= 2
    for url, (x0, y0, x1, y1) in zip(images, boxes, strict=True):
        with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
            assert image.format == "JPEG" and image.size == (x1 - x0, y1 - y0)

    crop = client.get(citation["crop_url"])
    assert crop.status_code == 200 and crop.headers["content-type"] == "image/jpeg"


def test_streamed_query_through_the_api(client, fresh):
    events = streamed_query(client, {"question": MEMO_QUESTION, "top_k": 3})

    names = [name for name, _ in events]
    assert names[0] == "citations" and names[-1] == "done"
    assert set(names[1:-1]) == {"token"}
    assert fresh.requests[0]["stream"] is True
    tokens = "".join(data for _, data in events[1:-1])
    assert tokens == cite_the_amount(fresh.requests[0])  # the model's own words, as they came
    done = events[-1][1]
    assert done["answer"] == f"The approved budget is {AMOUNT} [1]."
    assert AMOUNT in done["citations"][0]["text"]
    evidence_ids = [c["region_id"] for c in events[0][1]]
    assert done["citations"][0]["region_id"] in evidence_ids


def test_a_failing_model_is_a_502_json_error_and_an_error_event(client, fresh):
    fresh.replies[:] = [Reply(status=503)]
    query = client.post("/v1/query", json={"question": MEMO_QUESTION})
    assert query.status_code == 502
    assert query.json()["type"] == "ModelServerError"
    assert fresh.url in query.json()["detail"] and "503" in query.json()["detail"]
    assert len(fresh.requests) == 2  # llm_retries=1

    events = streamed_query(client, {"question": MEMO_QUESTION})
    assert [name for name, _ in events] == ["citations", "error"]
    assert fresh.url in events[1][1]["detail"]
