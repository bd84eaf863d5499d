"""The index: the documents of a data directory, searchable, kept in line with files and
folders. A facade over its parts — the manifest, the vector store, the data directory and its
parse cache (`DataDir`), the encoders and the parse runner; each ingest is an `IngestRun`
over them (`ingest_run.py`).

An index acts for one tenant (`settings.tenant`, `default` unless set): it searches, lists,
reads, deletes and ingests that tenant's documents only. `as_tenant(name)` gives the same
index acting for another tenant — the parts are shared, nothing is opened — which is how the
HTTP API serves every tenant from one open index."""

from __future__ import annotations

import copy
import logging
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from PIL import Image

from ..config import Settings
from ..datadir import DataDir
from ..ingest.model import Document, parse_region_id
from ..ingest.parallel import Runner, Runners
from ..ingest.parsers import Parser, get_parser
from ..ingest.pipeline import parse_fingerprint
from ..tenants import DEFAULT, check_name
from .answer import Answer, Answerer, make_answerer
from .embedding import DenseEncoder, SparseEncoder
from .images import read_page_image
from .ingest_run import IngestParts, IngestRun, write_metadata
from .manifest import FileRecord, Manifest
from .metadata import merge_patch
from .pii import MaskingAnswerer, mask_hit
from .points import Encoders, index_fingerprint
from .reports import DocumentInfo, IngestReport, OnProgress
from .results import SearchHit
from .store import SearchFilters, SearchMode, Store, open_store

log = logging.getLogger(__name__)
CLAIMED = "untenanted_points_claimed"  # manifest meta: points from before tenants are claimed


class _Opened:
    """What is opened on first use, shared by an index and its tenant views."""

    def __init__(self, store: Store | None) -> None:
        self.store = store
        self.answerers: dict[str, Answerer] = {}  # by tenant
        self.metadata_lock = threading.RLock()  # see IngestParts.metadata_lock


class Index:
    """A searchable index of documents in `settings.data_dir`.

    `options` override settings. The parts the index would build from its settings can be
    given instead: `encoder` (the dense encoder), `store` (an open vector store, closed with
    the index), `runner` (where files are parsed) and `parser` — a parser name is the
    `parser` setting, a parser object reads every file in this process. It acts for the
    tenant `settings.tenant`.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        encoder: DenseEncoder | None = None,
        parser: str | Parser | None = None,
        store: Store | None = None,
        runner: Runner | None = None,
        **options: Any,
    ) -> None:
        if isinstance(parser, str):
            options["parser"] = parser
            parser = None
        self.settings = Settings.resolve(settings, **options)
        self.runners = Runners(self.settings, parser, runner)
        self._parser = parser
        self.data = DataDir(self.settings.data_dir)
        self.data.create()
        self.manifest = Manifest(self.data.manifest)
        self.dense = encoder or DenseEncoder(
            self.settings.embed_model, self.settings.embed_batch_size
        )
        self.encoders = Encoders(self.dense, SparseEncoder(), self.settings.chunk_tokens)
        self.tenant = self.settings.tenant
        self.files = self.data.tenant(self.tenant)
        self._opened = _Opened(store)
        self._view = False

    def as_tenant(self, tenant: str) -> Index:
        """This index acting for `tenant`: its own documents, the same open parts. Closing
        it closes nothing (the index it came from owns the parts)."""
        view = copy.copy(self)
        view.settings = self.settings.model_copy(update={"tenant": check_name(tenant)})
        view.tenant = tenant
        view.files = self.data.tenant(tenant)
        view._view = True
        return view

    # --- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the parse workers, the store and the manifest, each one even when closing
        another fails (else the store's directory lock or the database stays held)."""
        if self._view:
            return
        store, self._opened.store = self._opened.store, None
        with ExitStack() as stack:  # callbacks run last in, first out
            stack.callback(self.manifest.close)
            if store is not None:
                stack.callback(store.close)
            stack.callback(self.runners.close)

    @property
    def store(self) -> Store:
        """The vector store, opened on first use (the embedding size comes from the manifest,
        so reopening an index never loads the embedding model). Points written before tenants
        existed are the default tenant's: the first open after the change gives them their
        tenant field (one payload update; no parsing, no embedding)."""
        if self._opened.store is None:
            key = f"dimension:{self.settings.embed_model}"
            dimension = int(self.manifest.meta(key) or 0) or self.dense.dimension
            store = open_store(self.settings, self.data.qdrant, dimension)
            self.manifest.set_meta(key, str(dimension))
            if self.manifest.meta(CLAIMED) is None:
                claimed = store.claim_untenanted(DEFAULT)
                if claimed:
                    log.info("%d points from before tenants now belong to %r", claimed, DEFAULT)
                self.manifest.set_meta(CLAIMED, "1")
            self._opened.store = store
        return self._opened.store

    @property
    def runner(self) -> Runner | None:
        """Where files are parsed; None until a file needed parsing."""
        return self.runners.current

    # --- fingerprints -------------------------------------------------------------------

    @property
    def parser(self) -> Parser:
        """The parser object given, else the one the settings name."""
        return self._parser or get_parser(self.settings)

    @property
    def parse_fingerprint(self) -> str:
        """What determines a parsed Document: the parser, its options and the page dpi."""
        return parse_fingerprint(self.parser, self.settings)

    @property
    def index_fingerprint(self) -> str:
        """What determines the points of a Document: chunking and embedding settings."""
        return index_fingerprint(self.settings)

    # --- ingest -------------------------------------------------------------------------

    def ingest(
        self,
        paths: list[Path] | list[str],
        on_progress: OnProgress | None = None,
        within: list[Path] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> IngestReport:
        """Bring the index in line with files and folders: add new files, re-index changed
        ones, drop files gone from the folders given. Failures are per file. With `within`,
        links that lead outside those folders are not followed (each is a failure). With
        `metadata` (validated: `metadata.validated`), every document of the files given gets
        it (unchanged ones by a payload update); without, each keeps its own.

        Files that need parsing go to `settings.workers` processes or to Ray
        (`settings.ray_address`); this process decides what to parse, stores what comes back
        and indexes each Document as soon as it is complete, with the same results as
        parsing everything here."""
        parser = self.parser
        s = self.settings
        parts = IngestParts(
            settings=s,
            data=self.data,
            manifest=self.manifest,
            store=lambda: self.store,
            encoders=self.encoders,
            runners=self.runners,
            metadata_lock=self._opened.metadata_lock,
            sweep_store=not s.qdrant_url
            and (
                self._opened.store is not None or self.data.qdrant.exists() or bool(s.qdrant_path)
            ),
        )
        run = IngestRun(
            parts,
            parser,
            parse_fingerprint(parser, s),
            self.index_fingerprint,
            on_progress,
            within,
            self.tenant,
            metadata,
        )
        try:
            return run.run(paths)
        except BaseException:
            self.runners.close()  # units still out belong to this run: drop them
            raise

    # --- read ---------------------------------------------------------------------------

    def search(
        self,
        query: str,
        top_k: int = 5,
        filters: SearchFilters | dict[str, Any] | None = None,
        mode: SearchMode | None = None,
    ) -> list[SearchHit]:
        """Ranked chunks of the tenant's documents for a query; hybrid (dense + BM25 fused
        by RRF) by default."""
        if isinstance(filters, dict):
            filters = SearchFilters(**filters)
        dense, sparse = self.encoders.query(query, mode or self.settings.search_mode)
        hits = self.store.search(
            dense, sparse, top_k, filters, tenant=self.tenant, fusion=self.settings.fusion
        )
        found = [SearchHit.from_payload(hit.payload, hit.score) for hit in hits]
        if self.settings.mask_pii:  # then answers, citations and extracted values are too
            found = [mask_hit(hit) for hit in found]
        return found

    def documents(self) -> list[DocumentInfo]:
        """Every document of the tenant, with the files that hold it, its status, last error
        and metadata; then the files that failed before they were ever indexed."""
        grouped: dict[str, list[FileRecord]] = {}
        failures: list[DocumentInfo] = []
        for row in self.manifest.all(self.tenant):
            if row.doc_id:
                grouped.setdefault(row.doc_id, []).append(row)
            else:
                failures.append(DocumentInfo.of_rows("", [row]))
        return [DocumentInfo.of_rows(doc_id, rows) for doc_id, rows in grouped.items()] + failures

    def document_info(self, doc_id: str) -> DocumentInfo | None:
        """One document's entry, read from its own manifest rows (not the whole manifest)."""
        rows = self.manifest.by_doc(self.tenant, doc_id)
        return DocumentInfo.of_rows(doc_id, rows) if rows else None

    def usage(self) -> tuple[int, int]:
        """(documents, pages) the tenant holds."""
        return self.manifest.usage(self.tenant)

    def over_limits(self, pages: dict[str, int]) -> str | None:
        """Which of the tenant's limits (documents, pages) adding these documents (doc id →
        pages) would exceed, or None; a document the tenant holds already adds nothing."""
        limits = self.settings.limits_for(self.tenant)
        if limits.documents is None and limits.pages is None:
            return None
        new = {doc: n for doc, n in pages.items() if not self.manifest.by_doc(self.tenant, doc)}
        if not new:
            return None
        documents, held = self.usage()
        return limits.over(documents + len(new), held + sum(new.values()))

    def document(self, doc_id: str) -> Document | None:
        """The parsed Document (from the cache) of an indexed document id."""
        for row in self.manifest.by_doc(self.tenant, doc_id):
            if row.sha256 and row.parser_fp:
                doc = self.files.cache.get(row.sha256, row.parser_fp)
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
        """The answerer of the settings (one per tenant: a VLM's crops are the tenant's)."""
        answerer = self._opened.answerers.get(self.tenant)
        if answerer is None:
            answerer = make_answerer(self.settings, crop=self.region_image)
            if self.settings.mask_pii:  # an LLM may still write a number from the question
                answerer = MaskingAnswerer(answerer)
            self._opened.answerers[self.tenant] = answerer
        return answerer

    def region_image(self, region_id: str, pad: int = 0) -> Image.Image | None:
        """The crop of a region from its stored page image (None when unknown), cut from the
        page as read within `image_max_pixels` (so smaller than the box on a huge page)."""
        doc_id, page_number, _ = parse_region_id(region_id)
        doc = self.document(doc_id)
        region = doc.region(region_id) if doc else None
        page = doc.page(page_number) if doc else None
        path = self.page_image(doc, page_number) if doc and region else None
        if region is None or page is None or path is None:
            return None
        box = region.bbox.pad(pad).clip(page.width, page.height)
        image, scale = read_page_image(path, self.settings.image_max_pixels)
        with image:
            return image.crop(box.reduced(scale))

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
        rows = self.manifest.by_doc(self.tenant, doc_id)
        if not rows:
            return False
        for row in rows:
            row.status = "indexing"
            row.error = "interrupted while being deleted: delete it again or ingest its folder"
            self.manifest.put(row)
        self.store.delete_doc(doc_id, tenant=self.tenant)
        self.files.drop_document(
            doc_id, [row.sha256 for row in rows if row.sha256], [row.path for row in rows]
        )
        for row in rows:
            self.manifest.remove(self.tenant, row.path)
        return True

    def update_metadata(self, doc_id: str, patch: dict[str, Any]) -> DocumentInfo | None:
        """Change a document's metadata by a JSON merge patch (a value sets a key, None
        removes it), on its points and its manifest rows: a payload update, no parsing.
        None for an unknown id; ValueError when the result is not valid metadata."""
        with self._opened.metadata_lock:
            info = self.document_info(doc_id)
            if info is None:
                return None
            metadata = merge_patch(info.metadata, patch)
            write_metadata(self.store, self.manifest, self.tenant, doc_id, metadata)
        return info.model_copy(update={"metadata": metadata})
