"""Server-side ingest: index a folder or file the server can read, below the allowed roots.

Off unless `allowed_roots` is set. A path is accepted only when both its spelled-out form and
its real path (symlinks resolved) lie below one root; `..` is refused outright, and links met
while walking the folder that lead out of the roots are reported, not followed.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from ...config import Settings
from ...errors import Text
from ...ingest.loaders import show
from ...retrieval.metadata import Metadata
from ..deps import get_jobs, get_settings, get_tenant, job_response
from ..jobs import JobManager
from ..schemas import JobAccepted
from ..urls import API, job_url

router = APIRouter(prefix=API, tags=["ingest"])


class IngestRequest(BaseModel):
    path: Text = Field(
        min_length=1,
        max_length=4096,
        description="A folder or file below one of the server's allowed roots: absolute, or "
        "relative to the first root.",
    )
    metadata: Metadata | None = Field(
        None,
        description="Metadata for every document of the path (string, number or boolean "
        "values); without it, documents indexed before keep theirs.",
    )


class IngestResponse(JobAccepted):
    path: str


def resolve_under_roots(spelled: str, roots: list[Path], data_dir: Path) -> Path:
    """The path to ingest, or an HTTP error saying why it is refused (naming the path as it
    was sent, never the roots: their layout is the server's business). Nothing inside the
    data directory is read, whether it exists or not: it holds every tenant's uploads and
    page images."""
    if "\x00" in spelled:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the path holds a NUL character")
    shown = repr(spelled if len(spelled) <= 200 else spelled[:200] + "…")
    if ".." in Path(spelled).parts:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"{shown}: '..' is not allowed")
    bases = [Path(os.path.abspath(root)) for root in roots]
    path = Path(os.path.abspath(bases[0] / spelled))  # an absolute `spelled` stays as it is
    root = next((base for base in bases if path.is_relative_to(base)), None)
    if root is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"{shown}: outside the allowed roots (SCANRAG_ALLOWED_ROOTS); send a path "
            "relative to the first root, or an absolute one below a root",
        )
    try:
        real = Path(os.path.realpath(path))
        if real.is_relative_to(os.path.realpath(data_dir)):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"{shown}: inside scanrag's data directory"
            )
        if not real.is_relative_to(os.path.realpath(root)):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{shown}: a link that leads outside the allowed roots",
            )
        exists = path.exists()
    except OSError as exc:  # a name too long for the file system, a link loop
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"{shown}: not a usable path ({exc.strerror})"
        ) from exc
    if not exists:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{shown}: no such file or folder")
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
async def ingest_path(
    body: IngestRequest,
    request: Request,
    wait: bool = Query(
        False, description="Answer when the files are indexed (at most SCANRAG_WAIT_TIMEOUT)."
    ),
    settings: Settings = Depends(get_settings),
    jobs: JobManager = Depends(get_jobs),
    tenant: str = Depends(get_tenant),
) -> JSONResponse:
    """Index a folder (recursively, only what changed) or a file that the server reads
    itself, for the caller's tenant; returns a job like an upload does. The allowed roots are
    the server's, the same for every tenant."""
    roots = settings.allowed_roots
    if not roots:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "server-side ingest is off: set SCANRAG_ALLOWED_ROOTS to the folders it may read",
        )
    path = await run_in_threadpool(resolve_under_roots, body.path, roots, settings.data_dir)
    job = await run_in_threadpool(jobs.submit, [path], None, roots, tenant, body.metadata)
    accepted = IngestResponse(job_id=job.id, status_url=job_url(job.id), path=show(path))
    return await job_response(accepted, jobs, settings, wait, request, tenant)
