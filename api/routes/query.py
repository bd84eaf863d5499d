"""Search, question answering (optionally streamed) and field extraction."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse

from ...config import Settings
from ...retrieval.answer import Answerer, extract_value
from ...retrieval.index import Index
from ...retrieval.store import SearchFilters
from ..deps import document_info, get_answerer, get_index, get_settings
from ..schemas import (
    ExtractedField,
    ExtractRequest,
    ExtractResponse,
    QueryRequest,
    QueryResponse,
    SearchRequest,
    SearchResponse,
)
from ..sse import ending_in_error, event_stream, sse_event
from ..urls import API, Citation, linked

router = APIRouter(prefix=API, tags=["query"])


@router.post("/search", response_model=SearchResponse)
def search(request: SearchRequest, index: Index = Depends(get_index)) -> SearchResponse:
    """Ranked chunks with the regions, boxes and lines they came from."""
    hits = index.search(request.query, request.top_k, request.filters, request.mode)
    return SearchResponse(query=request.query, hits=hits)


def _sse(events: Iterator[dict]) -> Iterator[bytes]:
    """Server-sent events, citations linked."""
    for event in events:
        ((name, data),) = event.items()
        if name == "citations":
            data = [linked(citation) for citation in data]
        elif name == "done":
            data = {**data, "citations": [linked(c) for c in data.get("citations", [])]}
        yield sse_event(data, name)


def _error(message: str, kind: str) -> bytes:
    """A failure mid-stream: an `error` event with the `detail` every scanrag error has."""
    return sse_event({"detail": message}, "error")


@router.post(
    "/query",
    response_model=QueryResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE with stream=true."}
    },
)
def query(
    request: QueryRequest,
    index: Index = Depends(get_index),
    answerer: Answerer = Depends(get_answerer),
) -> QueryResponse | EventSourceResponse:
    """Answer a question; every `[n]` in the answer is a citation of a page region."""
    hits = index.search(request.question, request.top_k, request.filters)
    if request.stream:
        frames = _sse(answerer.stream(request.question, hits))
        return event_stream(ending_in_error(frames, _error))
    result = answerer.answer(request.question, hits)
    return QueryResponse.of(result)


@router.post("/extract", response_model=ExtractResponse)
def extract(
    request: ExtractRequest,
    index: Index = Depends(get_index),
    settings: Settings = Depends(get_settings),
) -> ExtractResponse:
    """Named fields of one document ("total", "date"...) with the regions they came from."""
    document_info(request.doc_id, index)  # 404 for an unknown id
    given = request.filters or SearchFilters()
    within = given.model_copy(update={"doc_id": request.doc_id})
    fields = []
    for name in request.fields:
        hits = index.search(name, top_k=5, filters=within)
        value, citations = extract_value(name, hits, settings.min_answer_score)
        linked_citations = [Citation.of(citation) for citation in citations]
        fields.append(ExtractedField(name=name, value=value, citations=linked_citations))
    return ExtractResponse(doc_id=request.doc_id, fields=fields)
