"""Documents: upload (→ an ingest job), list, get, delete, Markdown and JSON."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Depends, File, HTTPException, Query, Response, UploadFile, status
from fastapi.responses import JSONResponse, PlainTextResponse

from ...errors import CorruptFile, LimitExceeded, ScanragError, UnsupportedFile
from ...ingest.loaders import check_source, empty_message, show
from ...ingest.markdown import document_markdown
from ...ingest.model import Document
from ...retrieval.index import DocumentInfo, FileError
from ...retrieval.pii import mask_document
from ..deps import AppState, document_info, get_state, job_response
from ..schemas import DocumentDetail, PageInfo, UploadResponse

router = APIRouter(prefix="/v1/documents", tags=["documents"])
CHUNK = 1 << 20


def safe_name(name: str | None) -> str:
    """A file name without directories or control characters (never empty)."""
    base = os.path.basename((name or "").replace("\\", "/"))
    base = re.sub(r"[\x00-\x1f]", "_", base)
    base = base.lstrip(".") or "upload"
    return base[:200]


def _receive(upload: UploadFile, state: AppState) -> tuple[Path | None, Rejected | None]:
    """Stream an upload to disk under the size limit, then check its header (type, pages,
    pixels, password); a refused file is deleted and reported, the others are kept."""
    limit = state.settings.max_upload_mb * (1 << 20)
    name = safe_name(upload.filename)
    incoming = state.index.data_dir / "uploads" / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(dir=incoming, delete=False) as handle:
        tmp = Path(handle.name)
    try:
        with open(tmp, "wb") as handle:
            while block := upload.file.read(CHUNK):
                size += len(block)
                if size > limit:
                    break
                digest.update(block)
                handle.write(block)
        if size > limit:
            raise LimitExceeded(
                f"{name}: larger than the upload limit of {state.settings.max_upload_mb} MB "
                "(SCANRAG_MAX_UPLOAD_MB)"
            )
        if size == 0:  # not a document at all (415), where check_source says "corrupt"
            raise UnsupportedFile(empty_message(name))
        check_source(tmp, state.settings)  # header only: decoding is the job's work
    except ScanragError as exc:
        tmp.unlink(missing_ok=True)
        return None, Rejected(name, type(exc)(str(exc).replace(show(tmp), name)))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    target = state.index.data_dir / "uploads" / digest.hexdigest()[:16] / name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return target, None


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


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UploadResponse,
    responses={
        413: {"description": "No file accepted: one is over the size, page or pixel limit"},
        415: {"description": "No file accepted: none is a supported document type"},
        422: {"description": "No file accepted: one is broken, encrypted or has no pages"},
    },
)
def upload_documents(
    files: list[UploadFile] = File(..., description="PDF, PNG, JPEG, WebP, BMP or TIFF files."),
    wait: bool = Query(False, description="Answer only when the files are indexed."),
    state: AppState = Depends(get_state),
) -> JSONResponse:
    """Upload one or more files; they are indexed by a background job.

    Each file is checked at once by its header (type, size, page count, pixel size, PDF
    password): a file that fails is listed in `rejected` and never stored. A file whose pages
    turn out not to decode fails in the job (`GET /v1/jobs/{id}` lists it in `errors`).
    """
    if len(files) > state.settings.max_upload_files:
        raise HTTPException(
            413,
            f"{len(files)} files in one upload, more than {state.settings.max_upload_files}; "
            "send them in several requests or raise SCANRAG_MAX_UPLOAD_FILES",
        )
    accepted: list[Path] = []
    refused: list[Rejected] = []
    for upload in files:
        path, error = _receive(upload, state)
        if path is not None:
            accepted.append(path)
        if error is not None:
            refused.append(error)
    rejected = [item.as_file_error() for item in refused]
    if not accepted:
        raise HTTPException(rejection_status(refused), " | ".join(e.error for e in rejected))
    job = state.jobs.submit(accepted, rejected)
    body = UploadResponse(
        job_id=job.id,
        status_url=f"/v1/jobs/{job.id}",
        files=[p.name for p in accepted],
        rejected=rejected,
    )
    return job_response(body, state, wait)


@router.get("", response_model=list[DocumentInfo])
def list_documents(state: AppState = Depends(get_state)) -> list[DocumentInfo]:
    return state.index.documents()


@router.get("/{doc_id}", response_model=DocumentDetail)
def get_document(doc_id: str, state: AppState = Depends(get_state)) -> DocumentDetail:
    info = document_info(doc_id, state)
    doc = state.index.document(doc_id)
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
                image_url=f"/v1/documents/{doc_id}/pages/{page.number}/image",
            )
            for page in doc.pages
        ]
    return detail


@router.delete("/{doc_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_document(doc_id: str, state: AppState = Depends(get_state)) -> Response:
    """Remove the document from the index, with its uploaded file and page images."""
    paths = document_info(doc_id, state).paths
    state.index.delete(doc_id)
    uploads = (state.index.data_dir / "uploads").absolute()  # the manifest's paths are absolute
    for path in map(Path, paths):
        if path.is_relative_to(uploads):
            shutil.rmtree(path.parent, ignore_errors=True)
    shutil.rmtree(state.index.data_dir / "pages" / doc_id, ignore_errors=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _document(doc_id: str, state: AppState) -> Document:
    doc = state.index.document(doc_id)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no parsed document {doc_id!r}")
    return mask_document(doc) if state.settings.mask_pii else doc


@router.get("/{doc_id}/markdown", response_class=PlainTextResponse)
def document_as_markdown(
    doc_id: str,
    anchors: bool = Query(True, description="Keep the region anchor comments."),
    state: AppState = Depends(get_state),
) -> PlainTextResponse:
    """Layout-aware Markdown; anchors carry region ids and boxes."""
    return PlainTextResponse(
        document_markdown(_document(doc_id, state), anchors), media_type="text/markdown"
    )


@router.get("/{doc_id}/json")
def document_as_json(doc_id: str, state: AppState = Depends(get_state)) -> Response:
    """The full Document: pages, regions, lines and boxes."""
    return Response(_document(doc_id, state).model_dump_json(), media_type="application/json")
