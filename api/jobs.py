"""Ingest jobs: accepted work is recorded in SQLite before it is acknowledged, indexed one job
at a time on a background thread, and resumed when the server starts again.

`jobs.sqlite` lives beside the manifest (`DataDir.jobs`). A job is written (synchronously,
fsynced) before its 202 is sent, its progress after every file, and its end when it ends; a
server killed at any moment finds its `queued` and `running` jobs at the next start and runs
them again. That is safe because an ingest is idempotent: files indexed before the kill are
`unchanged`.

Queries never wait for a job: they read the index while it is being written (a document
becomes visible once all its points are written).

A job is its tenant's: it indexes into that tenant's documents, with the metadata it was
given, and only that tenant can read it (another tenant's job id answers as an unknown one).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..fsutil import open_sqlite
from ..ingest.loaders import show
from ..retrieval.index import Index
from ..retrieval.reports import FileError, IngestEvent, IngestReport
from ..tenants import DEFAULT
from .schemas import JobStatus

log = logging.getLogger(__name__)
MAX_KEPT_JOBS = 1000  # finished jobs kept for GET /v1/jobs/{id}; the oldest are forgotten
POLL_SECONDS = 0.2  # how often a ?wait=true request looks at its job

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- the order jobs were accepted in
    id TEXT NOT NULL UNIQUE,
    paths TEXT NOT NULL,        -- JSON list of the paths to ingest
    within TEXT,                -- JSON list of the folders reads must stay in, or null
    finished INTEGER NOT NULL,  -- 0 while queued or running
    status TEXT NOT NULL,       -- the JobStatus as JSON
    tenant TEXT NOT NULL DEFAULT 'default',  -- whose job (added with tenants)
    metadata TEXT               -- JSON object for its documents, or null
);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished, seq);
"""
#: Columns added since the first jobs table, for a jobs.sqlite written before them.
ADDED = {"tenant": f"TEXT NOT NULL DEFAULT '{DEFAULT}'", "metadata": "TEXT"}


@dataclass
class Work:
    """A job to run: the paths to ingest, the folders reads must stay in, the tenant it
    indexes for and the metadata its documents get (None: each keeps its own)."""

    job_id: str
    paths: list[Path]
    within: list[Path] | None
    tenant: str = DEFAULT
    metadata: dict[str, Any] | None = None


class Stopping(BaseException):
    """Raised inside a running ingest when the server shuts down: a BaseException, so that
    no per-file handler mistakes it for a file's failure. The job stays unfinished."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _paths(values: list[Path]) -> str:
    # ensure_ascii keeps undecodable name bytes (surrogate escapes) round-tripping
    return json.dumps([os.fspath(path) for path in values])


class JobStore:
    """The jobs table: one connection shared by the request threads and the worker."""

    def __init__(self, path: Path) -> None:
        self._db, self._lock = open_sqlite(path)  # a 202 promises the job survives a crash
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, kind in ADDED.items():
            if name not in columns:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {kind}")

    def add(self, job: JobStatus, work: Work) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, paths, within, finished, status, tenant, metadata) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    _paths(work.paths),
                    _paths(work.within) if work.within is not None else None,
                    int(job.finished_at is not None),
                    job.model_dump_json(),
                    work.tenant,
                    json.dumps(work.metadata) if work.metadata is not None else None,
                ),
            )

    def save(self, job: JobStatus) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET finished = ?, status = ? WHERE id = ?",
                (int(job.finished_at is not None), job.model_dump_json(), job.id),
            )

    def get(self, job_id: str, tenant: str) -> JobStatus | None:
        with self._lock:
            row = self._db.execute(
                "SELECT status FROM jobs WHERE id = ? AND tenant = ?", (job_id, tenant)
            ).fetchone()
        return JobStatus.model_validate_json(row[0]) if row else None

    def unfinished(self) -> list[tuple[JobStatus, Work]]:
        """Jobs accepted but not finished (a previous server stopped or died), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT status, id, paths, within, tenant, metadata FROM jobs WHERE finished = 0 "
                "ORDER BY seq"
            ).fetchall()
        return [
            (
                JobStatus.model_validate_json(status),
                Work(
                    job_id,
                    [Path(p) for p in json.loads(paths)],
                    [Path(p) for p in json.loads(within)] if within is not None else None,
                    tenant,
                    json.loads(metadata) if metadata is not None else None,
                ),
            )
            for status, job_id, paths, within, tenant, metadata in rows
        ]

    def prune(self, keep: int) -> None:
        """Forget all but the `keep` newest finished jobs of each tenant (one tenant's many
        jobs never push out another's)."""
        with self._lock:
            self._db.execute(
                "DELETE FROM jobs WHERE seq IN (SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER "
                "(PARTITION BY tenant ORDER BY seq DESC) AS newer FROM jobs WHERE finished = 1) "
                "WHERE newer > ?)",
                (keep,),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


class TenantQueue:
    """Jobs waiting to run, taken in turn by tenant: one tenant's many jobs never hold another
    tenant's back, and each tenant's run in the order they came."""

    def __init__(self) -> None:
        self._waiting: dict[str, deque[Work]] = {}  # tenants in turn: the next one first
        self._ready = threading.Condition()
        self._closed = False

    def put(self, work: Work) -> None:
        with self._ready:
            self._waiting.setdefault(work.tenant, deque()).append(work)
            self._ready.notify()

    def get(self) -> Work | None:
        """The next job (waiting for one), or None once closed."""
        with self._ready:
            while not self._waiting and not self._closed:
                self._ready.wait()
            if self._closed:
                return None
            tenant = next(iter(self._waiting))
            jobs = self._waiting.pop(tenant)
            work = jobs.popleft()
            if jobs:
                self._waiting[tenant] = jobs  # to the back of the line
            return work

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()


class JobManager:
    def __init__(
        self, index: Index, on_report: Callable[[IngestReport], None] | None = None
    ) -> None:
        self.index = index
        self.on_report = on_report
        self.store = JobStore(index.data.jobs)
        self._active: dict[str, tuple[JobStatus, str]] = {}  # queued, running: job, tenant
        self._queue = TenantQueue()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        for job, work in self.store.unfinished():
            job.status, job.current_file = "queued", None
            job.resumed += 1
            self.store.save(job)
            self._active[job.id] = (job, work.tenant)
            self._queue.put(work)
        if self._active:
            log.warning("resuming %d unfinished ingest job(s)", len(self._active))
        self._worker = threading.Thread(target=self._run, name="scanrag-ingest", daemon=True)
        self._worker.start()

    def submit(
        self,
        paths: list[Path],
        rejected: list[FileError] | None = None,
        within: list[Path] | None = None,
        tenant: str = DEFAULT,
        metadata: dict[str, Any] | None = None,
    ) -> JobStatus:
        """Record, then queue, an ingest of `paths` for `tenant` (at least one path; with
        `within`: nothing outside those folders is read; with `metadata`: its documents get
        it). When this returns, the job survives a crash of the server."""
        job = JobStatus(
            id=uuid.uuid4().hex[:12],
            status="queued",
            files_total=len(paths) + len(rejected or []),
            files_done=len(rejected or []),
            errors=list(rejected or []),
            created_at=_now(),
        )
        work = Work(job.id, paths, within, tenant, metadata)
        self.store.add(job, work)
        with self._lock:
            self._active[job.id] = (job, tenant)
        self._queue.put(work)
        return job.model_copy(deep=True)

    def get(self, job_id: str, tenant: str) -> JobStatus | None:
        """The tenant's job (another tenant's is None, as an unknown id)."""
        with self._lock:
            active = self._active.get(job_id)
            if active is not None:
                job, owner = active
                return job.model_copy(deep=True) if owner == tenant else None
        return self.store.get(job_id, tenant)

    async def wait(
        self, job_id: str, tenant: str, timeout: float, gone: Callable[[], Awaitable[bool]]
    ) -> JobStatus | None:
        """The job once finished, or as it is after `timeout` seconds, when `gone()` says the
        client has disconnected, or when the server stops. Holds no thread while waiting."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                running = job_id in self._active
            if not running or time.monotonic() >= deadline or self._stopping.is_set():
                return self.get(job_id, tenant)
            if await gone():
                return None
            await asyncio.sleep(POLL_SECONDS)

    def close(self, timeout: float) -> bool:
        """Stop within about `timeout` seconds: the running ingest stops at its next file or
        page and its job stays unfinished, to be resumed at the next start. False when the
        worker did not stop in time (it is a daemon thread: it ends with the process)."""
        self._stopping.set()
        self._queue.close()
        self._worker.join(timeout=timeout)
        if self._worker.is_alive():
            log.warning("the ingest did not stop in %.0f s; its job resumes at next start", timeout)
            return False
        self.store.close()
        return True

    def _finish(self, job: JobStatus, report: IngestReport | None) -> None:
        with self._lock:
            if report is not None:
                job.report = report
                job.errors.extend(report.errors)
            indexed = report is not None and report.added + report.updated + report.unchanged > 0
            job.status = "done" if indexed or not job.errors else "failed"
            job.current_file = None
            job.finished_at = _now()

    def _save(self, job: JobStatus) -> None:
        with self._lock:
            snapshot = job.model_copy(deep=True)
        self.store.save(snapshot)

    def _run(self) -> None:
        while not self._stopping.is_set() and (work := self._queue.get()) is not None:
            job_id = work.job_id
            job = self._active[job_id][0]
            with self._lock:
                job.status = "running"
            self._save(job)
            try:
                report = self._ingest(job, work)
            except Stopping:
                with self._lock:
                    job.status, job.current_file = "queued", None
                self._save(job)
                return
            except Exception as exc:  # the worker must survive any job
                log.exception("ingest job %s failed", job_id)
                with self._lock:
                    job.errors.append(FileError(path="", error=f"ingest failed: {exc}"))
                report = None
            if report is not None and self.on_report:
                self.on_report(report)
            self._finish(job, report)
            self._save(job)
            with self._lock:
                del self._active[job_id]
            self.store.prune(MAX_KEPT_JOBS)

    def _ingest(self, job: JobStatus, work: Work) -> IngestReport:
        base = len(job.errors)  # the files rejected at upload (the only errors before the end)
        with self._lock:  # a resumed job counts again from the start
            job.files_done, job.pages_done = base, 0

        def on_progress(event: IngestEvent) -> None:
            if self._stopping.is_set():
                raise Stopping
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
            if event.kind == "done":
                self._save(job)

        index = self.index.as_tenant(work.tenant)
        return index.ingest(work.paths, on_progress, work.within, work.metadata)
