"""Shared state and dependencies: one per part (settings, index, answerer, jobs, metrics), so
that a route asks only for what it uses and a test can replace any part with FastAPI's
`app.dependency_overrides`; and the API key check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..config import Settings
from ..retrieval.answer import Answerer
from ..retrieval.index import Index
from ..retrieval.reports import DocumentInfo
from .guard import KEY_HINT, key_matches, presented_key
from .jobs import JobManager
from .metrics import Metrics
from .schemas import JobAccepted

#: Path parameters, bounded like every other field of a request.
DocId = Annotated[str, Path(max_length=64, description="A document id (16 hex digits).")]
RegionId = Annotated[str, Path(max_length=128, description="{doc_id}:p{page}:r{index}")]
JobId = Annotated[str, Path(max_length=64)]


@dataclass
class AppState:
    settings: Settings
    index: Index
    jobs: JobManager
    metrics: Metrics


def get_state(request: Request) -> AppState:
    return request.app.state.scanrag


def get_settings(state: AppState = Depends(get_state)) -> Settings:
    return state.settings


def get_index(state: AppState = Depends(get_state)) -> Index:
    return state.index


def get_answerer(index: Index = Depends(get_index)) -> Answerer:
    return index.answerer


def get_jobs(state: AppState = Depends(get_state)) -> JobManager:
    return state.jobs


def get_metrics(state: AppState = Depends(get_state)) -> Metrics:
    return state.metrics


_bearer = HTTPBearer(auto_error=False, description="SCANRAG_API_KEY as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="SCANRAG_API_KEY")


def require_api_key(
    request: Request,
    settings: Settings = Depends(get_settings),
    _bearer_scheme: HTTPAuthorizationCredentials | None = Depends(_bearer),
    _header_scheme: str | None = Depends(_header),
) -> None:
    """With SCANRAG_API_KEY set, every route but /healthz needs it (constant-time check).

    The Guard middleware has refused a wrong key already; this checks again the same way
    (`presented_key`) and declares both schemes in the OpenAPI document."""
    expected = settings.api_key
    if expected and not key_matches(presented_key(dict(request.headers)), expected):
        raise HTTPException(
            status_code=401, detail=KEY_HINT, headers={"WWW-Authenticate": "Bearer"}
        )


def document_info(doc_id: str, index: Index) -> DocumentInfo:
    """The document's entry in the index, or a 404 naming the id."""
    info = index.document_info(doc_id)
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document {doc_id!r}")
    return info


async def job_response(
    body: JobAccepted, jobs: JobManager, settings: Settings, wait: bool, request: Request
) -> JSONResponse:
    """202 with the job to poll. With `?wait=true`, 200 once the job has finished (the body's
    `job` then holds its final status), or 202 with the job as it is when SCANRAG_WAIT_TIMEOUT
    runs out. The wait holds no thread and ends when the client goes away."""
    if not wait:
        return JSONResponse(body.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    body.job = await jobs.wait(body.job_id, settings.wait_timeout, request.is_disconnected)
    finished = body.job is not None and body.job.finished_at is not None
    code = status.HTTP_200_OK if finished else status.HTTP_202_ACCEPTED
    return JSONResponse(body.model_dump(mode="json"), status_code=code)
