"""ScanRAGReader Documents cut into nodes by scanrag's region-aware chunker."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llama_index.core.bridge.pydantic import Field
from llama_index.core.node_parser import NodeParser
from llama_index.core.schema import (
    BaseNode,
    Document,
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.utils import get_tqdm_iterable

from ...ingest import model as scan
from ...retrieval.chunking import Chunk, chunk_document
from .metadata import DOCUMENT_KEY, node_metadata


class ScanRAGNodeParser(NodeParser):
    """ScanRAGReader Documents → nodes cut by scanrag's region-aware chunker.

    Each Document (a page, or a region) is chunked on its own from the parsed scanrag
    Document its `scanrag_json` names: tables are never split mid-row and repeat their header,
    and the heading path opens each chunk. Each node lists the regions it covers with both box
    forms and their character spans in the node text. Relationships carry ids only, so no
    metadata is stored three times.
    """

    chunk_tokens: int = Field(200, ge=32, description="Token budget of a chunk (as scanrag's).")
    flat_metadata: bool = Field(False, description="JSON-encode list values (flat-only stores).")

    @classmethod
    def class_name(cls) -> str:
        return "ScanRAGNodeParser"

    def _parse_nodes(
        self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any
    ) -> list[BaseNode]:
        parsed: dict[str, scan.Document] = {}
        out: list[BaseNode] = []
        for node in get_tqdm_iterable(nodes, show_progress, "Chunking scanned pages"):
            out.extend(self._chunk(node, parsed))
        return out

    def _chunk(self, node: BaseNode, parsed: dict[str, scan.Document]) -> list[TextNode]:
        path = node.metadata.get(DOCUMENT_KEY)
        if not path:
            raise ValueError(
                f"ScanRAGNodeParser: node {node.node_id} has no {DOCUMENT_KEY!r}; "
                "it splits the Documents that ScanRAGReader loads"
            )
        if path not in parsed:
            try:
                parsed[path] = scan.Document.model_validate_json(Path(path).read_bytes())
            except OSError as exc:
                raise ValueError(
                    f"ScanRAGNodeParser: the parsed document {path} is gone ({exc.strerror}); "
                    "load the files again with ScanRAGReader"
                ) from exc
        doc = parsed[path]
        page = doc.page(int(node.metadata["page"]))
        if page is None:
            return []
        region_id = node.metadata.get("region_id")
        regions = [r for r in page.regions if region_id is None or r.id == region_id]
        part = doc.model_copy(update={"pages": [page.model_copy(update={"regions": regions})]})
        inherited = {k: v for k, v in node.metadata.items() if k not in ("regions", DOCUMENT_KEY)}
        return [
            self._node(index, node, chunk, inherited)
            for index, chunk in enumerate(chunk_document(part, self.chunk_tokens))
        ]

    def _node(self, index: int, parent: BaseNode, chunk: Chunk, inherited: dict) -> TextNode:
        ours = {
            "chunk_id": f"{parent.node_id}:c{chunk.index}",
            "regions": [
                {
                    "region_id": region.region_id,
                    "label": region.label,
                    "bbox": list(region.bbox),
                    "bbox_norm": list(region.bbox_norm),
                    "start": region.start,
                    "end": region.end,
                }
                for region in chunk.regions
            ],
        }
        metadata, embed_excluded, llm_excluded = node_metadata(ours, inherited, self.flat_metadata)
        return TextNode(
            id_=self.id_func(index, parent),
            text=chunk.text,
            metadata=metadata,
            excluded_embed_metadata_keys=sorted(
                {*parent.excluded_embed_metadata_keys, *embed_excluded}
            ),
            excluded_llm_metadata_keys=sorted({*parent.excluded_llm_metadata_keys, *llm_excluded}),
            relationships={
                NodeRelationship.SOURCE: RelatedNodeInfo(
                    node_id=parent.node_id, node_type=parent.get_type(), hash=parent.hash
                )
            },
        )

    def _postprocess_parsed_nodes(
        self, nodes: list[BaseNode], parent_doc_map: dict[str, Document]
    ) -> list[BaseNode]:
        """LlamaIndex's bookkeeping, then relationships slimmed to ids (it copies the
        neighbours' whole metadata into them) and the parser's cache path dropped again."""
        nodes = super()._postprocess_parsed_nodes(nodes, parent_doc_map)
        for node in nodes:
            node.metadata.pop(DOCUMENT_KEY, None)
            for related in node.relationships.values():
                for info in related if isinstance(related, list) else [related]:
                    info.metadata = {}
        return nodes
