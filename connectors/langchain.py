"""LangChain adapters: a retriever over a scanrag index and a loader of scanned files.

    pip install 'scanrag[langchain]'          # langchain-core only

    retriever = ScanRAGRetriever(data_dir="scanrag-data", top_k=5)
    docs = retriever.invoke("What is the total due?")     # or: await retriever.ainvoke(...)
    docs[0].metadata["page"], docs[0].metadata["bbox"]    # where on which page it was read

    pages = ScanRAGLoader("scans/").lazy_load()             # one Document per page

Both adapt scanrag's own objects (`Index.search`, the /v1/query `Citation`, `scanrag.parse`);
nothing here parses, chunks or ranks on its own. Metadata values are JSON (scalars, boxes as
lists of 4 integers, small dicts), so vector stores and LangSmith take them as they are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.document_loaders import BaseLoader
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "scanrag's LangChain connector needs langchain-core: pip install 'scanrag[langchain]'"
    ) from exc
from pydantic import ConfigDict, Field, PrivateAttr

from ..config import Settings
from ..errors import ConfigError, ModelServerError, ScanragError
from ..ingest.loaders import discover
from ..ingest.markdown import page_markdown, region_spans
from ..ingest.model import Document as ScanDocument
from ..ingest.pipeline import parse_file
from ..retrieval.store import SearchFilters
from .hits import hit_metadata, open_index

log = logging.getLogger(__name__)


class ScanRAGRetriever(BaseRetriever):
    """Documents from a scanrag index (hybrid search: dense + BM25), one per search hit.

    `page_content` is the hit's chunk text; `metadata` is the /v1/query citation of the region
    that answers best — `source`, `page`, `bbox` (pixels of the page image, origin top-left),
    `bbox_norm` (0–1000), `region_id`, `label`, `doc_id`, `score`, `lines`, `crop_url`... —
    plus the hit's `chunk_id` and every region it covers (`regions`).
    `Citation.model_validate(doc.metadata)` gives the citation back.

    Give `data_dir` (and any scanrag setting in `options`, e.g. `{"qdrant_url": ...}`) to open
    an index, or an open `index`; one opened here is closed by `close()` (or `with`). `tenant`
    searches that tenant's documents (default: the index's); `filters` may select on document
    metadata (`{"metadata": {"dept": "finance"}}`).
    """

    model_config = ConfigDict(extra="forbid")  # a misspelt option must not pass unnoticed

    data_dir: str | None = Field(None, description="scanrag's data dir (default: settings).")
    top_k: int = Field(5, ge=1, le=100)
    filters: SearchFilters | None = Field(
        None, description="doc_id, source, page, label, metadata..."
    )
    tenant: str | None = Field(None, description="The tenant whose documents are searched.")
    mode: Literal["hybrid", "dense", "sparse"] | None = None
    options: dict[str, Any] = Field(default_factory=dict, description="Other scanrag settings.")
    index: Any = Field(None, exclude=True, description="An open scanrag.Index to search.")
    _own: bool = PrivateAttr(default=False)

    def model_post_init(self, context: Any) -> None:
        given = {"data_dir": self.data_dir} if self.data_dir else {}
        self.index, self._own = open_index(self.index, self.tenant, **{**self.options, **given})

    def close(self) -> None:
        if self._own and self.index is not None:
            self.index.close()

    def __enter__(self) -> ScanRAGRetriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        hits = self.index.search(query, self.top_k, self.filters, self.mode)
        return [
            Document(page_content=hit.text, metadata=metadata, id=hit.chunk_id)
            for hit, metadata in zip(hits, hit_metadata(query, hits), strict=True)
        ]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        """The search runs in a worker thread: embedding the query and searching must not
        hold up the event loop."""
        return await asyncio.to_thread(
            self._get_relevant_documents, query, run_manager=run_manager.get_sync()
        )


class ScanRAGLoader(BaseLoader):
    """Scanned files and folders → LangChain Documents, one per page, as layout-aware Markdown.

    Metadata: `source` (the file), `doc_id`, `page` (1-based, as in citations), `total_pages`,
    `page_width`, `page_height` and `regions` — each region's id, label, `bbox` (pixels),
    `bbox_norm` (0–1000) and character span (`start`, `end`) in `page_content`, so a chunk cut
    by a text splitter (`add_start_index=True`) can be traced to its regions and boxes.

    `parser`, `dpi` and any other scanrag setting pass through. Every load parses (OCR);
    to search the same files repeatedly, index them (`scanrag ingest`) and use
    `ScanRAGRetriever`. A file that cannot be read is logged and skipped
    (`raise_on_error=True` raises); configuration and model-server errors always raise.
    """

    def __init__(
        self,
        file_path: str | Path | Sequence[str | Path],
        *,
        parser: str | None = None,
        dpi: int | None = None,
        raise_on_error: bool = False,
        settings: Settings | None = None,
        **options: Any,
    ) -> None:
        given = {"parser": parser, "dpi": dpi}
        options.update({key: value for key, value in given.items() if value is not None})
        self.settings = Settings.resolve(settings, **options)
        paths = [file_path] if isinstance(file_path, str | Path) else list(file_path)
        self.paths = [Path(path) for path in paths]
        self.raise_on_error = raise_on_error

    def lazy_load(self) -> Iterator[Document]:
        """File by file (folders walked recursively, other file types skipped), page by page."""
        found = discover(self.paths)
        for _path, message in found.errors:
            self._fail(message)
        for path, _mime in found.files:
            try:
                doc = parse_file(path, self.settings)
            except (ConfigError, ModelServerError):
                raise
            except ScanragError as exc:
                self._fail(str(exc))
                continue
            yield from self._pages(path, doc)

    def _fail(self, message: str) -> None:
        if self.raise_on_error:
            raise ScanragError(message)
        log.warning("%s", message)

    def _pages(self, path: Path, doc: ScanDocument) -> Iterator[Document]:
        for page in doc.pages:
            if page.error:
                log.warning("%s", page.error)
                continue
            text = page_markdown(page, anchors=False)
            regions = [
                {
                    "region_id": region.id,
                    "label": region.label,
                    "bbox": list(region.bbox),
                    "bbox_norm": list(region.bbox_norm),
                    "start": start,
                    "end": end,
                }
                for region, start, end in region_spans(page, text, anchors=False)
            ]
            if not regions:
                continue
            metadata = {
                "source": str(path),
                "doc_id": doc.id,
                "page": page.number,
                "total_pages": len(doc.pages),
                "page_width": page.width,
                "page_height": page.height,
                "regions": regions,
            }
            yield Document(page_content=text, metadata=metadata, id=f"{doc.id}:p{page.number}")


__all__ = ["ScanRAGLoader", "ScanRAGRetriever"]
