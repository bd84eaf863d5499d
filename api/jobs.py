"""Ingest jobs: uploads are indexed one job at a time on a background thread.

Queries never wait for a job: they read the index while it is being written (a document
becomes visible once all its points are written).
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from ..ingest.loaders import show
from ..retrieval.index import FileError, Index, IngestEvent, IngestReport
from .schemas import JobStatus

log = logging.getLogger(__name__)
MAX_KEPT_JOBS = 1000


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class JobManager:
    def __init__(
        self, index: Index, on_report: Callable[[IngestReport], None] | None = None
    ) -> None:
        self.index = index
        self.on_report = on_report
        self._jobs: dict[str, JobStatus] = {}
        self._done: dict[str, threading.Event] = {}
        self._queue: queue.Queue[tuple[str, list[Path], list[Path] | None] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._run, name="scanrag-ingest", daemon=True)
        self._worker.start()

    def submit(
        self,
        paths: list[Path],
        rejected: list[FileError] | None = None,
        within: list[Path] | None = None,
    ) -> JobStatus:
        """Queue an ingest of `paths` (with `within`: no link out of those folders followed)."""
        job = JobStatus(
            id=uuid.uuid4().hex[:12],
            status="queued",
            files_total=len(paths) + len(rejected or []),
            files_done=len(rejected or []),
            errors=list(rejected or []),
            created_at=_now(),
        )
        with self._lock:
            self._jobs[job.id] = job
            self._done[job.id] = threading.Event()
            if len(self._jobs) > MAX_KEPT_JOBS:  # forget the oldest finished jobs
                for old in [j for j in self._jobs.values() if j.finished_at][
                    : len(self._jobs) - MAX_KEPT_JOBS
                ]:
                    self._jobs.pop(old.id, None)
                    self._done.pop(old.id, None)
        if paths:
            self._queue.put((job.id, paths, within))
        else:
            self._finish(job, None)
        return job.model_copy()

    def get(self, job_id: str) -> JobStatus | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return job.model_copy(deep=True) if job else None

    def wait(self, job_id: str) -> JobStatus | None:
        event = self._done.get(job_id)
        if event is not None:
            event.wait()
        return self.get(job_id)

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join(timeout=30)

    def _finish(self, job: JobStatus, report: IngestReport | None) -> None:
        with self._lock:
            if report is not None:
                job.report = report
                job.errors.extend(report.errors)
            indexed = report is not None and report.added + report.updated + report.unchanged > 0
            job.status = "done" if indexed or not job.errors else "failed"
            job.current_file = None
            job.finished_at = _now()
        self._done[job.id].set()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            job_id, paths, within = item
            job = self._jobs[job_id]
            with self._lock:
                job.status = "running"

            base = job.files_total - len(paths)  # files rejected at upload

            def on_progress(event: IngestEvent, job: JobStatus = job, base: int = base) -> None:
                with self._lock:
                    if event.kind == "file":
                        job.files_total = base + event.files_total  # a folder's files
                        job.current_file = show(event.path.name)
                        job.current_pages_done = job.current_pages_total = 0
                    elif event.kind == "page":
                        job.current_pages_done = event.pages_done
                        job.current_pages_total = event.pages_total
                        job.pages_done += 1
                    else:
                        job.files_done += 1

            try:
                report = self.index.ingest(paths, on_progress=on_progress, within=within)
            except Exception as exc:  # the worker must survive any job
                log.exception("ingest job %s failed", job_id)
                with self._lock:
                    job.errors.append(FileError(path="", error=f"ingest failed: {exc}"))
                self._finish(job, None)
                continue
            if self.on_report:
                self.on_report(report)
            self._finish(job, report)
