"""One ingest: bring the index in line with files and folders.

A run decides what each file needs (nothing, a cached parse, or parsing), sends what needs
parsing to the runner, and indexes each Document as soon as it is complete, with the outcome
of handling one file after another: the same Documents, manifest rows and points, and the
report in file order. It works through explicit parts (`IngestParts`): the manifest, the
store, the data directory and its parse cache, the encoders and the runner.

A document's points are replaced in one write after its row is marked `indexing`, and the row
is marked `done` only after the write returns: a run killed at any point leaves rows that the
next run finishes, and never duplicate or orphan points.

A run is one tenant's: it reads and writes that tenant's manifest rows, points, parses, page
images and uploads only, and keeps within the tenant's limits (documents, pages): a file that
would take the tenant over one fails, with a message naming the limit. Metadata given to the
run goes on every document it indexes, and on unchanged ones whose metadata differs (a
payload update, no parsing); without it, a document keeps what it had.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ..config import Settings
from ..datadir import DataDir, fell_back, recorded_fp
from ..errors import ConfigError, LimitExceeded, ScanragError
from ..fsutil import atomic_write
from ..ingest.loaders import SourceFile, discover, failure_message, open_source, show
from ..ingest.model import Document, doc_id_for
from ..ingest.parallel import (
    InlineRunner,
    ParseResult,
    ParseUnit,
    Runner,
    Runners,
    batch_size,
    plan_units,
    worker_threads,
)
from ..ingest.parsers import Parser
from ..ingest.pipeline import join_parts
from ..tenants import DEFAULT
from .manifest import FileRecord, Manifest
from .points import Encoders, metadata_payload
from .reports import FileError, IngestEvent, IngestReport, OnProgress
from .results import ChunkPayload
from .store import Store

log = logging.getLogger(__name__)
_T = TypeVar("_T")


def write_metadata(
    store: Store, manifest: Manifest, tenant: str, doc_id: str, metadata: dict[str, Any]
) -> None:
    """A document's metadata, on its points and its rows: a payload update, no parsing."""
    store.set_payload(doc_id, metadata_payload(metadata), tenant=tenant)
    manifest.set_metadata(tenant, doc_id, metadata)


@dataclass
class IngestParts:
    """What a run reads and writes. The Index holds these and lends them to each run."""

    settings: Settings
    data: DataDir
    manifest: Manifest
    store: Callable[[], Store]  # opened on first use: a run with nothing to write opens none
    encoders: Encoders
    runners: Runners
    #: The store exists and belongs to this data dir alone (not a server's collection, which
    #: other data dirs may share): its points that no file refers to are swept.
    sweep_store: bool
    #: The index's lock, held while a document's metadata is read and written (a PATCH, a
    #: file's write), so neither overwrites the other with what it read before.
    metadata_lock: threading.RLock


@dataclass
class FileJob:
    """One file of an ingest run, from its first look to its status."""

    path: Path
    number: int
    row: FileRecord | None
    stat: os.stat_result
    source: SourceFile | None = None
    status: str | None = None
    outstanding: int = 0  # units out being parsed
    parts: list[Document] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)  # first page of a unit → error
    pages_done: int = 0
    parse_seconds: float = 0.0
    followers: list[FileJob] = field(default_factory=list)  # same content, found meanwhile

    @property
    def opened(self) -> SourceFile:
        assert self.source is not None, "the file has not been opened"
        return self.source


class IngestRun:
    """One `Index.ingest`: files that need parsing go out, come back in any order and are
    indexed as they complete."""

    def __init__(
        self,
        parts: IngestParts,
        parser: Parser,
        parser_fp: str,
        index_fp: str,
        on_progress: OnProgress | None = None,
        within: list[Path] | None = None,
        tenant: str = DEFAULT,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.parts = parts
        self.settings = parts.settings
        self.manifest = parts.manifest
        self.tenant = tenant
        self.files = parts.data.tenant(tenant)
        self.metadata = metadata  # None: each document keeps its own
        self.limits = parts.settings.limits_for(tenant)
        self.within = within  # files are opened only below these folders
        self.parser_fp = parser_fp
        self.index_fp = index_fp
        self.on_progress = on_progress
        self.report = IngestReport()
        self.total = 0
        self.statuses: dict[int, str] = {}
        self.errors: dict[int, FileError] = {}
        self.finished = 0
        threads = worker_threads(parts.settings)
        unit_settings = parts.settings.merged(ocr_threads=threads) if threads else parts.settings
        self.values = {  # what a parse worker needs: its doc ids, its pages; no API keys
            **unit_settings.model_dump(exclude={"api_key", "api_keys", "api_keys_file"}),
            "tenant": tenant,
        }
        self.batch = batch_size(parts.settings, parser)
        self.units: dict[tuple[Path, tuple[int, int] | None], FileJob] = {}
        self.parsing: dict[str, FileJob] = {}  # sha256 → the job parsing that content
        self._runner: Runner | None = None
        #: The tenant's rows by path as the run found them (`run` reads them), for the
        #: decisions taken before any file is written: unchanged on its stat, missing, swept.
        self.rows: dict[Path, FileRecord] = {}

    # --- the run ------------------------------------------------------------------------

    def run(self, paths: list[Path] | list[str]) -> IngestReport:
        """Add new files, re-index changed ones, drop files gone from the folders given.
        Failures are per file; with `within`, links leading outside it are failures too."""
        started = time.perf_counter()
        report = self.report
        roots = [Path(os.path.abspath(path)) for path in paths]
        self.rows = {row.path: row for row in self.manifest.all(self.tenant)}
        data_dir = self.parts.settings.data_dir
        found = discover(roots, is_known=self._unchanged, within=self.within, skip=[data_dir])
        report.unchanged = len(found.known)
        report.skipped = len(found.skipped)
        for path, message in found.errors:
            report.failed += 1
            report.errors.append(FileError(path=show(path), error=message))
            row = self.rows.get(Path(os.path.abspath(path)))
            if row is not None and row.error != message:  # an indexed file now unreadable:
                row.error = message  # its old version stays searchable, the row says why
                self.manifest.put(row)

        seen = [p for p, _ in found.files] + found.known + [p for p, _ in found.errors]
        present = {Path(os.path.abspath(p)) for p in seen}
        report.removed = self._remove_missing(roots, present)
        self._finish_interrupted_removals()

        self.total = len(found.files)
        for number, (path, _mime) in enumerate(found.files, start=1):
            self.start(Path(os.path.abspath(path)), number)
            self.collect(block=False)
        self.collect_all()
        report.documents = [
            {"path": show(path), "status": self.statuses[number]}
            for number, (path, _mime) in enumerate(found.files, start=1)
        ]
        report.errors += [self.errors[number] for number in sorted(self.errors)]
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _unchanged(self, path: Path, stat: os.stat_result) -> bool:
        """Done with these settings and this metadata, and the same size and mtime: not even
        hashed."""
        row = self.rows.get(Path(os.path.abspath(path)))
        return (
            row is not None
            and row.status == "done"
            and row.size == stat.st_size
            and row.mtime_ns == stat.st_mtime_ns
            and row.parser_fp == self.parser_fp
            and row.index_fp == self.index_fp
            and self.metadata in (None, row.metadata)
        )

    @property
    def runner(self) -> Runner:
        if self._runner is None:  # only when something needs parsing (Ray starts slowly)
            self._runner = self.parts.runners.get()
            if isinstance(self._runner, InlineRunner):
                self._runner.on_page = self._on_page
        return self._runner

    def _event(self, kind: str, job: FileJob, **values: Any) -> None:
        if self.on_progress:
            number = self.finished if kind == "done" else job.number
            self.on_progress(IngestEvent(kind, job.path, number, self.total, **values))

    def _on_page(self, unit: ParseUnit, done: int, pages: int) -> None:
        job = self.units.get((unit.path, unit.pages))
        if job is not None:
            self._event("page", job, pages_done=done, pages_total=pages)

    # --- files out --------------------------------------------------------------------

    def start(self, path: Path, number: int) -> None:
        """Look at a file: unchanged, cached, or sent to be parsed."""
        try:
            stat = path.stat()  # the file may have vanished since discovery
        except OSError as exc:
            message = f"{show(path)}: disappeared or unreadable during ingest ({exc.strerror})"
            self.report.failed += 1
            self.errors[number] = FileError(path=show(path), error=message)
            self.statuses[number] = "failed"
            self.finished += 1
            return
        # Its row as it is now, not as the run found it: a file indexed before it in this run
        # may have changed it (a document's metadata is on every row of that document).
        job = FileJob(path, number, self.manifest.get(self.tenant, path), stat)
        self._event("file", job)
        ok, doc = self._guard(job, lambda: self._open(job))
        if not ok:
            return
        if job.status in ("unchanged", "updated"):  # updated: its metadata alone
            if job.status == "unchanged":
                self.report.unchanged += 1
            else:
                self.report.updated += 1
            self._done(job)
        elif doc is not None:
            self._index(job, doc)
        elif job.opened.sha256 in self.parsing:  # the same content is being parsed
            self.parsing[job.opened.sha256].followers.append(job)
        else:
            self._dispatch(job)

    def _open(self, job: FileJob) -> Document | None:
        """Hash the file and decide: unchanged (touched), cached, or to be parsed (None).
        Raises what `open_source` raises (with `within`: for a file now outside them)."""
        row = job.row
        source = open_source(job.path, self.settings, self.within)
        job.source = source
        if (
            row
            and row.doc_id
            and row.status == "done"
            and row.sha256 == source.sha256
            and row.parser_fp == self.parser_fp
            and row.index_fp == self.index_fp
        ):
            row.size, row.mtime_ns = job.stat.st_size, job.stat.st_mtime_ns
            self.manifest.put(row)  # touched, not changed
            job.status = "unchanged"
            if self.metadata is not None and self.metadata != row.metadata:
                self.set_metadata(row.doc_id, self.metadata)
                job.status = "updated"
            return None
        self._check_limits(job, doc_id_for(source.sha256, self.tenant), source.page_count)
        return self.files.cache.get(source.sha256, self.parser_fp)

    def set_metadata(self, doc_id: str, metadata: dict[str, Any]) -> None:
        """A document's metadata, on its points and its rows: a payload update, no parsing."""
        with self.parts.metadata_lock:
            write_metadata(self.parts.store(), self.manifest, self.tenant, doc_id, metadata)

    def _check_limits(self, job: FileJob, doc_id: str, pages: int) -> None:
        """Raise LimitExceeded when indexing `doc_id` (of `pages` pages) in place of the file's
        present document would take the tenant over its documents or pages limit."""
        limits = self.limits
        if limits.documents is None and limits.pages is None:
            return
        if self.manifest.by_doc(self.tenant, doc_id):
            return  # held already: re-indexing it adds nothing
        documents, held = self.manifest.usage(self.tenant)
        documents, held = documents + 1, held + pages
        row = job.row
        others = self.manifest.by_doc(self.tenant, row.doc_id) if row and row.doc_id else []
        if row and [r.path for r in others] == [job.path]:  # its present document goes
            documents, held = documents - 1, held - (row.pages or 0)
        over = limits.over(documents, held)
        if over is not None:
            raise LimitExceeded(
                f"{show(job.path)}: indexing it would give tenant {self.tenant!r} {over}; "
                "delete documents, or raise SCANRAG_TENANT_MAX_DOCUMENTS / _MAX_PAGES (or the "
                "tenant's tenant_limits entry)"
            )

    def _dispatch(self, job: FileJob) -> None:
        self.parsing[job.opened.sha256] = job
        units = plan_units(job.opened, self.values, self.parser_fp, self.batch)
        job.outstanding = len(units)
        for unit in units:
            while self.runner.pending >= self.runner.slots:
                self.collect(block=True)
            self.units[(unit.path, unit.pages)] = job
            self.runner.submit(unit)

    # --- results back -----------------------------------------------------------------

    def collect(self, block: bool) -> None:
        if self._runner is not None:
            for result in self._runner.results(block):
                self._receive(result)

    def collect_all(self) -> None:
        while self._runner is not None and self._runner.pending:
            self.collect(block=True)

    def _receive(self, result: ParseResult) -> None:
        job = self.units.pop((result.path, result.pages))
        job.outstanding -= 1
        if result.error:
            if result.config_error:
                raise ConfigError(result.error)
            job.failures[result.pages[0] if result.pages else 1] = result.error
        else:
            assert result.document is not None
            part = Document.model_validate_json(result.document)
            self._store_images(part, result.images)
            job.parts.append(part)
            job.parse_seconds += result.seconds
            if not self.runner.reports_pages:  # progress fed by completed tasks
                for _ in part.pages:
                    job.pages_done += 1
                    self._event(
                        "page", job, pages_done=job.pages_done, pages_total=job.opened.page_count
                    )
        if job.outstanding == 0:
            self._complete(job)

    def _store_images(self, doc: Document, images: dict[int, bytes]) -> None:
        """Write the page images a worker sent back where the Document says they are."""
        for page in doc.pages:
            data = images.get(page.number)
            if data is not None and page.image:
                atomic_write(self.parts.data.file(page.image), data)

    def _complete(self, job: FileJob) -> None:
        del self.parsing[job.opened.sha256]
        doc: Document | None = None
        message = ""
        if job.failures:
            message = job.failures[min(job.failures)]
        else:
            try:
                doc = join_parts(job.path, job.parts) if len(job.parts) > 1 else job.parts[0]
            except ScanragError as exc:
                message = str(exc)
        if doc is None:
            self._fail(job, message)
        else:
            self.report.pages += len(doc.pages)
            self.report.parse_seconds = round(self.report.parse_seconds + job.parse_seconds, 3)
            self.files.cache.put(doc, self.parser_fp)  # re-chunking never parses again
            self._index(job, doc)
        followers = sorted(job.followers, key=lambda other: other.number)
        if doc is not None and not fell_back(doc):
            for follower in followers:  # what a cache hit would have given them
                self._index(follower, doc)
        elif followers:  # no cache entry for them: parse again, as one after another would
            followers[0].followers = followers[1:]
            self._dispatch(followers[0])

    def _index(self, job: FileJob, doc: Document) -> None:
        ok, status = self._guard(job, lambda: self._write(job, doc))
        if not ok:
            return
        job.status = status
        if job.status == "added":
            self.report.added += 1
        else:
            self.report.updated += 1
        self.report.warnings += [FileError(path=show(job.path), error=w) for w in doc.warnings]
        self._done(job)

    def _guard(self, job: FileJob, step: Callable[[], _T]) -> tuple[bool, _T | None]:
        """Run one step for a file: (True, its result), or (False, None) once the file is
        failed. A file's own error fails it alone, so does a bug (logged with its traceback);
        a configuration error stops the run, since every file would fail the same way."""
        try:
            return True, step()
        except ConfigError:
            raise
        except LimitExceeded as exc:
            self._fail(job, failure_message(job.path, exc), refused=True)
            return False, None
        except (ScanragError, OSError) as exc:
            message = failure_message(job.path, exc)
        except Exception as exc:
            log.exception("ingest failed for %s", show(job.path))
            message = failure_message(job.path, exc)
        self._fail(job, message)
        return False, None

    def _fail(self, job: FileJob, message: str, refused: bool = False) -> None:
        """Record a file's failure. An upload refused for a limit, with no document of its
        own yet, is not kept: nothing could index it, and nothing else could delete it."""
        if refused and self.files.is_upload(job.path) and not (job.row and job.row.doc_id):
            self.files.drop_upload(job.path)
            self.manifest.remove(self.tenant, job.path)
        else:
            self._record_failure(job, message)
        self.report.failed += 1
        self.errors[job.number] = FileError(path=show(job.path), error=message)
        job.status = "failed"
        self._done(job)

    def _done(self, job: FileJob) -> None:
        self.statuses[job.number] = job.status or "failed"
        self.finished += 1
        self._event("done", job, status=job.status)

    # --- the manifest and the store -----------------------------------------------------

    def _write(self, job: FileJob, doc: Document) -> str:
        """Replace the file's points with the Document's, crash-safely: the row is `indexing`
        while the points change and `done` only once all of them are written."""
        path, row, stat = job.path, job.row, job.stat
        self._check_limits(job, doc.id, len(doc.pages))
        metadata = self._metadata_for(job, doc.id)
        record = FileRecord(
            path,
            job.opened.sha256,
            stat.st_size,
            stat.st_mtime_ns,
            doc.id,
            "indexing",
            recorded_fp(doc, self.parser_fp),  # a fallback parse is retried next run
            self.index_fp,
            len(doc.pages),
            None,
            tenant=self.tenant,
            metadata=metadata,
        )
        display = self.parts.data.display(path)
        points = self.parts.encoders.points(doc, display, self.tenant, metadata)
        with self.parts.metadata_lock:  # a PATCH since the points were built wins
            record.metadata = self._metadata_for(job, doc.id)
            self.manifest.put(record)
            if row and row.doc_id and row.doc_id != doc.id:
                self._drop_doc_if_unreferenced(row.doc_id, except_path=path)
            store = self.parts.store()
            store.delete_doc(doc.id, tenant=self.tenant)
            store.upsert(points)
            record.status = "done"
            self.manifest.put(record, document_wide=True)  # its metadata on its other rows
            if record.metadata != metadata:
                store.set_payload(doc.id, metadata_payload(record.metadata), tenant=self.tenant)
        if row is None or (row.status == "failed" and not row.doc_id):
            return "added"
        return "updated"

    def _metadata_for(self, job: FileJob, doc_id: str) -> dict[str, Any]:
        """The run's metadata; else what the file had (it keeps it through changes); else
        what another file of the same content has."""
        if self.metadata is not None:
            return self.metadata
        row = self.manifest.get(self.tenant, job.path)  # now: a PATCH may have changed it
        if row is not None and row.doc_id:
            return row.metadata
        same = self.manifest.by_doc(self.tenant, doc_id)
        return same[0].metadata if same else {}

    def _record_failure(self, job: FileJob, error: str) -> None:
        """A failed file keeps its previous document (if any) searchable; the row says why."""
        row = job.row
        if row is not None and row.status == "done":
            row.error = error
            self.manifest.put(row)
            return
        if row is not None and row.status == "indexing" and row.doc_id:
            self._drop_doc_if_unreferenced(row.doc_id, except_path=job.path)
        self.manifest.put(
            FileRecord(
                job.path,
                None,
                job.stat.st_size,
                job.stat.st_mtime_ns,
                None,
                "failed",
                self.parser_fp,
                self.index_fp,
                None,
                error,
                tenant=self.tenant,
            )
        )

    def _remove_missing(self, roots: list[Path], present: set[Path]) -> int:
        """Files under the given folders that are gone (or no longer documents) leave the index."""
        folders = [root for root in roots if root.is_dir()]
        removed = 0
        for row in list(self.rows.values()):
            inside = any(row.path.is_relative_to(folder) for folder in folders)
            if inside and row.path not in present:
                if row.doc_id:
                    self._drop_doc_if_unreferenced(row.doc_id, except_path=row.path)
                self.manifest.remove(self.tenant, row.path)
                del self.rows[row.path]
                removed += 1
        return removed

    def _finish_interrupted_removals(self) -> None:
        """The tenant's points whose document no file refers to any more (a run killed
        mid-removal). A document the run's rows do not name is looked up once more before
        its points go: rows read at the start of the run must never cost one its points."""
        if not self.parts.sweep_store:
            return
        referenced = {row.doc_id for row in self.rows.values() if row.doc_id}
        store = self.parts.store()
        for doc_id in store.doc_counts(self.tenant):
            if doc_id not in referenced and not self.manifest.by_doc(self.tenant, doc_id):
                store.delete_doc(doc_id, tenant=self.tenant)

    def _drop_doc_if_unreferenced(self, doc_id: str, except_path: Path) -> None:
        """Delete a document's points unless another file holds the same content; then its
        points are made to cite that file (they may have named the one going away)."""
        others = [
            row for row in self.manifest.by_doc(self.tenant, doc_id) if row.path != except_path
        ]
        store = self.parts.store()
        if not others:
            store.delete_doc(doc_id, tenant=self.tenant)
            return
        keep = next((row for row in others if row.status == "done"), others[0]).path
        naming = ChunkPayload.naming(self.parts.data.display(keep))
        store.set_payload(doc_id, naming, tenant=self.tenant)
