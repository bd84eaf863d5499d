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

Four small modules, each one LlamaIndex class over scanrag's own objects: `reader`,
`node_parser`, `retriever`, `embedding` (and `metadata`, the provenance keys they share).
"""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "scanrag's LlamaIndex connector needs llama-index-core: pip install 'scanrag[llama-index]'"
    ) from exc

from .embedding import ScanRAGEmbedding
from .metadata import DOCUMENT_KEY, LLM_KEYS, node_regions
from .node_parser import ScanRAGNodeParser
from .reader import ScanRAGReader
from .retriever import ScanRAGRetriever

__all__ = [
    "DOCUMENT_KEY",
    "LLM_KEYS",
    "ScanRAGEmbedding",
    "ScanRAGNodeParser",
    "ScanRAGReader",
    "ScanRAGRetriever",
    "node_regions",
]
