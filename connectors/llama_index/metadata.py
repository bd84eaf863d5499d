"""Provenance in LlamaIndex metadata: JSON values, hidden from embeddings and from the LLM
but for `source` and `page`; flattened for vector stores that take flat metadata only."""

from __future__ import annotations

import json
from typing import Any

from llama_index.core.schema import BaseNode

#: Metadata the LLM is shown; every other key scanrag sets is provenance, hidden from the LLM.
LLM_KEYS = ("source", "page")
#: Where ScanRAGNodeParser finds the parsed scanrag Document of a page.
DOCUMENT_KEY = "scanrag_json"


def node_metadata(
    ours: dict[str, Any], extra: dict[str, Any] | None, flat: bool
) -> tuple[dict[str, Any], list[str], list[str]]:
    """Metadata plus the keys hidden from embeddings (all of ours) and from the LLM."""
    if flat:
        ours = {k: json.dumps(v) if isinstance(v, list | dict) else v for k, v in ours.items()}
    embed_excluded = list(ours)
    llm_excluded = [key for key in ours if key not in LLM_KEYS]
    return {**(extra or {}), **ours}, embed_excluded, llm_excluded


def loaded(meta: dict[str, Any], key: str) -> Any:
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
        return [{key: loaded(meta, key) for key in keys if key in meta}]
    regions = [{"page": meta.get("page"), **region} for region in loaded(meta, "regions")]
    start, end = getattr(node, "start_char_idx", None), getattr(node, "end_char_idx", None)
    if "chunk_id" in meta or start is None or end is None:
        return regions  # the node's own text is what the spans refer to
    inside = [r for r in regions if r["start"] < end and r["end"] > start]
    return inside or regions
