"""What the retrievers of other frameworks (LangChain, LlamaIndex) attach to each search hit."""

from __future__ import annotations

from typing import Any

from ..api.urls import Citation
from ..retrieval.answer import ExtractiveAnswerer
from ..retrieval.results import SearchHit


def hit_metadata(question: str, hits: list[SearchHit]) -> list[dict[str, Any]]:
    """For each hit, in rank order: the `/v1/query` citation of the region that answers the
    question best (`scanrag.api.urls.Citation`, as JSON), the chunk id, and every region of
    the chunk (boxes, no lines)."""
    answerer = ExtractiveAnswerer()
    return [
        {
            **Citation.of(answerer.cite_hit(question, hit, rank)).model_dump(mode="json"),
            "chunk_id": hit.chunk_id,
            "regions": [
                region.model_dump(mode="json", exclude={"lines", "page_width", "page_height"})
                for region in hit.regions
            ],
        }
        for rank, hit in enumerate(hits, start=1)
    ]
