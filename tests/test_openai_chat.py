"""`POST /v1/chat/completions` and `GET /v1/models`: the official `openai` client, unchanged,
against a real uvicorn serving an invoice scan rendered here — streamed and not, with the
citations of /v1/query as a top-level list (in the final chunk when streamed) — and the
OpenAI-shaped errors the client turns into its own exceptions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from openai import OpenAI

sys.path.insert(0, str(Path(__file__).resolve().parent))

from doors import KEY, TOTAL, TOTAL_QUESTION, index_scans
from fakes import live_server
from seams import app_for

from scanrag.api.deps import get_answerer
from scanrag.config import Settings
from scanrag.errors import ModelServerError
from scanrag.ingest.model import BBox
from scanrag.testing import invoice

SHEET = invoice()
ASK = [{"role": "user", "content": TOTAL_QUESTION}]


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat")
    index_scans({"invoice.png": SHEET}, root / "scans", root / "data")
    with live_server(app_for(Settings(data_dir=root / "data", api_key=KEY))) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url) -> OpenAI:
    return OpenAI(base_url=f"{base_url}/v1", api_key=KEY, max_retries=0)


@pytest.fixture(scope="module")
def query_api(base_url) -> dict:
    """What /v1/query answers to the same question."""
    response = httpx.post(
        f"{base_url}/v1/query", json={"question": TOTAL_QUESTION}, headers={"X-API-Key": KEY}
    )
    assert response.status_code == 200
    return response.json()


def test_models_lists_scanrag(client):
    assert [model.id for model in client.models.list()] == ["scanrag"]


def test_a_completion_answers_the_last_user_message_with_the_query_apis_citations(
    client, query_api
):
    messages = [
        {"role": "system", "content": "You answer from scanned documents."},
        {"role": "user", "content": "Who is the seller?"},
        {"role": "assistant", "content": "Orchid Logistics Ltd. [1]"},
        {"role": "user", "content": [{"type": "text", "text": TOTAL_QUESTION}]},
    ]
    completion = client.chat.completions.create(model="scanrag", messages=messages, temperature=0)
    (choice,) = completion.choices
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert choice.message.content == query_api["answer"]
    assert TOTAL in choice.message.content and "[1]" in choice.message.content
    assert completion.model == "scanrag" and completion.id.startswith("chatcmpl-")
    citations = completion.model_extra["citations"]
    assert citations == query_api["citations"]
    (citation,) = citations
    assert citation["n"] == 1 and citation["page"] == 1
    assert BBox(*citation["bbox"]).coverage_of(SHEET.find(TOTAL).bbox) > 0.8


def test_a_streamed_completion_sends_the_same_answer_and_citations_in_its_last_chunk(
    client, query_api
):
    chunks = list(client.chat.completions.create(model="scanrag", messages=ASK, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == query_api["answer"]
    assert len(chunks) > 3  # word by word
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    with_citations = [c for c in chunks if (c.model_extra or {}).get("citations")]
    assert with_citations == [chunks[-1]]
    assert chunks[-1].model_extra["citations"] == query_api["citations"]
    assert {c.id for c in chunks} == {chunks[0].id}


def test_filters_and_top_k_ride_along_as_extra_body_fields(client):
    other = client.chat.completions.create(
        model="scanrag", messages=ASK, extra_body={"filters": {"doc_id": "0" * 16}, "top_k": 2}
    )
    assert other.model_extra["citations"] == []
    assert TOTAL not in other.choices[0].message.content


def test_errors_come_in_the_shape_the_openai_client_raises(client, base_url):
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=ASK)
    assert missing.value.status_code == 404
    assert missing.value.body["code"] == "model_not_found"
    assert "'gpt-4o'" in missing.value.body["message"]

    with pytest.raises(openai.BadRequestError, match="no user message"):
        client.chat.completions.create(
            model="scanrag", messages=[{"role": "system", "content": "Be brief."}]
        )
    with pytest.raises(openai.BadRequestError, match="longer than 2000"):
        client.chat.completions.create(
            model="scanrag", messages=[{"role": "user", "content": "total " * 400}]
        )
    with pytest.raises(openai.UnprocessableEntityError):
        client.chat.completions.create(model="scanrag", messages=[])

    wrong = OpenAI(base_url=f"{base_url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.chat.completions.create(model="scanrag", messages=ASK)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()


class FailsToAnswer:
    """An answerer that fails once the stream has begun (the role chunk is sent at once)."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def answer(self, question, hits):
        raise self.error


@pytest.mark.parametrize(
    ("error", "kind", "told"),
    [
        (ModelServerError("http://llm.invalid answered 503"), "ModelServerError", "503"),
        (RuntimeError("boom"), "InternalError", "internal error while answering"),
    ],
)
def test_a_stream_that_fails_after_the_role_chunk_ends_with_one_error_chunk(
    tmp_path, error, kind, told
):
    app = app_for(Settings(data_dir=tmp_path / "data"))
    app.dependency_overrides[get_answerer] = lambda: FailsToAnswer(error)
    body = {"model": "scanrag", "messages": ASK, "stream": True}
    with TestClient(app) as http:
        raw = http.post("/v1/chat/completions", json=body)
        assert raw.status_code == 200
        frames = [json.loads(block.removeprefix("data: ")) for block in raw.text.split("\n\n")[:-1]]
        assert frames[0]["choices"][0]["delta"]["role"] == "assistant"
        assert [frame["error"]["type"] for frame in frames[1:]] == [kind]  # one, then no [DONE]
        assert told in frames[1]["error"]["message"] and "boom" not in raw.text

        client = OpenAI(base_url="http://testserver/v1", api_key="-", http_client=http)
        with pytest.raises(openai.APIError, match=told):
            list(client.chat.completions.create(**body))
