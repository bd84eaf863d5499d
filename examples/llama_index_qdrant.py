"""scanrag inside a LlamaIndex application, offline: the bundled scans → ScanRAGReader →
ScanRAGNodeParser → VectorStoreIndex on Qdrant (local mode) with the packaged MiniLM → queries,
each source node printed with its page and the boxes of the regions it came from.

pip install -e '.[llama-index]'
python examples/llama_index_qdrant.py

The parse is cached in out/llama-index, so a second run reads no pixels. MockLLM stands in for
the LLM to keep this offline; pass any LlamaIndex LLM to `as_query_engine` instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.llms import MockLLM
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

from scanrag.connectors.llama_index import (
    ScanRAGEmbedding,
    ScanRAGNodeParser,
    ScanRAGReader,
    node_regions,
)

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "What is the total due on invoice INV-1001?",
    "What is the claim amount on form APP-96452?",
    "华联超市小票号044571的合计金额是多少？",
]

# local mode keeps no payload indexes and says so once per collection
warnings.filterwarnings("ignore", message="Payload indexes have no effect")


def main() -> None:
    reader = ScanRAGReader(data_dir=ROOT / "out" / "llama-index")
    documents = reader.load_data(ROOT / "examples" / "scans")
    print(f"{len(documents)} pages read from examples/scans")

    store = QdrantVectorStore(client=QdrantClient(location=":memory:"), collection_name="scans")
    index = VectorStoreIndex.from_documents(
        documents,
        storage_context=StorageContext.from_defaults(vector_store=store),
        transformations=[ScanRAGNodeParser(chunk_tokens=64)],
        embed_model=ScanRAGEmbedding(),  # the packaged all-MiniLM-L6-v2
    )
    engine = index.as_query_engine(llm=MockLLM(), similarity_top_k=2)

    for question in QUESTIONS:
        print(f"\nQ: {question}")
        for rank, hit in enumerate(engine.query(question).source_nodes, start=1):
            meta = hit.node.metadata
            print(f"  [{rank}] {hit.score:.3f} {meta['file_name']} page {meta['page']}")
            for region in node_regions(hit.node):
                text = " ".join(hit.node.text[region["start"] : region["end"]].split())
                text = text if len(text) <= 80 else text[:79] + "…"
                box = ",".join(map(str, region["bbox"]))
                print(f"      {region['label']:<5} bbox={box:<19} {text}")


if __name__ == "__main__":
    main()
