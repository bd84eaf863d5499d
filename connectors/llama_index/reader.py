"""Scanned documents as LlamaIndex Documents: one per page (or per region), as Markdown."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document

from ...config import Settings
from ...datadir import DataDir, ParseCache
from ...errors import ConfigError, ModelServerError, ScanragError
from ...ingest import model as scan
from ...ingest.loaders import discover, open_source
from ...ingest.markdown import page_markdown, region_anchor
from ...ingest.parsers import Parser, get_parser
from ...ingest.pipeline import parse_file, parse_fingerprint
from .metadata import DOCUMENT_KEY, node_metadata

log = logging.getLogger(__name__)


class ScanRAGReader(BaseReader):
    """Scanned documents → LlamaIndex Documents: one per page (or per region), as Markdown.

    `parser`, `dpi` and any other scanrag `Settings` field (`settings=` or keyword arguments,
    e.g. a model backend's server URL) pass through to scanrag's parser; `parser` may also be
    a parser object, which then reads every file. Parsed documents are
    cached as JSON in `cache_dir` (default `<data_dir>/llama-index`) by file hash and parser
    fingerprint, and files a `scanrag.Index` in `data_dir` has parsed are read from its cache:
    loading the same files again runs no OCR (a parse that fell back from a failed model server
    is parsed again next time). `ScanRAGNodeParser` chunks from that JSON, so the Documents
    themselves carry only its path and compact provenance.
    """

    def __init__(
        self,
        parser: str | Parser | None = None,
        dpi: int | None = None,
        *,
        per: Literal["page", "region"] = "page",
        anchors: bool = False,
        cache_dir: str | Path | None = None,
        flat_metadata: bool = False,
        raise_on_error: bool = False,
        settings: Settings | None = None,
        **options: Any,
    ) -> None:
        if per not in ("page", "region"):
            raise ValueError(f"per must be 'page' or 'region', not {per!r}")
        self._parser = None if isinstance(parser, str) else parser
        given = {"parser": parser if isinstance(parser, str) else None, "dpi": dpi}
        options.update({key: value for key, value in given.items() if value is not None})
        self.settings = settings.merged(**options) if settings else Settings(**options)
        self.per = per
        self.anchors = anchors
        self.data = DataDir(self.settings.data_dir)
        self.cache = ParseCache(Path(cache_dir) if cache_dir else self.data.llama_index)
        self.flat_metadata = flat_metadata
        self.raise_on_error = raise_on_error

    def load_data(
        self, file_or_dir_or_list: str | Path | Sequence[str | Path], extra_info: dict | None = None
    ) -> list[Document]:
        return list(self.lazy_load_data(file_or_dir_or_list, extra_info))

    def lazy_load_data(
        self, file_or_dir_or_list: str | Path | Sequence[str | Path], extra_info: dict | None = None
    ) -> Iterator[Document]:
        """Files and folders (walked recursively, other file types skipped), file by file.

        A file that cannot be read is logged and skipped (`raise_on_error=True` raises);
        configuration and model-server errors always raise.
        """
        items = (
            [file_or_dir_or_list]
            if isinstance(file_or_dir_or_list, str | Path)
            else list(file_or_dir_or_list)
        )
        found = discover([Path(item) for item in items])
        for _path, message in found.errors:
            self._fail(message)
        for path, _mime in found.files:
            try:
                doc, cache = self.parse(path)
            except (ConfigError, ModelServerError):
                raise
            except ScanragError as exc:
                self._fail(str(exc))
                continue
            yield from self._documents(path, doc, cache, extra_info)

    def parse(self, path: Path) -> tuple[scan.Document, Path]:
        """The scanrag Document of a file, from the cache or parsed now, and its cache path."""
        parser = self._parser or get_parser(self.settings)  # first: a bad name fails every file
        source = open_source(path, self.settings)
        parser_fp = parse_fingerprint(parser, self.settings)  # Index's key: each reads the other's
        for cache in (self.cache, self.data.cache):  # ours, then Index's
            doc = cache.get(source.sha256, parser_fp)
            if doc is not None:
                return doc, cache.path(source.sha256, parser_fp).absolute()
        doc = parse_file(path, self.settings, parser, source=source)
        # a parse that fell back (the model server failed) is kept for the node parser only
        return doc, self.cache.put(doc, parser_fp).absolute()

    def _fail(self, message: str) -> None:
        if self.raise_on_error:
            raise ScanragError(message)
        log.warning("%s", message)

    def _documents(
        self, path: Path, doc: scan.Document, cache: Path, extra: dict | None
    ) -> Iterator[Document]:
        for page in doc.pages:
            if page.error:
                log.warning("%s", page.error)
                continue
            base = {
                "source": str(path),
                "file_name": path.name,
                "doc_id": doc.id,
                "page": page.number,
                "page_width": page.width,
                "page_height": page.height,
            }
            if self.per == "page":
                text, regions = self._page_text(page)
                if not regions:
                    continue
                ours = {**base, "regions": regions, DOCUMENT_KEY: str(cache)}
                yield self._document(f"{doc.id}:p{page.number}", text, ours, extra)
                continue
            for region in page.regions:
                body = region.markdown or region.text
                if not body.strip():
                    continue
                text = f"{region_anchor(region)}\n{body}" if self.anchors else body
                ours = {
                    **base,
                    "region_id": region.id,
                    "label": region.label,
                    "bbox": list(region.bbox),
                    "bbox_norm": list(region.bbox_norm),
                    DOCUMENT_KEY: str(cache),
                }
                yield self._document(region.id, text, ours, extra)

    def _page_text(self, page: scan.Page) -> tuple[str, list[dict[str, Any]]]:
        """The page's layout-aware Markdown and each region's character span inside it."""
        text = page_markdown(page, anchors=self.anchors)
        regions = []
        cursor = 0
        for region in page.regions:
            body = region.markdown or region.text
            if not body:
                continue
            if self.anchors:  # a short body ("1") must not be found inside its own anchor
                anchor = region_anchor(region)
                cursor = text.index(anchor, cursor) + len(anchor)
            start = text.index(body, cursor)
            cursor = start + len(body)
            regions.append(
                {
                    "region_id": region.id,
                    "label": region.label,
                    "bbox_norm": list(region.bbox_norm),
                    "start": start,
                    "end": cursor,
                }
            )
        return text, regions

    def _document(self, id_: str, text: str, ours: dict[str, Any], extra: dict | None) -> Document:
        metadata, embed_excluded, llm_excluded = node_metadata(ours, extra, self.flat_metadata)
        return Document(
            id_=id_,
            text=text,
            metadata=metadata,
            excluded_embed_metadata_keys=embed_excluded,
            excluded_llm_metadata_keys=llm_excluded,
        )
