"""scanrag's dense encoder as a LlamaIndex embedding."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.bridge.pydantic import PrivateAttr

from ...retrieval.embedding import DEFAULT_DENSE_MODEL, DenseEncoder


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
