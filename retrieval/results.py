"""What a search returns: ranked chunks with the regions and lines they came from."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ..ingest.model import BBox


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


class SearchHit(BaseModel):
    chunk_id: str
    doc_id: str
    source: str
    score: float
    text: str
    heading: str = ""
    pages: list[int]
    regions: list[HitRegion]

    @classmethod
    def from_payload(cls, payload: dict[str, Any], score: float) -> SearchHit:
        return cls(
            chunk_id=f"{payload['doc_id']}:c{payload['chunk']}",
            doc_id=payload["doc_id"],
            source=payload["source"],
            score=score,
            text=payload["text"],
            heading=payload.get("heading", ""),
            pages=payload["pages"],
            regions=payload["regions"],
        )
