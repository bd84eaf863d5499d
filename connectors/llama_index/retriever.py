"""A scanrag index as a LlamaIndex retriever: hybrid search, each node a linked citation."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from ...config import Settings
from ..hits import hit_metadata, open_index
from .metadata import node_metadata


class ScanRAGRetriever(BaseRetriever):
    """Nodes from a scanrag index (embedded Qdrant Edge or a Qdrant server), each one a search
    hit whose metadata is the /v1/query citation of the region that answers best.

    Pass an open `scanrag.Index`, or settings (`data_dir=`, `qdrant_url=`...) to open one; an
    index opened here is closed by `close()`. `Citation.model_validate(node.metadata)` gives
    the citation back; `regions` lists every region the hit covers.
    `tenant` searches that tenant's documents; `filters` may select on document metadata
    (`{"metadata": {"dept": "finance"}}`).
    """

    def __init__(
        self,
        index: Any = None,
        *,
        top_k: int = 5,
        filters: dict[str, Any] | None = None,
        mode: Literal["hybrid", "dense", "sparse"] | None = None,
        tenant: str | None = None,
        settings: Settings | None = None,
        callback_manager: Any = None,
        **options: Any,
    ) -> None:
        super().__init__(callback_manager=callback_manager)
        self.index, self._own = open_index(index, tenant, settings, **options)
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

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """The search in a worker thread: it blocks (encoding, the store), the loop must not."""
        return await asyncio.to_thread(self._retrieve, query_bundle)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        question = query_bundle.query_str
        hits = self.index.search(question, self.top_k, self.filters, self.mode)
        out = []
        for hit, ours in zip(hits, hit_metadata(question, hits), strict=True):
            metadata, embed_excluded, llm_excluded = node_metadata(ours, None, flat=False)
            node = TextNode(
                id_=hit.chunk_id,
                text=hit.text,
                metadata=metadata,
                excluded_embed_metadata_keys=embed_excluded,
                excluded_llm_metadata_keys=llm_excluded,
            )
            out.append(NodeWithScore(node=node, score=hit.score))
        return out
