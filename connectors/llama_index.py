"""LlamaIndex adapters: a reader, a node parser, a retriever and an embedding over scanrag.

    pip install 'scanrag[llama-index]'

    docs = ScanRAGReader().load_data("scans/")             # one Document per page
    index = VectorStoreIndex.from_documents(
        docs, transformations=[ScanRAGNodeParser()], embed_model=ScanRAGEmbedding()
    )

Everything here adapts scanrag's own objects (`parse_file`, `chunk_document`, `Index.search`,
`ExtractiveAnswerer.cite_hit`, the API's linked `Citation`); nothing here parses or chunks on
its own. Provenance (region ids, labels, boxes) lives in
metadata keys listed in `excluded_embed_metadata_keys` and `excluded_llm_metadata_keys`, so it
never reaches an embedding or a prompt; the LLM sees `source` and `page` only.

Metadata values are JSON: scalars, and lists of boxes or of small region dicts. Vector stores
that take flat metadata only (Chroma, Pinecone) need `flat_metadata=True`, which JSON-encodes
the lists; `node_regions` reads either form. Note that LlamaIndex vector stores overwrite the
stored `doc_id` payload key with the LlamaIndex document id (`<doc_id>:p<page>`) for their own
filtering; `node.metadata["doc_id"]` on the nodes they return is scanrag's document id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

try:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import Field, PrivateAttr
    from llama_index.core.node_parser import NodeParser
    from llama_index.core.readers.base import BaseReader
    from llama_index.core.schema import (
        BaseNode,
        Document,
        NodeRelationship,
        NodeWithScore,
        QueryBundle,
        RelatedNodeInfo,
        TextNode,
    )
    from llama_index.core.utils import get_tqdm_iterable
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "scanrag's LlamaIndex connector needs llama-index-core: pip install 'scanrag[llama-index]'"
    ) from exc

from ..api.urls import Citation
from ..config import Settings
from ..datadir import DataDir, ParseCache
from ..errors import ConfigError, ModelServerError, ScanragError
from ..ingest import model as scan
from ..ingest.loaders import discover, open_source
from ..ingest.markdown import page_markdown, region_anchor
from ..ingest.parallel import parse_fingerprint
from ..ingest.parsers import get_parser
from ..ingest.pipeline import parse_file
from ..retrieval.answer import ExtractiveAnswerer
from ..retrieval.chunking import Chunk, chunk_document
from ..retrieval.embedding import DEFAULT_DENSE_MODEL, DenseEncoder

log = logging.getLogger(__name__)

#: Metadata the LLM is shown; every other key scanrag sets is provenance, hidden from the LLM.
LLM_KEYS = ("source", "page")
#: Where ScanRAGNodeParser finds the parsed scanrag Document of a page.
DOCUMENT_KEY = "scanrag_json"


def _metadata(
    ours: dict[str, Any], extra: dict[str, Any] | None, flat: bool
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Metadata plus the keys hidden from embeddings (all of ours) and from the LLM."""
    if flat:
        ours = {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in ours.items()}
    embed_excluded = list(ours)
    llm_excluded = [key for key in ours if key not in LLM_KEYS]
    return {**(extra or {}), **ours}, embed_excluded, llm_excluded


def _loaded(meta: dict[str, Any], key: str) -> Any:
    """A metadata value, decoded when `flat_metadata` stored a list as JSON."""
    value = meta[key]
    listed = key in ("regions", "bbox", "bbox_norm")
    return json.loads(value) if listed and isinstance(value, str) else value


def node_regions(node: BaseNode) -> list[dict[str, Any]]:
    """The regions (id, page, label, boxes) that a scanrag Document or node covers.

    A node split from a page Document by another splitter (e.g. SentenceSplitter) inherits the
    page's whole list; its character span inside the page narrows it to the regions it holds.
    """
    meta = node.metadata
    if "regions" not in meta:
        if "region_id" not in meta:
            return []
        keys = ("region_id", "page", "label", "bbox", "bbox_norm")
        return [{key: _loaded(meta, key) for key in keys if key in meta}]
    regions = [{"page": meta.get("page"), **region} for region in _loaded(meta, "regions")]
    start, end = getattr(node, "start_char_idx", None), getattr(node, "end_char_idx", None)
    if "chunk_id" in meta or start is None or end is None:
        return regions  # the node's own text is what the spans refer to
    inside = [r for r in regions if r["start"] < end and r["end"] > start]
    return inside or regions


# --- reader -------------------------------------------------------------------------------


class ScanRAGReader(BaseReader):
    """Scanned documents → LlamaIndex Documents: one per page (or per region), as Markdown.

    `parser`, `dpi` and any other scanrag `Settings` field (`settings=` or keyword arguments,
    e.g. a model backend's server URL) pass through to scanrag's parser. Parsed documents are
    cached as JSON in `cache_dir` (default `<data_dir>/llama-index`) by file hash and parser
    fingerprint, and files a `scanrag.Index` in `data_dir` has parsed are read from its cache:
    loading the same files again runs no OCR (a parse that fell back from a failed model server
    is parsed again next time). `ScanRAGNodeParser` chunks from that JSON, so the Documents
    themselves carry only its path and compact provenance.
    """

    def __init__(
        self,
        parser: str | None = None,
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
        given = {"parser": parser, "dpi": dpi}
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
        parser = get_parser(self.settings)  # first: an unknown parser name fails every file
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
        metadata, embed_excluded, llm_excluded = _metadata(ours, extra, self.flat_metadata)
        return Document(
            id_=id_,
            text=text,
            metadata=metadata,
            excluded_embed_metadata_keys=embed_excluded,
            excluded_llm_metadata_keys=llm_excluded,
        )


# --- node parser --------------------------------------------------------------------------


class ScanRAGNodeParser(NodeParser):
    """ScanRAGReader Documents → nodes cut by scanrag's region-aware chunker.

    Each Document (a page, or a region) is chunked on its own from the parsed scanrag
    Document its `scanrag_json` names: tables are never split mid-row and repeat their header,
    and the heading path opens each chunk. Each node lists the regions it covers with both box
    forms and their character spans in the node text. Relationships carry ids only, so no
    metadata is stored three times.
    """

    chunk_tokens: int = Field(200, ge=32, description="Token budget of a chunk (as scanrag's).")
    flat_metadata: bool = Field(False, description="JSON-encode list values (flat-only stores).")

    @classmethod
    def class_name(cls) -> str:
        return "ScanRAGNodeParser"

    def _parse_nodes(
        self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any
    ) -> list[BaseNode]:
        parsed: dict[str, scan.Document] = {}
        out: list[BaseNode] = []
        for node in get_tqdm_iterable(nodes, show_progress, "Chunking scanned pages"):
            out.extend(self._chunk(node, parsed))
        return out

    def _chunk(self, node: BaseNode, parsed: dict[str, scan.Document]) -> list[TextNode]:
        path = node.metadata.get(DOCUMENT_KEY)
        if not path:
            raise ValueError(
                f"ScanRAGNodeParser: node {node.node_id} has no {DOCUMENT_KEY!r}; "
                "it splits the Documents that ScanRAGReader loads"
            )
        if path not in parsed:
            try:
                parsed[path] = scan.Document.model_validate_json(Path(path).read_bytes())
            except OSError as exc:
                raise ValueError(
                    f"ScanRAGNodeParser: the parsed document {path} is gone ({exc.strerror}); "
                    "load the files again with ScanRAGReader"
                ) from exc
        doc = parsed[path]
        page = doc.page(int(node.metadata["page"]))
        if page is None:
            return []
        region_id = node.metadata.get("region_id")
        regions = [r for r in page.regions if region_id is None or r.id == region_id]
        part = doc.model_copy(update={"pages": [page.model_copy(update={"regions": regions})]})
        inherited = {k: v for k, v in node.metadata.items() if k not in ("regions", DOCUMENT_KEY)}
        return [
            self._node(index, node, chunk, inherited)
            for index, chunk in enumerate(chunk_document(part, self.chunk_tokens))
        ]

    def _node(self, index: int, parent: BaseNode, chunk: Chunk, inherited: dict) -> TextNode:
        ours = {
            "chunk_id": f"{parent.node_id}:c{chunk.index}",
            "regions": [
                {
                    "region_id": region.region_id,
                    "label": region.label,
                    "bbox": list(region.bbox),
                    "bbox_norm": list(region.bbox_norm),
                    "start": region.start,
                    "end": region.end,
                }
                for region in chunk.regions
            ],
        }
        metadata, embed_excluded, llm_excluded = _metadata(ours, inherited, self.flat_metadata)
        return TextNode(
            id_=self.id_func(index, parent),
            text=chunk.text,
            metadata=metadata,
            excluded_embed_metadata_keys=sorted(
                {*parent.excluded_embed_metadata_keys, *embed_excluded}
            ),
            excluded_llm_metadata_keys=sorted({*parent.excluded_llm_metadata_keys, *llm_excluded}),
            relationships={
                NodeRelationship.SOURCE: RelatedNodeInfo(
                    node_id=parent.node_id, node_type=parent.get_type(), hash=parent.hash
                )
            },
        )

    def _postprocess_parsed_nodes(
        self, nodes: list[BaseNode], parent_doc_map: dict[str, Document]
    ) -> list[BaseNode]:
        """LlamaIndex's bookkeeping, then relationships slimmed to ids (it copies the
        neighbours' whole metadata into them) and the parser's cache path dropped again."""
        nodes = super()._postprocess_parsed_nodes(nodes, parent_doc_map)
        for node in nodes:
            node.metadata.pop(DOCUMENT_KEY, None)
            for related in node.relationships.values():
                for info in related if isinstance(related, list) else [related]:
                    info.metadata = {}
        return nodes


# --- retriever ----------------------------------------------------------------------------


class ScanRAGRetriever(BaseRetriever):
    """Nodes from a scanrag index (embedded Qdrant Edge or a Qdrant server), each one a search
    hit whose metadata is the /v1/query citation of the region that answers best.

    Pass an open `scanrag.Index`, or settings (`data_dir=`, `qdrant_url=`...) to open one; an
    index opened here is closed by `close()`. `Citation.model_validate(node.metadata)` gives
    the citation back; `regions` lists every region the hit covers.
    """

    def __init__(
        self,
        index: Any = None,
        *,
        top_k: int = 5,
        filters: dict[str, Any] | None = None,
        mode: Literal["hybrid", "dense", "sparse"] | None = None,
        settings: Settings | None = None,
        callback_manager: Any = None,
        **options: Any,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        from ..retrieval.index import Index

        self._own = index is None
        self.index = index if index is not None else Index(settings, **options)
        self.top_k = top_k
        self.filters = filters
        self.mode = mode

    def close(self) -> None:
        if self._own:
            self.index.close()

    def __enter__(self) -> ScanRAGRetriever:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        question = query_bundle.query_str
        hits = self.index.search(question, self.top_k, self.filters, self.mode)
        out = []
        for rank, hit in enumerate(hits, start=1):
            cited = ExtractiveAnswerer().cite_hit(question, hit, rank)
            citation = Citation.of(cited).model_dump(mode="json")
            ours = {
                **citation,
                "chunk_id": hit.chunk_id,
                "regions": [
                    r.model_dump(mode="json", exclude={"lines", "page_width", "page_height"})
                    for r in hit.regions
                ],
            }
            metadata, embed_excluded, llm_excluded = _metadata(ours, None, flat=False)
            node = TextNode(
                id_=hit.chunk_id,
                text=hit.text,
                metadata=metadata,
                excluded_embed_metadata_keys=embed_excluded,
                excluded_llm_metadata_keys=llm_excluded,
            )
            out.append(NodeWithScore(node=node, score=hit.score))
        return out


# --- embedding ----------------------------------------------------------------------------


class ScanRAGEmbedding(BaseEmbedding):
    """scanrag's dense encoder as a LlamaIndex embedding: the packaged all-MiniLM-L6-v2 by
    default (no download, no extra LlamaIndex package), or any sentence-transformers folder."""

    _encoder: DenseEncoder = PrivateAttr()

    def __init__(
        self, model_name: str = DEFAULT_DENSE_MODEL, embed_batch_size: int = 32, **kwargs: Any
    ) -> None:
        super().__init__(model_name=model_name, embed_batch_size=embed_batch_size, **kwargs)
        self._encoder = DenseEncoder(model_name, embed_batch_size)

    @classmethod
    def class_name(cls) -> str:
        return "ScanRAGEmbedding"

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode(texts).tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embeddings([query])[0]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embedding(text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)


__all__ = [
    "ScanRAGEmbedding",
    "ScanRAGNodeParser",
    "ScanRAGReader",
    "ScanRAGRetriever",
    "node_regions",
]
