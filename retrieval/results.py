"""The chunk payload (what the store keeps beside each chunk's vectors) and what a search
returns: ranked chunks with the regions and lines they came from.

`ChunkPayload` is the payload's one definition: the store's payload indexes are its fields
marked `PARTITION`, `KEYWORD` or `INTEGER`, and a `SearchHit` is made from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, Field

from ..ingest.model import BBox
from ..tenants import DEFAULT

#: Payload fields the store indexes, by kind (search filters match on them). `PARTITION`:
#: the keyword every query and delete filters on, indexed as Qdrant's tenant partition.
PARTITION = "partition"
KEYWORD = "keyword"
INTEGER = "integer"


class HitLine(BaseModel):
    text: str
    bbox: BBox
    start: int = Field(description="Character span of the line inside the chunk text.")
    end: int


class HitRegion(BaseModel):
    region_id: str
    page: int
    bbox: BBox = Field(description="[x0, y0, x1, y1] in page-image pixels, origin top-left.")
    bbox_norm: BBox = Field(description="[x0, y0, x1, y1] as integers 0–1000.")
    label: str
    start: int = Field(description="Character span of the region inside the chunk text.")
    end: int
    page_width: int
    page_height: int
    lines: list[HitLine] = Field(default_factory=list)


class ChunkPayload(BaseModel):
    """Compact provenance stored beside a chunk's vectors; never part of the embedded text.
    Points written before tenants existed carry no `tenant` until the store gives them the
    default one (`Store.claim_untenanted`), nor any metadata."""

    tenant: Annotated[str, PARTITION] = DEFAULT
    doc_id: Annotated[str, KEYWORD]
    chunk: int
    source: Annotated[str, KEYWORD]
    source_name: Annotated[str, KEYWORD]
    text: str
    heading: str = ""
    pages: Annotated[list[int], INTEGER]
    labels: Annotated[list[str], KEYWORD]
    regions: list[HitRegion]
    metadata: dict[str, Any] = Field(default_factory=dict)
    meta_terms: Annotated[list[str], KEYWORD] = Field(
        default_factory=list, description="`key=value` for each metadata entry (filters)."
    )

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}:c{self.chunk}"

    @staticmethod
    def naming(source: str) -> dict[str, str]:
        """The fields that name a chunk's file (set again when another file holds it)."""
        return {"source": source, "source_name": Path(source).name}


#: The field a document's points are found by (to delete, count or rename them).
DOC_ID = "doc_id"
#: The field that says whose a point is.
TENANT = "tenant"
#: The field metadata filters match (`metadata.terms`).
META_TERMS = "meta_terms"


def indexed(kind: str) -> tuple[str, ...]:
    """The payload fields the store indexes as `kind`."""
    return tuple(
        name for name, info in ChunkPayload.model_fields.items() if kind in info.metadata
    )


class SearchHit(BaseModel):
    chunk_id: str
    doc_id: str
    source: str
    score: float
    text: str
    heading: str = ""
    pages: list[int]
    regions: list[HitRegion]
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="The document's metadata (given at upload or ingest)."
    )

    @classmethod
    def from_payload(cls, payload: dict[str, Any], score: float) -> SearchHit:
        stored = ChunkPayload.model_validate(payload)
        shared = {name: getattr(stored, name) for name in _SHARED}
        return cls(chunk_id=stored.chunk_id, score=score, **shared)


_SHARED = [name for name in SearchHit.model_fields if name in ChunkPayload.model_fields]
