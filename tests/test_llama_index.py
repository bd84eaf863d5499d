"""The LlamaIndex connector: ScanRAGReader output indexed by LlamaIndex answers with sources that
point at the page region holding the answer, provenance never reaches embeddings or prompts, and
ScanRAGRetriever hands a query engine nodes whose metadata are /v1/query citations.

The scans are rendered here with known line positions; they are OCR'd once, by a scanrag
Index, and the reader reuses that parse cache (OCR costs seconds a page)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import StorageContext, VectorStoreIndex
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import Document, MetadataMode
from llama_index.core.vector_stores.utils import node_to_metadata_dict
from seams import open_index

from scanrag.api.urls import Citation
from scanrag.connectors import llama_index as connector
from scanrag.connectors.llama_index import (
    ScanRAGEmbedding,
    ScanRAGNodeParser,
    ScanRAGReader,
    ScanRAGRetriever,
    node_regions,
)
from scanrag.errors import ConfigError, ScanragError
from scanrag.ingest.model import BBox
from scanrag.ingest.parsers import Block, Parser, get_parser
from scanrag.testing import Sheet, image_pdf, invoice, receipt_zh, two_column_report

pytestmark = pytest.mark.slow  # OCRs three scans and builds LlamaIndex indexes

REGION_ID = re.compile(r"[0-9a-f]{16}:p\d+:r\d+")


class RecordingEmbedding(ScanRAGEmbedding):
    """The packaged MiniLM, remembering every text LlamaIndex asks it to embed."""

    seen: list[str] = Field(default_factory=list, exclude=True)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        self.seen.extend(texts)
        return super()._get_text_embeddings(texts)


@pytest.fixture(scope="module")
def sheets() -> dict[str, Sheet]:
    return {
        "invoice.png": invoice(),
        "receipt.png": receipt_zh(),
        "report.pdf": two_column_report(),
    }


@pytest.fixture(scope="module")
def scans(tmp_path_factory, sheets) -> Path:
    folder = tmp_path_factory.mktemp("scans")
    sheets["invoice.png"].image().save(folder / "invoice.png")
    sheets["receipt.png"].image().save(folder / "receipt.png")
    image_pdf([sheets["report.pdf"].image()], folder / "report.pdf")
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def scan_index(scans, data_dir):
    with open_index(data_dir=data_dir) as index:
        report = index.ingest([scans])
        assert (report.added, report.failed) == (3, 0)
        yield index


@pytest.fixture(scope="module")
def documents(scan_index, scans, data_dir) -> list[Document]:
    return ScanRAGReader(data_dir=data_dir).load_data(scans)


@pytest.fixture(scope="module")
def embed_model() -> RecordingEmbedding:
    return RecordingEmbedding()


def source_node(index: VectorStoreIndex, question: str):
    """The top source node of a query engine answering with LlamaIndex's MockLLM."""
    response = index.as_query_engine(llm=MockLLM(), similarity_top_k=3).query(question)
    return response.source_nodes[0].node


def holding(node, sheet: Sheet, text: str) -> list[dict]:
    """The regions of `node` whose 0–1000 box covers most of the drawn line holding `text`."""
    known = sheet.find(text).bbox.to_norm(sheet.width, sheet.height)
    return [r for r in node_regions(node) if BBox(*r["bbox_norm"]).coverage_of(known) > 0.6]


def test_reader_gives_one_markdown_document_per_page_with_compact_provenance(
    documents, scans, data_dir
):
    by_file = {doc.metadata["file_name"]: doc for doc in documents}
    assert sorted(by_file) == ["invoice.png", "receipt.png", "report.pdf"]
    page = by_file["invoice.png"]
    meta = page.metadata
    assert meta["source"] == str(scans / "invoice.png")
    assert page.id_ == f"{meta['doc_id']}:p1"
    assert (meta["page"], meta["page_width"], meta["page_height"]) == (1, 1654, 2339)
    assert page.text.startswith("# INVOICE INV-1001")  # layout-aware Markdown, no anchors
    assert "| Item | Qty | Unit price | Amount |" in page.text
    # every region: id, label, 0–1000 box and its span in the page text
    assert {tuple(region) for region in meta["regions"]} == {
        ("region_id", "label", "bbox_norm", "start", "end")
    }
    total = next(r for r in meta["regions"] if "Total due" in page.text[r["start"] : r["end"]])
    assert REGION_ID.fullmatch(total["region_id"]) and total["label"] == "text"
    # the parse came from the Index's cache: no second OCR
    assert Path(meta[connector.DOCUMENT_KEY]).parent == data_dir / "cache"


def test_anchors_put_region_ids_in_the_text_on_request(scan_index, scans, data_dir, documents):
    anchored = ScanRAGReader(data_dir=data_dir, anchors=True).load_data(scans)
    for plain, marked in zip(documents, anchored, strict=True):
        assert marked.text.startswith("<!-- page 1 width=")
        for a, b in zip(plain.metadata["regions"], marked.metadata["regions"], strict=True):
            assert f"<!-- region {b['region_id']} label={b['label']} " in marked.text
            assert plain.text[a["start"] : a["end"]] == marked.text[b["start"] : b["end"]]


def test_provenance_never_reaches_embeddings_or_prompts(documents, embed_model):
    embed_model.seen.clear()
    VectorStoreIndex.from_documents(
        documents, embed_model=embed_model, transformations=[ScanRAGNodeParser(chunk_tokens=48)]
    )
    VectorStoreIndex.from_documents(
        documents,
        embed_model=embed_model,
        transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0)],
    )
    embedded = "\n".join(embed_model.seen)
    assert "Total due: $2,448.50" in embedded and "合计 ¥165.04" in embedded
    for key in ("regions", "bbox", "doc_id", "page_width", "scanrag_json", "source:", "page:"):
        assert key not in embedded
    assert not REGION_ID.search(embedded)
    for doc in documents:
        assert doc.metadata["doc_id"] not in embedded
        prompt = doc.get_content(MetadataMode.LLM)
        assert prompt.startswith(f"source: {doc.metadata['source']}\npage: 1\n\n")
        assert not REGION_ID.search(prompt) and "bbox" not in prompt


def test_vector_index_over_scanrag_nodes_cites_the_region_holding_the_answer(
    documents, embed_model, sheets
):
    index = VectorStoreIndex.from_documents(
        documents, embed_model=embed_model, transformations=[ScanRAGNodeParser(chunk_tokens=48)]
    )
    cases = [
        ("What is the total due on invoice INV-1001?", "invoice.png", "$2,448.50"),
        ("How many employees does the workforce have?", "report.pdf", "4594"),
        ("华联超市小票的合计金额是多少？", "receipt.png", "¥165.04"),
    ]
    for question, file_name, answer in cases:
        node = source_node(index, question)
        assert (node.metadata["file_name"], node.metadata["page"]) == (file_name, 1), question
        regions = holding(node, sheets[file_name], answer)
        assert len(regions) == 1, question
        assert answer in node.text[regions[0]["start"] : regions[0]["end"]]


def test_scanrag_nodes_carry_their_own_regions_and_slim_relationships(documents):
    page = next(doc for doc in documents if doc.metadata["file_name"] == "invoice.png")
    nodes = ScanRAGNodeParser(chunk_tokens=48).get_nodes_from_documents([page])
    assert len(nodes) > 2
    covered = [r["region_id"] for node in nodes for r in node.metadata["regions"]]
    listed = [r["region_id"] for r in page.metadata["regions"]]
    assert set(covered) == set(listed)  # the table is split into row groups, nothing is lost
    for node in nodes:
        assert node.ref_doc_id == page.id_
        assert node.text.startswith("INVOICE INV-1001")  # the heading path opens each chunk
        assert all(set(r) >= {"bbox", "bbox_norm", "label"} for r in node.metadata["regions"])
        assert connector.DOCUMENT_KEY not in node.metadata
        assert all(not info.metadata for info in node.relationships.values())


def test_default_splitter_nodes_resolve_to_the_regions_they_hold(documents, embed_model, sheets):
    index = VectorStoreIndex.from_documents(
        documents,
        embed_model=embed_model,
        transformations=[SentenceSplitter(chunk_size=64, chunk_overlap=0)],
    )
    node = source_node(index, "What is the total due?")
    assert node.metadata["file_name"] == "invoice.png"
    assert len(node_regions(node)) < len(node.metadata["regions"])
    assert holding(node, sheets["invoice.png"], "$2,448.50")


@pytest.mark.filterwarnings("ignore:Payload indexes have no effect")
def test_region_documents_in_qdrant_local_mode_point_at_the_answer_box(
    scan_index, scans, data_dir, embed_model, sheets
):
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    regions = ScanRAGReader(data_dir=data_dir, per="region").load_data(scans)
    assert all(REGION_ID.fullmatch(doc.id_) for doc in regions)
    store = QdrantVectorStore(client=QdrantClient(location=":memory:"), collection_name="scans")
    index = VectorStoreIndex.from_documents(
        regions,
        embed_model=embed_model,
        storage_context=StorageContext.from_defaults(vector_store=store),
    )
    node = source_node(index, "What is the total due?")
    sheet = sheets["invoice.png"]
    assert node.metadata["label"] == "text" and node.metadata["page"] == 1
    assert BBox(*node.metadata["bbox"]).coverage_of(sheet.find("$2,448.50").bbox) > 0.6
    assert BBox(*node.metadata["bbox"]).coverage_of(sheet.find("Total due").bbox) > 0.6
    assert node_regions(node)[0]["region_id"] == node.metadata["region_id"]


def test_flat_metadata_suits_stores_that_take_scalars_only(scan_index, scans, data_dir):
    flat = ScanRAGReader(data_dir=data_dir, flat_metadata=True).load_data(scans)
    nested = ScanRAGReader(data_dir=data_dir).load_data(scans)
    nodes = ScanRAGNodeParser(flat_metadata=True).get_nodes_from_documents(flat)
    for item in [*flat, *nodes]:
        node_to_metadata_dict(item, flat_metadata=True)  # raises on a list or a dict
    assert [node_regions(doc) for doc in flat] == [node_regions(doc) for doc in nested]


def test_retriever_gives_query_engines_nodes_that_are_citations(scan_index, sheets):
    retriever = ScanRAGRetriever(scan_index, top_k=3)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())
    response = engine.query("What is the total due on invoice INV-1001?")
    node = response.source_nodes[0].node
    citation = Citation.model_validate(node.metadata)
    assert set(Citation.model_fields) <= set(node.metadata)
    sheet = sheets["invoice.png"]
    assert (Path(citation.source).name, citation.page, citation.n) == ("invoice.png", 1, 1)
    assert citation.bbox.coverage_of(sheet.find("Total due").bbox) > 0.6
    value = next(line for line in citation.lines if "2,448.50" in line.text)
    assert value.bbox.iou(sheet.find("$2,448.50").bbox) > 0.5
    assert citation.highlight_url.endswith(f"?highlight={citation.region_id}")
    assert citation.region_id in {r["region_id"] for r in node.metadata["regions"]}
    prompt = node.get_content(MetadataMode.LLM)
    assert prompt.startswith(f"source: {citation.source}\npage: 1\n\n")
    assert not REGION_ID.search(prompt)

    receipts = ScanRAGRetriever(scan_index, filters={"source": "receipt.png"}).retrieve("total")
    assert receipts and {Path(n.node.metadata["source"]).name for n in receipts} == {"receipt.png"}


class Unasked:
    """A parser with another's name, version and options (so its fingerprint), that must
    never be asked to read a page."""

    def __init__(self, real: Parser) -> None:
        self.name, self.version, self.config = real.name, real.version, real.config
        self.asked = 0

    def parse_page(self, page) -> list[Block]:
        self.asked += 1
        raise AssertionError("parsed again")


def test_reader_caches_its_parse_and_loads_lazily(tmp_path, scans):
    reader = ScanRAGReader(data_dir=tmp_path / "empty", cache_dir=tmp_path / "cache")
    pages = reader.lazy_load_data([scans / "receipt.png"])
    first = next(pages)  # parsed now, on demand
    assert Path(first.metadata[connector.DOCUMENT_KEY]).parent == tmp_path / "cache"

    unasked = Unasked(get_parser(reader.settings))
    again = ScanRAGReader(data_dir=tmp_path / "empty", cache_dir=tmp_path / "cache", parser=unasked)
    [cached] = again.load_data(scans / "receipt.png")
    assert unasked.asked == 0
    assert (cached.id_, cached.text, cached.metadata) == (first.id_, first.text, first.metadata)


class FellBack:
    """Reads every page as the fallback parser does when the model server has failed: the
    regions carry the `fallback` flag."""

    name, version = "glm-ocr", "test"

    def __init__(self) -> None:
        self.pages = 0

    def config(self) -> dict:
        return {}

    def parse_page(self, page) -> list[Block]:
        self.pages += 1
        box = BBox(40, 40, page.width - 40, 120)
        return [Block("text", box, text="合计 ¥165.04", source="embedded", flags=["fallback"])]


def test_a_fallback_parse_is_chunked_but_parsed_again_next_time(tmp_path, scans):
    parser = FellBack()
    reader = ScanRAGReader(data_dir=tmp_path, parser=parser, straighten=False)
    for _ in range(2):
        [page] = reader.load_data(scans / "receipt.png")
    assert parser.pages == 2
    # kept under the fallback fingerprint, which no reader or Index looks up
    assert Path(page.metadata[connector.DOCUMENT_KEY]).name.split("-")[1] == "fallback"
    assert ScanRAGNodeParser().get_nodes_from_documents([page])


def test_reader_options_reach_the_parser_and_bad_files_are_named(tmp_path, caplog):
    reader = ScanRAGReader(parser="pdf-text", dpi=150, data_dir=tmp_path, max_pages=3)
    assert (reader.settings.parser, reader.settings.dpi, reader.settings.max_pages) == (
        "pdf-text",
        150,
        3,
    )
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7 not really")
    assert ScanRAGReader(data_dir=tmp_path).load_data(tmp_path) == []
    assert "broken.pdf" in caplog.text
    with pytest.raises(ScanragError, match=r"broken\.pdf"):
        ScanRAGReader(data_dir=tmp_path, raise_on_error=True).load_data(broken)
    with pytest.raises(ConfigError, match="unknown parser"):
        ScanRAGReader(parser="nope", data_dir=tmp_path).load_data(broken)


def test_node_parser_refuses_documents_it_cannot_trace():
    with pytest.raises(ValueError, match="ScanRAGReader"):
        ScanRAGNodeParser().get_nodes_from_documents([Document(text="plain text")])
