"""Shared state and dependencies: one per part (settings, tenant, index, answerer, jobs,
metrics), so that a route asks only for what it uses and a test can replace any part with
FastAPI's `app.dependency_overrides`. The index a route gets acts for the caller's tenant
(the Guard found it from the API key), so every route is scoped to it."""

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
from .guard import KEY_HINT
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


_bearer = HTTPBearer(auto_error=False, description="An API key as a bearer token")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key")


def get_tenant(
    request: Request,
    _bearer_scheme: HTTPAuthorizationCredentials | None = Depends(_bearer),
    _header_scheme: str | None = Depends(_header),
) -> str:
    """The caller's tenant, as the Guard middleware resolved it from the API key (or the
    server's tenant without keys); declares both key schemes in the OpenAPI document. A
    request the Guard did not see (it always runs in create_app) is refused."""
    tenant = getattr(request.state, "tenant", None)
    if tenant is None:
        raise HTTPException(
            status_code=401, detail=KEY_HINT, headers={"WWW-Authenticate": "Bearer"}
        )
    return tenant


def get_index(state: AppState = Depends(get_state), tenant: str = Depends(get_tenant)) -> Index:
    """The index, acting for the caller's tenant."""
    return state.index.as_tenant(tenant)


def get_answerer(index: Index = Depends(get_index)) -> Answerer:
    return index.answerer


def get_jobs(state: AppState = Depends(get_state)) -> JobManager:
    return state.jobs


def get_metrics(state: AppState = Depends(get_state)) -> Metrics:
    return state.metrics


def no_document(doc_id: str) -> HTTPException:
    """The 404 of an unknown document id (another tenant's id is unknown here: the same 404)."""
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no document {doc_id!r}")


def document_info(doc_id: str, index: Index) -> DocumentInfo:
    """The document's entry in the tenant's index, or a 404 naming the id."""
    info = index.document_info(doc_id)
    if info is None:
        raise no_document(doc_id)
    return info


async def job_response(
    body: JobAccepted,
    jobs: JobManager,
    settings: Settings,
    wait: bool,
    request: Request,
    tenant: str,
) -> JSONResponse:
    """202 with the job to poll. With `?wait=true`, 200 once the job has finished (the body's
    `job` then holds its final status), or 202 with the job as it is when SCANRAG_WAIT_TIMEOUT
    runs out. The wait holds no thread and ends when the client goes away."""
    if not wait:
        return JSONResponse(body.model_dump(mode="json"), status_code=status.HTTP_202_ACCEPTED)
    body.job = await jobs.wait(
        body.job_id, tenant, settings.wait_timeout, request.is_disconnected
    )
    finished = body.job is not None and body.job.finished_at is not None
    code = status.HTTP_200_OK if finished else status.HTTP_202_ACCEPTED
    return JSONResponse(body.model_dump(mode="json"), status_code=code)
