"""Documents: upload (→ an ingest job), list, get, delete, Markdown and JSON."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, File, HTTPException, Query, Response, UploadFile, status
from fastapi.responses import JSONResponse, PlainTextResponse

from ...ingest.loaders import SNIFF_BYTES, sniff_mime, unsupported_message
from ...ingest.markdown import document_markdown
from ...ingest.model import Document
from ...retrieval.index import DocumentInfo, FileError
from ..deps import AppState, get_state
from ..schemas import DocumentDetail, PageInfo, UploadResponse

router = APIRouter(prefix="/v1/documents", tags=["documents"])
CHUNK = 1 << 20


def safe_name(name: str | None) -> str:
    """A file name without directories or control characters (never empty)."""
    base = os.path.basename((name or "").replace("\\", "/"))
    base = re.sub(r"[\x00-\x1f]", "_", base)
    base = base.lstrip(".") or "upload"
    return base[:200]


def _receive(upload: UploadFile, state: AppState) -> tuple[Path | None, FileError | None]:
    """Stream an upload to disk under the size limit; check its type by content."""
    limit = state.settings.max_upload_mb * (1 << 20)
    name = safe_name(upload.filename)
    incoming = state.index.data_dir / "uploads" / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(dir=incoming, delete=False) as handle:
        tmp = Path(handle.name)
        head = b""
        while block := upload.file.read(CHUNK):
            size += len(block)
            if size > limit:
                handle.close()
                tmp.unlink(missing_ok=True)
                raise HTTPException(
                    413,  # Content Too Large (the constant was renamed in Starlette)
                    f"{name}: larger than the upload limit of {state.settings.max_upload_mb} MB "
                    "(SCANRAG_MAX_UPLOAD_MB)",
                )
            if len(head) < SNIFF_BYTES:
                head += block[: SNIFF_BYTES - len(head)]
            digest.update(block)
            handle.write(block)
    if size == 0:
        tmp.unlink(missing_ok=True)
        return None, FileError(path=name, error=f"{name}: the file is empty (0 bytes)")
    if sniff_mime(head) is None:
        tmp.unlink(missing_ok=True)
        return None, FileError(path=name, error=unsupported_message(Path(name)))
    target = state.index.data_dir / "uploads" / digest.hexdigest()[:16] / name
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, target)
    return target, None


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=UploadResponse,
    responses={
        413: {"description": "A file is over the size limit"},
        415: {"description": "No supported file"},
    },
)
def upload_documents(
    files: list[UploadFile] = File(..., description="PDF, PNG, JPEG, WebP, BMP or TIFF files."),
    wait: bool = Query(False, description="Answer only when the files are indexed."),
    state: AppState = Depends(get_state),
) -> JSONResponse:
    """Upload one or more files; they are indexed by a background job."""
    accepted: list[Path] = []
    rejected: list[FileError] = []
    for upload in files:
        path, error = _receive(upload, state)
        if path is not None:
            accepted.append(path)
        if error is not None:
            rejected.append(error)
    if not accepted:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "; ".join(e.error for e in rejected)
        )
    job = state.jobs.submit(accepted, rejected)
    body = UploadResponse(
        job_id=job.id,
        status_url=f"/v1/jobs/{job.id}",
        files=[p.name for p in accepted],
        rejected=rejected,
    )
    code = status.HTTP_202_ACCEPTED
    if wait:
        body.job = state.jobs.wait(job.id)
        code = status.HTTP_200_OK
    return JSONResponse(body.model_dump(mode="json"), status_code=code)


@router.get("", response_model=list[DocumentInfo])
def list_documents(state: AppState = Depends(get_state)) -> list[DocumentInfo]:
    return state.index.documents()


def _info(doc_id: str, state: AppState) -> DocumentInfo:
    info = next((d for d in state.index.documents() if d.doc_id == doc_id), None)
    if info is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document {doc_id!r}")
    return info


@router.get("/{doc_id}", response_model=DocumentDetail)
def get_document(doc_id: str, state: AppState = Depends(get_state)) -> DocumentDetail:
    info = _info(doc_id, state)
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
    paths = _info(doc_id, state).paths
    state.index.delete(doc_id)
    uploads = state.index.data_dir / "uploads"
    for path in map(Path, paths):
        if path.is_relative_to(uploads):
            shutil.rmtree(path.parent, ignore_errors=True)
    shutil.rmtree(state.index.data_dir / "pages" / doc_id, ignore_errors=True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _document(doc_id: str, state: AppState) -> Document:
    doc = state.index.document(doc_id)
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no parsed document {doc_id!r}")
    return doc


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
