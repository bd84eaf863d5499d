"""Ingest jobs: status and progress."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status

from ..deps import JobId, get_jobs, get_tenant
from ..jobs import JobManager
from ..schemas import JobStatus
from ..urls import JOB

router = APIRouter(tags=["jobs"])


@router.get(JOB, response_model=JobStatus)
def get_job(
    job_id: JobId, jobs: JobManager = Depends(get_jobs), tenant: str = Depends(get_tenant)
) -> JobStatus:
    """Status, files and pages done, and per-file errors of one of the tenant's ingest jobs."""
    job = jobs.get(job_id, tenant)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r}")
    return job
