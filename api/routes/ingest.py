"""Server-side ingest: index a folder or file the server can read, below the allowed roots.

Off unless `allowed_roots` is set. A path is accepted only when both its spelled-out form and
its real path (symlinks resolved) lie below one root; `..` is refused outright, and links met
while walking the folder that lead out of the roots are reported, not followed.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...ingest.loaders import show
from ..deps import AppState, get_state, job_response
from ..schemas import JobAccepted

router = APIRouter(prefix="/v1", tags=["ingest"])


class IngestRequest(BaseModel):
    path: str = Field(
        min_length=1,
        max_length=4096,
        description="A folder or file below one of the server's allowed roots: absolute, or "
        "relative to the first root.",
    )


class IngestResponse(JobAccepted):
    path: str


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def resolve_under_roots(spelled: str, roots: list[Path]) -> Path:
    """The path to ingest, or an HTTP error saying why it is refused."""
    if "\x00" in spelled:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the path holds a NUL character")
    if ".." in Path(spelled).parts:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{spelled!r}: '..' is not allowed")
    bases = [Path(os.path.abspath(root)) for root in roots]
    path = Path(os.path.abspath(bases[0] / spelled))  # an absolute `spelled` stays as it is
    root = next((base for base in bases if _inside(path, base)), None)
    if root is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{show(path)}: outside the allowed roots; ingest only below "
            + ", ".join(show(base) for base in bases),
        )
    if not _inside(Path(os.path.realpath(path)), Path(os.path.realpath(root))):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{show(path)}: a link that leads outside the allowed root {show(root)}",
        )
    if not path.exists():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{show(path)}: no such file or folder")
    return path


@router.post(
    "/ingest",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=IngestResponse,
    responses={
        403: {"description": "Server-side ingest is off, or the path is outside the roots"},
        404: {"description": "No such file or folder"},
    },
)
def ingest_path(
    request: IngestRequest,
    wait: bool = Query(False, description="Answer only when the files are indexed."),
    state: AppState = Depends(get_state),
) -> JSONResponse:
    """Index a folder (recursively, only what changed) or a file that the server reads
    itself; returns a job like an upload does."""
    roots = state.settings.allowed_roots
    if not roots:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "server-side ingest is off: set SCANRAG_ALLOWED_ROOTS to the folders it may read",
        )
    path = resolve_under_roots(request.path, roots)
    job = state.jobs.submit([path], within=roots)
    body = IngestResponse(job_id=job.id, status_url=f"/v1/jobs/{job.id}", path=show(path))
    return job_response(body, state, wait)
