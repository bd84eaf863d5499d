"""Search, question answering (optionally streamed) and field extraction."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from fastapi import APIRouter, Depends
from fastapi.sse import EventSourceResponse

from ...errors import ScanragError
from ...retrieval.answer import extract_value
from ..deps import AppState, document_info, get_state
from ..schemas import (
    ExtractedField,
    ExtractRequest,
    ExtractResponse,
    QueryRequest,
    QueryResponse,
    SearchRequest,
    SearchResponse,
)
from ..sse import event_stream, sse_event

router = APIRouter(prefix="/v1", tags=["query"])
log = logging.getLogger("scanrag.api")


@router.post("/search", response_model=SearchResponse)
def search(request: SearchRequest, state: AppState = Depends(get_state)) -> SearchResponse:
    """Ranked chunks with the regions, boxes and lines they came from."""
    hits = state.index.search(request.query, request.top_k, request.filters, request.mode)
    return SearchResponse(query=request.query, hits=hits)


def _sse(events: Iterator[dict]) -> Iterator[bytes]:
    """Server-sent events; a failure after the 200 was sent ends the stream with an `error`
    event (the app's error handlers can no longer answer)."""
    try:
        for event in events:
            ((name, data),) = event.items()
            yield sse_event(data, name)
    except ScanragError as exc:
        yield sse_event({"detail": str(exc)}, "error")
    except Exception:
        log.exception("the answer stream failed")
        yield sse_event({"detail": "internal error while answering; see the server log"}, "error")


@router.post(
    "/query",
    response_model=QueryResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "JSON, or SSE with stream=true."}
    },
)
def query(
    request: QueryRequest, state: AppState = Depends(get_state)
) -> QueryResponse | EventSourceResponse:
    """Answer a question; every `[n]` in the answer is a citation of a page region."""
    hits = state.index.search(request.question, request.top_k, request.filters)
    answerer = state.index.answerer
    if request.stream:
        return event_stream(_sse(answerer.stream(request.question, hits)))
    result = answerer.answer(request.question, hits)
    return QueryResponse(answer=result.answer, citations=result.citations)


@router.post("/extract", response_model=ExtractResponse)
def extract(request: ExtractRequest, state: AppState = Depends(get_state)) -> ExtractResponse:
    """Named fields of one document ("total", "date"...) with the regions they came from."""
    document_info(request.doc_id, state)  # 404 for an unknown id
    fields = []
    for name in request.fields:
        hits = state.index.search(name, top_k=5, filters={"doc_id": request.doc_id})
        value, citations = extract_value(name, hits, state.settings.min_answer_score)
        fields.append(ExtractedField(name=name, value=value, citations=citations))
    return ExtractResponse(doc_id=request.doc_id, fields=fields)
