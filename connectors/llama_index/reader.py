"""Scanned documents as LlamaIndex Documents: one per page (or per region), as Markdown."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePath
from typing import Any, Literal

from fsspec import AbstractFileSystem
from llama_index.core.bridge.pydantic import Field, PrivateAttr, field_validator
from llama_index.core.readers.base import BasePydanticReader
from llama_index.core.readers.file.base import is_default_fs
from llama_index.core.schema import Document
from pydantic import SecretStr

from ...config import Settings
from ...datadir import DataDir, ParseCache, TenantFiles
from ...errors import ConfigError, ModelServerError, ScanragError
from ...ingest import model as scan
from ...ingest.loaders import SourceFile, discover, open_source, show, source_from_bytes
from ...ingest.markdown import page_markdown, region_anchor, region_spans
from ...ingest.parsers import Parser, get_parser
from ...ingest.pipeline import parse_file, parse_fingerprint
from .metadata import DOCUMENT_KEY, node_metadata

log = logging.getLogger(__name__)

Paths = str | PurePath | Sequence[str | PurePath]


class ScanRAGReader(BasePydanticReader):
    """Scanned documents → LlamaIndex Documents: one per page (or per region), as Markdown.

    `parser`, `dpi` and any other scanrag `Settings` field (`settings=` or keyword arguments,
    e.g. a model backend's server URL) pass through to scanrag's parser; `parser` may also be
    a parser object, which then reads every file. Parsed documents are
    cached as JSON in `cache_dir` (default `<data_dir>/llama-index`) by file hash and parser
    fingerprint, and files a `scanrag.Index` in `data_dir` has parsed are read from its cache:
    loading the same files again runs no OCR (a parse that fell back from a failed model server
    is parsed again next time). `ScanRAGNodeParser` chunks from that JSON, so the Documents
    themselves carry only its path and compact provenance.

    A pydantic reader (LlamaIndex's `BasePydanticReader`), so an `IngestionPipeline` can hold
    and serialise it: `to_json()` names the parser and keeps the settings given in `options`,
    except API keys (a reader loaded from JSON takes those from SCANRAG_* variables); a parser
    object is kept by its name.
    """

    parser: str | None = Field(None, description="scanrag parser name (Settings.parser).")
    dpi: int | None = Field(None, description="Render DPI of PDF pages (Settings.dpi).")
    per: Literal["page", "region"] = Field("page", description="One Document per page/region.")
    anchors: bool = Field(False, description="Keep the region comments in the Markdown.")
    cache_dir: str | None = Field(None, description="Parse cache (<data_dir>/llama-index).")
    flat_metadata: bool = Field(False, description="JSON-encode list values (flat-only stores).")
    raise_on_error: bool = Field(False, description="Raise on a bad file instead of skipping.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Other scanrag Settings fields given, as JSON."
    )
    _parser: Parser | None = PrivateAttr(None)
    _settings: Settings = PrivateAttr()

    def __init__(
        self,
        parser: str | Parser | None = None,
        dpi: int | None = None,
        *,
        settings: Settings | None = None,
        options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        fields = {key: kwargs.pop(key) for key in list(kwargs) if key in type(self).model_fields}
        given = {**(options or {}), **kwargs}  # the rest are scanrag Settings fields
        if parser is None or isinstance(parser, str):
            instance, name = None, parser
        else:
            instance, name = parser, parser.name
        given.update({key: v for key, v in (("parser", name), ("dpi", dpi)) if v is not None})
        if instance is not None:
            del given["parser"]  # the object reads every file; its name is for to_json only
        built = Settings.resolve(settings, **given)
        chosen = set(given) | (settings.model_fields_set if settings else set())
        if name is None and "parser" in chosen:
            name = built.parser
        if dpi is None and "dpi" in chosen:
            dpi = built.dpi
        public = {
            key
            for key in chosen - {"parser", "dpi"}
            if not isinstance(getattr(built, key), SecretStr)
        }
        options = built.model_dump(mode="json", include=public)
        super().__init__(parser=name, dpi=dpi, options=options, **fields)
        self._parser = instance
        self._settings = built

    @field_validator("cache_dir", mode="before")
    @classmethod
    def _path_as_text(cls, value: Any) -> Any:
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @classmethod
    def class_name(cls) -> str:
        return "ScanRAGReader"

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def data(self) -> DataDir:
        return DataDir(self._settings.data_dir)

    @property
    def files(self) -> TenantFiles:
        """What the data directory keeps for the reader's tenant (Settings.tenant)."""
        return self.data.tenant(self._settings.tenant)

    @property
    def cache(self) -> ParseCache:
        return ParseCache(Path(self.cache_dir) if self.cache_dir else self.files.llama_index)

    def lazy_load_data(
        self,
        file_or_dir_or_list: Paths,
        extra_info: dict | None = None,
        fs: AbstractFileSystem | None = None,
    ) -> Iterator[Document]:
        """Files and folders (walked recursively, other file types skipped), file by file.

        `extra_info` joins every Document's metadata (SimpleDirectoryReader passes the file's
        own there). With an fsspec `fs` (other than the local one), files are read through it
        (folders are walked by SimpleDirectoryReader(fs=...)). A file that cannot be read is
        logged and skipped (`raise_on_error=True` raises); configuration and model-server
        errors always raise.
        """
        items = (
            [file_or_dir_or_list]
            if isinstance(file_or_dir_or_list, str | PurePath)
            else list(file_or_dir_or_list)
        )
        sources: Iterator[tuple[Path, SourceFile | None]]
        if fs is not None and not is_default_fs(fs):
            sources = self._through(fs, [str(item) for item in items])
        else:
            found = discover([Path(item) for item in items])
            for _path, message in found.errors:
                self._fail(message)
            sources = ((path, None) for path, _mime in found.files)
        for path, source in sources:
            try:
                doc, cache = self.parse(path, source)
            except (ConfigError, ModelServerError):
                raise
            except ScanragError as exc:
                self._fail(str(exc))
                continue
            yield from self._documents(path, doc, cache, extra_info)

    def _through(
        self, fs: AbstractFileSystem, paths: list[str]
    ) -> Iterator[tuple[Path, SourceFile]]:
        """Each file read through `fs` and checked from its bytes (parsed from them, too)."""
        for name in paths:
            try:
                if fs.isdir(name):
                    self._fail(
                        f"{show(name)}: a folder; walk it with SimpleDirectoryReader(input_dir="
                        f"..., fs=..., file_extractor=...) and this reader for each file type"
                    )
                    continue
                with fs.open(name, "rb") as handle:
                    data = handle.read()
            except OSError as exc:
                self._fail(f"{show(name)}: cannot read it through {type(fs).__name__} ({exc})")
                continue
            try:
                yield Path(name), source_from_bytes(Path(name), data, self._settings)
            except ScanragError as exc:
                self._fail(str(exc))

    def parse(self, path: Path, source: SourceFile | None = None) -> tuple[scan.Document, Path]:
        """The scanrag Document of a file (or of its `source` checked already), from the cache
        or parsed now, and its cache path."""
        parser = self._parser or get_parser(self.settings)  # first: a bad name fails every file
        source = source or open_source(path, self.settings)
        parser_fp = parse_fingerprint(parser, self.settings)  # Index's key: each reads the other's
        for cache in (self.cache, self.files.cache):  # ours, then Index's
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
                "file_path": str(path),  # LlamaIndex's key for the same
                "file_name": path.name,
                "doc_id": doc.id,
                "page": page.number,
                "page_label": str(page.number),  # LlamaIndex's page key: a string
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
        regions = [
            {
                "region_id": region.id,
                "label": region.label,
                "bbox_norm": list(region.bbox_norm),
                "start": start,
                "end": end,
            }
            for region, start, end in region_spans(page, text, self.anchors)
        ]
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
