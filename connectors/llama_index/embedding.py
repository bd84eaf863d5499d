"""scanrag's dense encoder as a LlamaIndex embedding."""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr

from ...retrieval.embedding import DEFAULT_DENSE_MODEL, DenseEncoder


class ScanRAGEmbedding(BaseEmbedding):
    """scanrag's dense encoder as a LlamaIndex embedding: the packaged all-MiniLM-L6-v2 by
    default (no download, no extra LlamaIndex package), or any sentence-transformers folder.
    `encoder=` shares one already loaded (an `Index`'s `dense`) instead of loading it again."""

    _encoder: DenseEncoder = PrivateAttr()

    def __init__(
        self,
        model_name: str = DEFAULT_DENSE_MODEL,
        embed_batch_size: int = 32,
        *,
        encoder: DenseEncoder | None = None,
        **kwargs: Any,
    ) -> None:
        model_name = encoder.name if encoder else model_name
        super().__init__(model_name=model_name, embed_batch_size=embed_batch_size, **kwargs)
        self._encoder = encoder or DenseEncoder(model_name, embed_batch_size)

    @classmethod
    def class_name(cls) -> str:
        return "ScanRAGEmbedding"

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._encoder.encode(texts).tolist()

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embeddings([query])[0]

    # Encoding is CPU-bound and blocking: the async methods run it in a worker thread, so the
    # event loop keeps serving meanwhile, and a batch stays one encoder call (LlamaIndex's
    # default would gather one call per text).
    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)
