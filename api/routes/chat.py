"""An OpenAI-compatible door: `POST /v1/chat/completions` and `GET /v1/models`.

Anything that speaks the OpenAI chat API (the `openai` client with `base_url=.../v1`, LangChain's
ChatOpenAI, chat front-ends) can ask scanrag. The model is `scanrag`; the last user message is
the question; the answer comes back as the assistant message with `[n]` markers, and the
citations — the same objects as `/v1/query` — as a top-level `citations` list (in the final
chunk when streamed). `top_k` and `filters` may be sent as extra body fields.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, format_sse_event
from pydantic import BaseModel, ConfigDict, Field

from ...errors import Text
from ...retrieval.answer import Answer, Answerer
from ...retrieval.index import Index
from ...retrieval.store import SearchFilters
from ..deps import get_answerer, get_index
from ..schemas import QUESTION_LIMIT, QueryResponse
from ..sse import ending_in_error, event_stream, sse_event
from ..urls import API, Citation

router = APIRouter(prefix=API, tags=["openai"])

MODEL = "scanrag"
DONE = format_sse_event(data_str="[DONE]")  # the end of an OpenAI stream: raw, not JSON


class ContentPart(BaseModel):
    """A part of a message's content; text parts are read, others (images) are ignored."""

    model_config = ConfigDict(extra="ignore")
    type: str = Field(max_length=50)
    text: Text | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str = Field(max_length=50, description="system, user, assistant, tool...")
    content: Text | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "\n".join(part.text for part in self.content if part.text)
        return self.content or ""


class ChatRequest(BaseModel):
    """The OpenAI request; fields scanrag has no use for (temperature, ...) are ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(max_length=200, description=f"`{MODEL}`")
    messages: list[ChatMessage] = Field(min_length=1, max_length=500)
    stream: bool = False
    top_k: int = Field(5, ge=1, le=50, description="scanrag: chunks read to answer.")
    filters: SearchFilters | None = Field(None, description="scanrag: as in /v1/query.")


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop"] = "stop"


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str = MODEL
    choices: list[Choice]
    citations: list[Citation] = Field(description="As in /v1/query; `[n]` refers to `n`.")


class Model(BaseModel):
    id: str = MODEL
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "scanrag"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


def openai_error(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    """An error in the shape OpenAI clients read (`openai.NotFoundError` etc. carry `error`),
    with the `detail` every other scanrag error has."""
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return JSONResponse({"error": error, "detail": message}, status_code=status)


@router.get("/models", response_model=ModelList)
def models() -> ModelList:
    """The one model this server answers as."""
    return ModelList(data=[Model()])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE with stream."},
        400: {"description": "No user message, or the question is too long."},
        404: {"description": f"A model other than `{MODEL}`."},
    },
)
def chat_completions(
    request: ChatRequest,
    index: Annotated[Index, Depends(get_index)],
    answerer: Annotated[Answerer, Depends(get_answerer)],
) -> ChatCompletion | EventSourceResponse | JSONResponse:
    """Answer the last user message over the indexed documents, with citations."""
    if request.model != MODEL:
        message = f"the model {request.model!r} does not exist; this server answers as {MODEL!r}"
        return openai_error(404, message, "model_not_found", "model")
    question = next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
    if not question.strip():
        return openai_error(400, "no user message to answer", "invalid_request_error", "messages")
    if len(question) > QUESTION_LIMIT:
        message = f"the question is longer than {QUESTION_LIMIT} characters"
        return openai_error(400, message, "invalid_request_error", "messages")
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    if request.stream:
        ask = partial(_answer, index, answerer, request, question)
        return event_stream(ending_in_error(_chunks(ask, completion_id, created), _error))
    linked = QueryResponse.of(_answer(index, answerer, request, question))
    return ChatCompletion(
        id=completion_id,
        created=created,
        choices=[Choice(message=AssistantMessage(content=linked.answer))],
        citations=linked.citations,
    )


def _error(message: str, kind: str) -> bytes:
    """A failure after the 200: an `error` chunk (no `[DONE]`), which the openai client raises
    as `APIError`."""
    return sse_event({"error": {"message": message, "type": kind}})


def _answer(index: Index, answerer: Answerer, request: ChatRequest, question: str) -> Answer:
    return answerer.answer(question, index.search(question, request.top_k, request.filters))


def _chunks(ask: Callable[[], Answer], completion_id: str, created: int) -> Iterator[bytes]:
    """`chat.completion.chunk` events: the role first (at once), the answer's words, a last
    chunk with `finish_reason` and the citations, then `[DONE]`.

    The words are those of the finished answer: an LLM answerer's own tokens can carry markers
    that its answer renumbers or drops, and the content must match the citations sent."""
    head = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL,
    }

    def chunk(delta: dict[str, str], finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return sse_event({**head, "choices": [choice], **extra})

    yield chunk({"role": "assistant", "content": ""})
    result = ask()
    for word in re.findall(r"\S+\s*", result.answer):
        yield chunk({"content": word})
    citations = QueryResponse.of(result).citations
    yield chunk({}, "stop", citations=[c.model_dump(mode="json") for c in citations])
    yield DONE
