"""What the retrievers of other frameworks (LangChain, LlamaIndex) attach to each search hit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..api.urls import Citation
from ..config import Settings
from ..retrieval.answer import ExtractiveAnswerer
from ..retrieval.results import SearchHit

if TYPE_CHECKING:
    from ..retrieval.index import Index


def open_index(
    index: Index | None, tenant: str | None, settings: Settings | None = None, **options: Any
) -> tuple[Index, bool]:
    """The index a retriever searches, and whether the retriever opened it (and so closes
    it): a new one from the settings and options, else the tenant's view of the one given."""
    if index is None:
        from ..retrieval.index import Index  # the retrieval stack (torch) only when used

        return Index(settings, **{**options, **({"tenant": tenant} if tenant else {})}), True
    return (index.as_tenant(tenant) if tenant else index), False


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
