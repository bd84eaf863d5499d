"""Documents: upload (→ an ingest job), list, get, change metadata, delete, Markdown and JSON
— each the caller's tenant's."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from ...config import Settings
from ...errors import CorruptFile, LimitExceeded, ScanragError, UnsupportedFile
from ...ingest.loaders import check_source, empty_message, show
from ...ingest.markdown import document_markdown
from ...ingest.model import Document, doc_id_for
from ...retrieval.index import Index
from ...retrieval.metadata import MetadataPatch, validated
from ...retrieval.pii import mask_document
from ...retrieval.reports import DocumentInfo, FileError
from ..deps import (
    DocId,
    document_info,
    get_index,
    get_jobs,
    get_settings,
    job_response,
    no_document,
)
from ..jobs import JobManager
from ..schemas import DocumentDetail, PageInfo, UploadResponse
from ..uploads import UPLOAD_BODY, Incoming, UploadRefused, discard, drain, receive_files, store
from ..urls import DOCUMENTS, job_url, page_image_url

router = APIRouter(prefix=DOCUMENTS, tags=["documents"])


def _check(file: Incoming, settings: Settings) -> Rejected | int:
    """Check a received file by its header (type, pages, pixels, password): decoding is the
    job's work. Its page count, or why it is refused."""
    try:
        if file.size == 0:  # not a document at all (415), where check_source says "corrupt"
            raise UnsupportedFile(empty_message(file.name))
        return check_source(file.tmp, settings)[1]
    except ScanragError as exc:
        return Rejected(file.name, type(exc)(str(exc).replace(show(file.tmp), file.name)))


def _accept(
    files: list[Incoming], settings: Settings, index: Index
) -> tuple[list[Path], list[Rejected]]:
    """Check every file of a request and the tenant's limits, then store the good ones;
    whatever happens, no temporary file stays behind."""
    try:
        checked = [(file, _check(file, settings)) for file in files]
        refused = [error for _, error in checked if isinstance(error, Rejected)]
        _within_limits(index, checked)
        accepted = [store(file, index.files) for file, ok in checked if isinstance(ok, int)]
    finally:
        discard(files)
    return accepted, refused


def _within_limits(index: Index, checked: list[tuple[Incoming, Rejected | int]]) -> None:
    """429 when the files' new documents would take the tenant over its documents or pages
    limit (the job checks each file again exactly as it indexes it)."""
    pages = {
        doc_id_for(file.digest.hexdigest(), index.tenant): count
        for file, count in checked
        if isinstance(count, int)
    }
    over = index.over_limits(pages)
    if over is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"this upload would give the tenant {over}; delete documents first (nothing of "
            "this upload was stored)",
        )


@dataclass
class Rejected:
    """An uploaded file refused before any job: why, and with which HTTP status."""

    name: str
    error: ScanragError

    def as_file_error(self) -> FileError:
        return FileError(path=self.name, error=str(self.error))


def rejection_status(rejected: list[Rejected]) -> int:
    """When no file of an upload is accepted: 413 if one is over a limit, 422 if one is
    broken, 415 when none is a document at all (empty, or another type)."""
    kinds = {type(item.error) for item in rejected}
    if any(issubclass(kind, LimitExceeded) for kind in kinds):
        return 413
    if any(issubclass(kind, CorruptFile) for kind in kinds):
        return 422
    return 415


def too_large(name: str, settings: Settings) -> str:
    return (
        f"{name}: larger than the upload limit of {settings.max_upload_mb} MB "
        "(SCANRAG_MAX_UPLOAD_MB); nothing of this upload was stored"
    )


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UploadResponse,
    openapi_extra={"requestBody": UPLOAD_BODY},
    responses={
        200: {"model": UploadResponse, "description": "With ?wait=true: the job has ended."},
        400: {"description": "The body is not valid multipart/form-data"},
        413: {
            "description": "Refused: a file over the size limit (answered as soon as its bytes "
            "pass it), too many files, or no file accepted for its size, pages or pixels"
        },
        415: {"description": "Not multipart, or no file accepted: none is a supported type"},
        422: {"description": "No file in the body, or none accepted: broken or encrypted"},
    },
)
async def upload_documents(
    request: Request,
    wait: bool = Query(
        False, description="Answer when the files are indexed (at most SCANRAG_WAIT_TIMEOUT)."
    ),
    settings: Settings = Depends(get_settings),
    index: Index = Depends(get_index),
    jobs: JobManager = Depends(get_jobs),
) -> JSONResponse:
    """Upload one or more files (multipart field `files`) for the caller's tenant; they are
    indexed by a background job, recorded before this answers, so that it survives a
    restart of the server. A `metadata` field (a JSON object of string, number or boolean
    values) goes on every file's document.

    Each file is checked at once by its header (type, size, page count, pixel size, PDF
    password): a file that fails is listed in `rejected` and never stored. A file over the
    size limit refuses the whole upload (413) the moment its bytes pass the limit. A file
    whose pages turn out not to decode fails in the job (`GET /v1/jobs/{id}` lists it).
    """
    try:
        files, fields = await receive_files(
            request,
            index.data.incoming,
            settings.max_upload_mb << 20,
            settings.max_upload_files,
            lambda name: too_large(name, settings),
        )
    except UploadRefused as exc:
        return JSONResponse(
            {"detail": exc.detail, "type": "RequestRefused"},
            status_code=exc.status,
            background=BackgroundTask(drain, request),
        )
    try:
        metadata = _metadata(fields.get("metadata"))
    except ValueError as exc:
        discard(files)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    accepted, refused = await run_in_threadpool(_accept, files, settings, index)
    rejected = [item.as_file_error() for item in refused]
    if not accepted:
        raise HTTPException(rejection_status(refused), " | ".join(e.error for e in rejected))
    job = await run_in_threadpool(jobs.submit, accepted, rejected, None, index.tenant, metadata)
    body = UploadResponse(
        job_id=job.id,
        status_url=job_url(job.id),
        files=[p.name for p in accepted],
        rejected=rejected,
    )
    return await job_response(body, jobs, settings, wait, request, index.tenant)


def _metadata(raw: bytes | None) -> dict[str, Any] | None:
    """The upload's `metadata` field: a JSON object of string, number or boolean values."""
    if raw is None or not raw.strip():
        return None
    try:
        value = json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # bad JSON or bad UTF-8
        raise ValueError(f"the metadata field is not JSON ({exc})") from None
    return validated(value)


@router.get("", response_model=list[DocumentInfo])
def list_documents(index: Index = Depends(get_index)) -> list[DocumentInfo]:
    """The tenant's documents, each with its files, status, errors and metadata."""
    return index.documents()


class DocumentPatch(BaseModel):
    metadata: MetadataPatch = Field(
        description="Merged into the document's metadata (JSON merge patch): a value sets its "
        "key, null removes it; keys not given stay."
    )


@router.patch("/{doc_id}", response_model=DocumentInfo, responses={404: {}, 422: {}})
def update_document(
    doc_id: DocId, patch: DocumentPatch, index: Index = Depends(get_index)
) -> DocumentInfo:
    """Change a document's metadata, on the document and on every chunk of it, without
    parsing or embedding it again."""
    try:
        info = index.update_metadata(doc_id, patch.metadata)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    if info is None:
        raise no_document(doc_id)
    return info


@router.get("/{doc_id}", response_model=DocumentDetail)
def get_document(doc_id: DocId, index: Index = Depends(get_index)) -> DocumentDetail:
    info = document_info(doc_id, index)
    doc = index.document(doc_id)
    detail = DocumentDetail(**info.model_dump())
    if doc is not None:
        detail.mime = doc.mime
        detail.parser = f"{doc.parser.name} {doc.parser.version}"
        detail.warnings = doc.warnings
        detail.page_list = [
            PageInfo(
                number=page.number,
                width=page.width,
                height=page.height,
                regions=len(page.regions),
                error=page.error,
                image_url=page_image_url(doc_id, page.number),
            )
            for page in doc.pages
        ]
    return detail


@router.delete("/{doc_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_document(doc_id: DocId, index: Index = Depends(get_index)) -> Response:
    """Remove the document: its points, its manifest rows, its cached parse, its page images
    and its uploaded files (other files queued for indexing are left alone)."""
    if not index.delete(doc_id):
        raise no_document(doc_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _document(doc_id: str, index: Index) -> Document:
    doc = index.document(doc_id)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no parsed document {doc_id!r}")
    return mask_document(doc) if index.settings.mask_pii else doc


@router.get("/{doc_id}/markdown", response_class=PlainTextResponse)
def document_as_markdown(
    doc_id: DocId,
    anchors: bool = Query(True, description="Keep the region anchor comments."),
    index: Index = Depends(get_index),
) -> PlainTextResponse:
    """Layout-aware Markdown; anchors carry region ids and boxes."""
    return PlainTextResponse(
        document_markdown(_document(doc_id, index), anchors), media_type="text/markdown"
    )


@router.get("/{doc_id}/json")
def document_as_json(doc_id: DocId, index: Index = Depends(get_index)) -> Response:
    """The full Document: pages, regions, lines and boxes."""
    return Response(_document(doc_id, index).model_dump_json(), media_type="application/json")
