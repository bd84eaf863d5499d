"""A Document's points: its chunks embedded dense and sparse, each with its payload; and the
same encoders for queries."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import numpy as np

from ..config import Settings
from ..ingest.model import MARGINAL_LABELS, Document
from .chunking import Chunk, chunk_document
from .embedding import DenseEncoder, SparseEncoder, SparseVec
from .metadata import terms
from .results import META_TERMS, ChunkPayload, HitLine, HitRegion
from .store import SearchMode, StorePoint

POINT_NAMESPACE = uuid.UUID("6f0e7b1c-58a4-4f7e-9d5e-2c1a3b4d5e6f")
INDEX_VERSION = 4  # bump when chunking, the payload layout or the sparse encoding changes


def index_fingerprint(settings: Settings) -> str:
    """What determines the points of a Document: chunking and embedding settings."""
    payload = json.dumps(
        [INDEX_VERSION, settings.chunk_tokens, settings.embed_model, sorted(MARGINAL_LABELS)]
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def chunk_payload(
    chunk: Chunk,
    source: str,
    sizes: dict[int, tuple[int, int]],
    tenant: str,
    metadata: dict[str, Any],
) -> ChunkPayload:
    """A chunk's provenance as stored beside its vectors (`sizes`: page number → pixels)."""
    return ChunkPayload(
        tenant=tenant,
        doc_id=chunk.doc_id,
        chunk=chunk.index,
        **ChunkPayload.naming(source),
        text=chunk.text,
        heading=chunk.heading,
        pages=chunk.pages,
        labels=sorted({region.label for region in chunk.regions}),
        regions=[
            HitRegion(
                region_id=region.region_id,
                page=region.page,
                bbox=region.bbox,
                bbox_norm=region.bbox_norm,
                label=region.label,
                start=region.start,
                end=region.end,
                page_width=sizes[region.page][0],
                page_height=sizes[region.page][1],
                lines=[
                    HitLine(text=line.text, bbox=line.bbox, start=line.start, end=line.end)
                    for line in region.lines
                ],
            )
            for region in chunk.regions
        ],
        **metadata_payload(metadata),
    )


def metadata_payload(metadata: dict[str, Any]) -> dict[str, Any]:
    """The payload fields that carry a document's metadata (set again when it changes)."""
    return {"metadata": metadata, META_TERMS: terms(metadata)}


class Encoders:
    """The dense and sparse encoders, for a Document's chunks and for queries."""

    def __init__(self, dense: DenseEncoder, sparse: SparseEncoder, chunk_tokens: int) -> None:
        self.dense = dense
        self.sparse = sparse
        self.chunk_tokens = chunk_tokens

    def points(
        self, doc: Document, source: str, tenant: str, metadata: dict[str, Any]
    ) -> list[StorePoint]:
        """One point per chunk, with an id derived from the chunk's (the same every run; a
        tenant's document ids are its own, so are its points')."""
        chunks = chunk_document(doc, self.chunk_tokens)
        if not chunks:
            return []
        texts = [chunk.text for chunk in chunks]
        dense = self.dense.encode(texts)
        sparse = self.sparse.encode_documents(texts)
        sizes = {page.number: (page.width, page.height) for page in doc.pages}
        return [
            StorePoint(
                id=str(uuid.uuid5(POINT_NAMESPACE, chunk.id)),
                dense=dense[i],
                sparse=sparse[i],
                payload=chunk_payload(chunk, source, sizes, tenant, metadata).model_dump(
                    mode="json"
                ),
            )
            for i, chunk in enumerate(chunks)
        ]

    def query(self, text: str, mode: SearchMode) -> tuple[np.ndarray | None, SparseVec | None]:
        """The query's vectors for a search mode (None for the side it does not use)."""
        dense = self.dense.encode([text])[0] if mode in ("hybrid", "dense") else None
        sparse = self.sparse.encode_query(text) if mode in ("hybrid", "sparse") else None
        return dense, sparse
