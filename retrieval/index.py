"""The index: ingest folders incrementally, search, delete; backed by Qdrant and a manifest
in a data directory (`DataDir` says where everything lives).

A document's points are replaced in one write after its row is marked `indexing`, and the row
is marked `done` only after the write returns: a run killed at any point leaves rows that the
next run finishes, and never duplicate or orphan points.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image
from pydantic import BaseModel, Field, field_validator

from ..config import Settings
from ..datadir import DataDir, fell_back, recorded_fp
from ..errors import ConfigError, LimitExceeded, ScanragError, printable
from ..fsutil import atomic_write
from ..ingest import parallel
from ..ingest.loaders import SourceFile, discover, failure_message, open_source, show
from ..ingest.model import MARGINAL_LABELS, Document, parse_region_id
from ..ingest.parallel import (
    InlineRunner,
    ParseResult,
    ParseUnit,
    PoolRunner,
    RayRunner,
    Runner,
    available_cpus,
    batch_size,
    default_workers,
    parse_fingerprint,
    plan_units,
)
from ..ingest.parsers import Parser, get_parser
from ..ingest.pipeline import join_parts, parse_file
from .answer import Answer, Answerer, make_answerer
from .chunking import Chunk, chunk_document
from .embedding import DenseEncoder, SparseEncoder
from .manifest import FileRecord, Manifest
from .pii import MaskingAnswerer, mask_hit
from .results import ChunkPayload, HitLine, HitRegion, SearchHit
from .store import ClientStore, EdgeStore, SearchFilters, SearchMode, Store, StorePoint

log = logging.getLogger(__name__)
POINT_NAMESPACE = uuid.UUID("6f0e7b1c-58a4-4f7e-9d5e-2c1a3b4d5e6f")
INDEX_VERSION = 4  # bump when chunking, the payload layout or the sparse encoding changes
_T = TypeVar("_T")


class FileError(BaseModel):
    """One file that failed: its path and a one-line message (what is wrong, what to do)."""

    path: str
    error: str

    @field_validator("path", "error")
    @classmethod
    def _printable(cls, value: str) -> str:
        return printable(value)  # a non-UTF-8 name must not break JSON output


class IngestReport(BaseModel):
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    skipped: int = Field(0, description="Files of other types inside the folders.")
    pages: int = Field(0, description="Pages parsed in this run.")
    parse_seconds: float = Field(0.0, description="Time spent parsing (OCR) in this run.")
    seconds: float = 0.0
    errors: list[FileError] = Field(default_factory=list)
    warnings: list[FileError] = Field(
        default_factory=list, description="Files indexed without some pages, and why."
    )
    documents: list[dict[str, Any]] = Field(default_factory=list)


class DocumentInfo(BaseModel):
    doc_id: str
    source: str
    paths: list[str]
    pages: int | None
    status: str
    error: str | None = None
    updated_at: str


@dataclass
class IngestEvent:
    """Progress: `file` when a file starts, `page` after each page, `done` when it ends."""

    kind: str
    path: Path
    file_index: int
    files_total: int
    pages_done: int = 0
    pages_total: int = 0
    status: str = ""


OnProgress = Callable[[IngestEvent], None]


class Index:
    """A searchable index of documents in `settings.data_dir`."""

    def __init__(self, settings: Settings | None = None, **options: Any) -> None:
        self.settings = settings.merged(**options) if settings else Settings(**options)
        self.data = DataDir(self.settings.data_dir)
        self.data.create()
        self.manifest = Manifest(self.data.manifest)
        self.dense = DenseEncoder(self.settings.embed_model, self.settings.embed_batch_size)
        self.sparse = SparseEncoder()
        self._store: Store | None = None
        self._answerer: Answerer | None = None
        self._parse_runner: Runner | None = None

    # --- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the parse workers, the store and the manifest, each one even when closing
        another fails (else the store's directory lock or the database stays held)."""
        store, self._store = self._store, None
        with ExitStack() as stack:  # callbacks run last in, first out
            stack.callback(self.manifest.close)
            if store is not None:
                stack.callback(store.close)
            stack.callback(self._close_runner)

    @property
    def store(self) -> Store:
        """The vector store, opened on first use (the embedding size comes from the manifest,
        so reopening an index never loads the embedding model)."""
        if self._store is None:
            key = f"dimension:{self.settings.embed_model}"
            dimension = int(self.manifest.meta(key) or 0) or self.dense.dimension
            s = self.settings
            if s.qdrant_url or s.qdrant_path:
                self._store = ClientStore(
                    dimension,
                    url=s.qdrant_url,
                    api_key=s.qdrant_api_key,
                    path=s.qdrant_path,
                    collection=s.qdrant_collection,
                    shards=s.qdrant_shards,
                    replicas=s.qdrant_replicas,
                    write_consistency=s.qdrant_write_consistency,
                    write_ordering=s.qdrant_write_ordering,
                )
            else:
                self._store = EdgeStore(self.data.qdrant, dimension)
            self.manifest.set_meta(key, str(dimension))
        return self._store

    # --- fingerprints -------------------------------------------------------------------

    def _parser(self) -> Parser:
        return get_parser(self.settings)

    def parser_fingerprint(self, parser: Parser) -> str:
        """What determines a parsed Document: the parser, its settings and the page dpi."""
        return parse_fingerprint(parser, self.settings)

    @property
    def index_fingerprint(self) -> str:
        """What determines the points of a Document: chunking and embedding settings."""
        s = self.settings
        payload = json.dumps(
            [INDEX_VERSION, s.chunk_tokens, s.embed_model, sorted(MARGINAL_LABELS)]
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    # --- ingest -------------------------------------------------------------------------

    def ingest(
        self,
        paths: list[Path] | list[str],
        on_progress: OnProgress | None = None,
        within: list[Path] | None = None,
    ) -> IngestReport:
        """Bring the index in line with files and folders: add new files, re-index changed
        ones, drop files gone from the folders given. Failures are per file. With `within`,
        links that lead outside those folders are not followed (each is a failure).

        Files that need parsing go to `settings.workers` processes or to Ray
        (`settings.ray_address`); this process decides what to parse, stores what comes back
        and indexes each Document as soon as it is complete, with the same results as
        parsing everything here."""
        started = time.perf_counter()
        roots = [Path(os.path.abspath(path)) for path in paths]
        parser = self._parser()
        parser_fp = self.parser_fingerprint(parser)
        index_fp = self.index_fingerprint
        report = IngestReport()

        def unchanged(path: Path, stat: os.stat_result) -> bool:
            row = self.manifest.get(Path(os.path.abspath(path)))
            return (
                row is not None
                and row.status == "done"
                and row.size == stat.st_size
                and row.mtime_ns == stat.st_mtime_ns
                and row.parser_fp == parser_fp
                and row.index_fp == index_fp
            )

        found = discover(roots, is_known=unchanged, within=within)
        report.unchanged = len(found.known)
        report.skipped = len(found.skipped)
        for path, message in found.errors:
            report.failed += 1
            report.errors.append(FileError(path=show(path), error=message))
            row = self.manifest.get(Path(os.path.abspath(path)))
            if row is not None and row.error != message:  # an indexed file now unreadable:
                row.error = message  # its old version stays searchable, the row says why
                self.manifest.put(row)

        seen = [p for p, _ in found.files] + found.known + [p for p, _ in found.errors]
        present = {Path(os.path.abspath(p)) for p in seen}
        report.removed = self._remove_missing(roots, present)
        self._finish_interrupted_removals()

        run = _Run(self, parser, parser_fp, index_fp, report, on_progress, len(found.files), within)
        try:
            for number, (path, _mime) in enumerate(found.files, start=1):
                run.start(Path(os.path.abspath(path)), number)
                run.collect(block=False)
            run.collect_all()
        except BaseException:
            self._close_runner()  # units still out belong to this run: drop them
            raise
        report.documents = [
            {"path": show(path), "status": run.statuses[number]}
            for number, (path, _mime) in enumerate(found.files, start=1)
        ]
        report.errors += [run.errors[number] for number in sorted(run.errors)]
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    def _runner(self, on_page: Callable[[ParseUnit, int, int], None]) -> Runner:
        """Where files are parsed: Ray, a process pool, or here (kept for the next ingest)."""
        s = self.settings
        if self._parse_runner is None:
            if s.ray_address:
                self._parse_runner = RayRunner(
                    s.ray_address, parallel.parse_unit, s.ray_send_files, s.ocr_threads or 1
                )
            elif (s.workers or default_workers()) > 1:
                self._parse_runner = PoolRunner(s.workers or default_workers(), parallel.parse_unit)
            else:
                self._parse_runner = InlineRunner(parse_file)
        if isinstance(self._parse_runner, InlineRunner):
            self._parse_runner.parse = parse_file  # looked up now: tests replace it
            self._parse_runner.on_page = on_page
        return self._parse_runner

    def _worker_threads(self) -> int | None:
        """onnxruntime threads per parse worker: the cores shared out, 1 per Ray task."""
        s = self.settings
        if s.ocr_threads or s.ray_address:
            return s.ocr_threads or 1
        workers = s.workers or default_workers()
        return max(1, available_cpus() // workers) if workers > 1 else None

    def _close_runner(self) -> None:
        if self._parse_runner is not None:
            self._parse_runner.close()
            self._parse_runner = None

    def _start_file(
        self, job: _FileJob, parser_fp: str, index_fp: str, within: list[Path] | None
    ) -> Document | None:
        """Hash the file and decide: unchanged (touched), cached, or to be parsed (None).
        Raises what `open_source` raises (with `within`: for a file now outside them)."""
        row = job.row
        source = open_source(job.path, self.settings, within)
        job.source = source
        if (
            row
            and row.status == "done"
            and row.sha256 == source.sha256
            and row.parser_fp == parser_fp
            and row.index_fp == index_fp
        ):
            row.size, row.mtime_ns = job.stat.st_size, job.stat.st_mtime_ns
            self.manifest.put(row)  # touched, not changed
            job.status = "unchanged"
            return None
        return self.data.cache.get(source.sha256, parser_fp)

    def _store_parse(self, doc: Document, images: dict[int, bytes]) -> None:
        """Write the page images a worker sent back where the Document says they are."""
        for page in doc.pages:
            data = images.get(page.number)
            if data is not None and page.image:
                atomic_write(self.data.file(page.image), data)

    def _index_file(self, job: _FileJob, doc: Document, parser_fp: str, index_fp: str) -> str:
        """Replace the file's points with the Document's, crash-safely: the row is `indexing`
        while the points change and `done` only once all of them are written."""
        path, row, stat = job.path, job.row, job.stat
        record = FileRecord(
            path,
            job.source.sha256,
            stat.st_size,
            stat.st_mtime_ns,
            doc.id,
            "indexing",
            recorded_fp(doc, parser_fp),  # a fallback parse is retried next run
            index_fp,
            len(doc.pages),
            None,
            "",
        )
        points = self._points(doc, self.data.display(path))
        self.manifest.put(record)
        if row and row.doc_id and row.doc_id != doc.id:
            self._drop_doc_if_unreferenced(row.doc_id, except_path=path)
        self.store.delete_doc(doc.id)
        self.store.upsert(points)
        record.status = "done"
        self.manifest.put(record)
        if row is None or (row.status == "failed" and not row.doc_id):
            return "added"
        return "updated"

    def _record_failure(
        self,
        path: Path,
        row: FileRecord | None,
        stat: os.stat_result,
        parser_fp: str,
        index_fp: str,
        error: str,
    ) -> None:
        """A failed file keeps its previous document (if any) searchable; the row says why."""
        if row is not None and row.status == "done":
            row.error = error
            self.manifest.put(row)
            return
        if row is not None and row.status == "indexing" and row.doc_id:
            self._drop_doc_if_unreferenced(row.doc_id, except_path=path)
        self.manifest.put(
            FileRecord(
                path,
                None,
                stat.st_size,
                stat.st_mtime_ns,
                None,
                "failed",
                parser_fp,
                index_fp,
                None,
                error,
                "",
            )
        )

    def _points(self, doc: Document, source: str) -> list[StorePoint]:
        chunks = chunk_document(doc, self.settings.chunk_tokens)
        if not chunks:
            return []
        texts = [chunk.text for chunk in chunks]
        dense = self.dense.encode(texts)
        sparse = self.sparse.encode_documents(texts)
        sizes = {page.number: (page.width, page.height) for page in doc.pages}
        return [
            StorePoint(
                id=str(uuid.uuid5(POINT_NAMESPACE, chunk.id)),
                dense=dense[i],
                sparse=sparse[i],
                payload=chunk_payload(chunk, source, sizes).model_dump(mode="json"),
            )
            for i, chunk in enumerate(chunks)
        ]

    def _remove_missing(self, roots: list[Path], present: set[Path]) -> int:
        """Files under the given folders that are gone (or no longer documents) leave the index."""
        folders = [root for root in roots if root.is_dir()]
        removed = 0
        for row in self.manifest.all():
            inside = any(row.path.is_relative_to(folder) for folder in folders)
            if inside and row.path not in present:
                if row.doc_id:
                    self._drop_doc_if_unreferenced(row.doc_id, except_path=row.path)
                self.manifest.remove(row.path)
                removed += 1
        return removed

    def _finish_interrupted_removals(self) -> None:
        """Points whose document no file refers to any more (a run killed mid-removal).

        Only for stores this data dir owns: a collection on a Qdrant server may be shared by
        other data dirs, whose documents this manifest does not know.
        """
        s = self.settings
        if s.qdrant_url:
            return
        if self._store is None and not (self.data.qdrant.exists() or s.qdrant_path):
            return  # no store yet, so nothing to sweep (and no need to open one)
        referenced = {row.doc_id for row in self.manifest.all() if row.doc_id}
        for doc_id in self.store.doc_counts():
            if doc_id not in referenced:
                self.store.delete_doc(doc_id)

    def _drop_doc_if_unreferenced(self, doc_id: str, except_path: Path) -> None:
        """Delete a document's points unless another file holds the same content; then its
        points are made to cite that file (they may have named the one going away)."""
        others = [row for row in self.manifest.by_doc(doc_id) if row.path != except_path]
        if not others:
            self.store.delete_doc(doc_id)
            return
        keep = next((row for row in others if row.status == "done"), others[0]).path
        source = self.data.display(keep)
        self.store.set_payload(doc_id, ChunkPayload.naming(source))

    # --- read ---------------------------------------------------------------------------

    def search(
        self,
        query: str,
        top_k: int = 5,
        filters: SearchFilters | dict[str, Any] | None = None,
        mode: SearchMode | None = None,
    ) -> list[SearchHit]:
        """Ranked chunks for a query; hybrid (dense + BM25 fused by RRF) by default."""
        if isinstance(filters, dict):
            filters = SearchFilters(**filters)
        mode = mode or self.settings.search_mode
        dense = self.dense.encode([query])[0] if mode in ("hybrid", "dense") else None
        sparse = self.sparse.encode_query(query) if mode in ("hybrid", "sparse") else None
        hits = self.store.search(dense, sparse, top_k, filters, fusion=self.settings.fusion)
        found = [SearchHit.from_payload(hit.payload, hit.score) for hit in hits]
        if self.settings.mask_pii:  # then answers, citations and extracted values are too
            found = [mask_hit(hit) for hit in found]
        return found

    def documents(self) -> list[DocumentInfo]:
        """Every document, with the files that hold it, its status and last error."""
        grouped: dict[str, list[FileRecord]] = {}
        failures: list[DocumentInfo] = []
        for row in self.manifest.all():
            if row.doc_id:
                grouped.setdefault(row.doc_id, []).append(row)
            else:
                failures.append(
                    DocumentInfo(
                        doc_id="",
                        source=show(row.path),
                        paths=[show(row.path)],
                        pages=None,
                        status=row.status,
                        error=row.error,
                        updated_at=row.updated_at,
                    )
                )
        return [_document_info(doc_id, rows) for doc_id, rows in grouped.items()] + failures

    def document_info(self, doc_id: str) -> DocumentInfo | None:
        """One document's entry, read from its own manifest rows (not the whole manifest)."""
        rows = self.manifest.by_doc(doc_id)
        return _document_info(doc_id, rows) if rows else None

    def document(self, doc_id: str) -> Document | None:
        """The parsed Document (from the cache) of an indexed document id."""
        for row in self.manifest.by_doc(doc_id):
            doc = (
                self.data.cache.get(row.sha256, row.parser_fp)
                if row.sha256 and row.parser_fp
                else None
            )
            if doc is not None:
                return doc
        return None

    def page_image(self, doc: Document, number: int) -> Path | None:
        page = doc.page(number)
        if page is None or not page.image:
            return None
        path = self.data.file(page.image)
        return path if path.exists() else None

    def ask(
        self,
        question: str,
        top_k: int | None = None,
        filters: SearchFilters | dict[str, Any] | None = None,
    ) -> Answer:
        """Search, then answer with citations (the answerer named in the settings)."""
        hits = self.search(question, top_k or self.settings.top_k, filters)
        return self.answerer.answer(question, hits)

    @property
    def answerer(self) -> Answerer:
        if self._answerer is None:
            self._answerer = make_answerer(self.settings, crop=self.region_image)
            if self.settings.mask_pii:  # an LLM may still write a number from the question
                self._answerer = MaskingAnswerer(self._answerer)
        return self._answerer

    def region_image(self, region_id: str, pad: int = 0) -> Image.Image | None:
        """The crop of a region from its stored page image (None when unknown), cut from the
        page as read within `image_max_pixels` (so smaller than the box on a huge page)."""
        doc_id, page_number, _ = parse_region_id(region_id)
        doc = self.document(doc_id)
        region = doc.region(region_id) if doc else None
        path = self.page_image(doc, page_number) if doc and region else None
        if region is None or path is None:
            return None
        page = doc.page(page_number)
        box = region.bbox.pad(pad).clip(page.width, page.height)
        image, scale = read_page_image(path, self.settings.image_max_pixels)
        with image:
            return image.crop(tuple(round(v / scale) for v in box))

    def optimize(self, min_points: int = 10_000) -> bool:
        """Build the HNSW index when at least `min_points` are not yet indexed.

        Qdrant Edge never does this by itself: without it search scans every point (p95
        ~170 ms at 100k chunks on 2 cores; ~23 ms with it). It takes minutes at 100k points and
        holds the interpreter meanwhile, so `scanrag ingest` runs it at the end, not the API.
        """
        points = self.store.count()
        if points - int(self.manifest.meta("optimized_points") or 0) < min_points:
            return False
        self.store.optimize()
        self.manifest.set_meta("optimized_points", str(points))
        return True

    def delete(self, doc_id: str) -> bool:
        """Remove a document and everything kept of it: its points, its cached parses, its
        page images, the uploaded files that held it (under `uploads/` in the data dir; files
        elsewhere are the user's and stay) and its manifest rows. A later ingest of a folder
        that holds it adds it again. Other files, queued uploads of the same content under
        another name included, are left alone.

        The rows leave `done` before anything goes and are removed last: a run killed in
        between leaves `indexing` rows (listed, with an error saying to delete again), which
        the next delete finishes and the next ingest re-indexes or drops; never `done` rows
        whose points or files are missing."""
        rows = self.manifest.by_doc(doc_id)
        if not rows:
            return False
        for row in rows:
            row.status = "indexing"
            row.error = "interrupted while being deleted: delete it again or ingest its folder"
            self.manifest.put(row)
        self.store.delete_doc(doc_id)
        self.data.drop_document(
            doc_id, [row.sha256 for row in rows if row.sha256], [row.path for row in rows]
        )
        for row in rows:
            self.manifest.remove(row.path)
        return True


def _document_info(doc_id: str, rows: list[FileRecord]) -> DocumentInfo:
    """A document held by one or more identical files (the manifest rows sharing its id)."""
    return DocumentInfo(
        doc_id=doc_id,
        source=show(rows[0].path),
        paths=[show(row.path) for row in rows],
        pages=rows[0].pages,
        status="done" if all(row.status == "done" for row in rows) else rows[0].status,
        error=next((row.error for row in rows if row.error), None),
        updated_at=max(row.updated_at for row in rows),
    )


@dataclass
class _FileJob:
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
    followers: list[_FileJob] = field(default_factory=list)  # same content, found meanwhile


class _Run:
    """One `Index.ingest`: files that need parsing go out, come back in any order and are
    indexed as they complete, with the outcome of handling one file after another: the same
    Documents, manifest rows and points, and the report in file order."""

    def __init__(
        self,
        index: Index,
        parser: Parser,
        parser_fp: str,
        index_fp: str,
        report: IngestReport,
        on_progress: OnProgress | None,
        total: int,
        within: list[Path] | None,
    ) -> None:
        self.index = index
        self.within = within  # files are opened only below these folders
        self.parser_fp = parser_fp
        self.index_fp = index_fp
        self.report = report
        self.on_progress = on_progress
        self.total = total
        self.statuses: dict[int, str] = {}
        self.errors: dict[int, FileError] = {}
        self.finished = 0
        self.values = index.settings.model_dump()
        threads = index._worker_threads()
        if threads:
            self.values["ocr_threads"] = threads
        self.batch = batch_size(index.settings, parser)
        self.units: dict[tuple[Path, tuple[int, int] | None], _FileJob] = {}
        self.parsing: dict[str, _FileJob] = {}  # sha256 → the job parsing that content
        self._runner: Runner | None = None

    @property
    def runner(self) -> Runner:
        if self._runner is None:  # only when something needs parsing (Ray starts slowly)
            self._runner = self.index._runner(self._on_page)
        return self._runner

    def _event(self, kind: str, job: _FileJob, **values: Any) -> None:
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
        job = _FileJob(path, number, self.index.manifest.get(path), stat)
        self._event("file", job)
        ok, doc = self._guard(
            job, lambda: self.index._start_file(job, self.parser_fp, self.index_fp, self.within)
        )
        if not ok:
            return
        if job.status == "unchanged":
            self.report.unchanged += 1
            self._done(job)
        elif doc is not None:
            self._index(job, doc)
        elif job.source.sha256 in self.parsing:  # the same content is being parsed
            self.parsing[job.source.sha256].followers.append(job)
        else:
            self._dispatch(job)

    def _dispatch(self, job: _FileJob) -> None:
        self.parsing[job.source.sha256] = job
        units = plan_units(job.source, self.values, self.parser_fp, self.batch)
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
            part = Document.model_validate_json(result.document)
            self.index._store_parse(part, result.images)
            job.parts.append(part)
            job.parse_seconds += result.seconds
            if not self.runner.reports_pages:  # progress fed by completed tasks
                for _ in part.pages:
                    job.pages_done += 1
                    self._event(
                        "page", job, pages_done=job.pages_done, pages_total=job.source.page_count
                    )
        if job.outstanding == 0:
            self._complete(job)

    def _complete(self, job: _FileJob) -> None:
        del self.parsing[job.source.sha256]
        doc: Document | None = None
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
            self.index.data.cache.put(doc, self.parser_fp)
            self._index(job, doc)
        followers = sorted(job.followers, key=lambda other: other.number)
        if doc is not None and not fell_back(doc):
            for follower in followers:  # what a cache hit would have given them
                self._index(follower, doc)
        elif followers:  # no cache entry for them: parse again, as one after another would
            followers[0].followers = followers[1:]
            self._dispatch(followers[0])

    def _index(self, job: _FileJob, doc: Document) -> None:
        ok, status = self._guard(
            job, lambda: self.index._index_file(job, doc, self.parser_fp, self.index_fp)
        )
        if not ok:
            return
        job.status = status
        if job.status == "added":
            self.report.added += 1
        else:
            self.report.updated += 1
        self.report.warnings += [FileError(path=show(job.path), error=w) for w in doc.warnings]
        self._done(job)

    def _guard(self, job: _FileJob, step: Callable[[], _T]) -> tuple[bool, _T | None]:
        """Run one step for a file: (True, its result), or (False, None) once the file is
        failed. A file's own error fails it alone, so does a bug (logged with its traceback);
        a configuration error stops the run, since every file would fail the same way."""
        try:
            return True, step()
        except ConfigError:
            raise
        except (ScanragError, OSError) as exc:
            message = failure_message(job.path, exc)
        except Exception as exc:
            log.exception("ingest failed for %s", show(job.path))
            message = failure_message(job.path, exc)
        self._fail(job, message)
        return False, None

    def _fail(self, job: _FileJob, message: str) -> None:
        self.index._record_failure(
            job.path, job.row, job.stat, self.parser_fp, self.index_fp, message
        )
        self.report.failed += 1
        self.errors[job.number] = FileError(path=show(job.path), error=message)
        job.status = "failed"
        self._done(job)

    def _done(self, job: _FileJob) -> None:
        self.statuses[job.number] = job.status or "failed"
        self.finished += 1
        self._event("done", job, status=job.status)


def read_page_image(path: Path, max_pixels: int) -> tuple[Image.Image, float]:
    """A stored page image in RGB, decoded within `max_pixels`, and how much smaller than the
    page it is (divide page pixels by it). A larger page is read at 1/2, 1/4 or 1/8 scale by
    the JPEG decoder itself, so time and memory follow the budget, not the page (a 144 MP page
    would take 430 MB in RGB, and several times that to draw on). LimitExceeded when even 1/8
    is over the budget."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the budget decides
        image = Image.open(path)
    width, height = image.size
    reduce = 1
    while width * height > max_pixels * reduce * reduce and reduce < 8:
        reduce *= 2
    if width * height > max_pixels * reduce * reduce or (reduce > 1 and image.format != "JPEG"):
        image.close()
        raise LimitExceeded(
            f"{path.name}: a {width}×{height} page is too large to read within "
            f"{max_pixels:,} pixels; raise SCANRAG_IMAGE_MAX_PIXELS"
        )
    if reduce > 1:
        image.draft("RGB", (width // reduce, height // reduce))  # picks 1/reduce
    with image:
        rgb = image.convert("RGB")
    return rgb, width / rgb.width


def chunk_payload(chunk: Chunk, source: str, sizes: dict[int, tuple[int, int]]) -> ChunkPayload:
    """A chunk's provenance as stored beside its vectors (`sizes`: page number → pixels)."""
    return ChunkPayload(
        doc_id=chunk.doc_id,
        chunk=chunk.index,
        **ChunkPayload.naming(source),
        text=chunk.text,
        heading=chunk.heading,
        pages=chunk.pages,
        labels=sorted({region.label for region in chunk.regions}),
        regions=[
            HitRegion(
                region_id=region.region_id,
                page=region.page,
                bbox=region.bbox,
                bbox_norm=region.bbox_norm,
                label=region.label,
                start=region.start,
                end=region.end,
                page_width=sizes[region.page][0],
                page_height=sizes[region.page][1],
                lines=[
                    HitLine(text=line.text, bbox=line.bbox, start=line.start, end=line.end)
                    for line in region.lines
                ],
            )
            for region in chunk.regions
        ],
    )
