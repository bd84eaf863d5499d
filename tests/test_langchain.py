"""The LangChain connector: ScanRAGRetriever gives LangChain Documents whose metadata are the
/v1/query citation of the region that answers (page, region id, pixel and 0–1000 boxes), sync
and async — the async path leaves the event loop running — and ScanRAGLoader turns scans into
page Documents whose regions map back from the text to their boxes. Scans rendered here."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent))

from doors import TOTAL, TOTAL_QUESTION, index_scans, with_heartbeat

from scanrag.api.urls import Citation
from scanrag.connectors.langchain import ScanRAGLoader, ScanRAGRetriever
from scanrag.errors import ScanragError
from scanrag.ingest.model import BBox
from scanrag.retrieval.index import Index
from scanrag.testing import Sheet, invoice

SHEETS = {"inv-1001.png": invoice(), "inv-2002.png": invoice("INV-2002", total="$9,310.00")}
METADATA = {"source", "page", "bbox", "bbox_norm", "region_id", "label", "doc_id", "score"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("langchain")
    index_scans(SHEETS, root / "scans", root / "data")
    return root / "data"


@pytest.fixture(scope="module")
def retriever(data_dir):
    with ScanRAGRetriever(data_dir=str(data_dir), top_k=3) as retriever:
        yield retriever


def doc_ids(retriever: ScanRAGRetriever) -> dict[str, str]:
    return {Path(d.source).name: d.doc_id for d in retriever.index.documents()}


def test_retrieved_documents_carry_the_citation_of_the_region_that_answers(retriever):
    documents = retriever.invoke(TOTAL_QUESTION)
    assert 1 <= len(documents) <= 3
    top = documents[0]
    assert isinstance(top, Document) and set(top.metadata) >= METADATA
    assert Path(top.metadata["source"]).name == "inv-1001.png"
    assert top.metadata["page"] == 1 and top.id == top.metadata["chunk_id"]
    drawn = SHEETS["inv-1001.png"].find(TOTAL).bbox
    assert BBox(*top.metadata["bbox"]).coverage_of(drawn) > 0.8
    assert TOTAL in [line["text"] for line in top.metadata["lines"]]  # the row that answers
    assert top.metadata["crop_url"] == f"/v1/regions/{top.metadata['region_id']}/crop"
    assert TOTAL in top.page_content
    assert any(r["region_id"] == top.metadata["region_id"] for r in top.metadata["regions"])

    # the region /v1/query (Index.ask) cites for the question, in the same form
    citation = Citation.model_validate(top.metadata)
    (answered,) = retriever.index.ask(TOTAL_QUESTION).citations
    answer_citation = Citation.of(answered)
    region = {"doc_id", "source", "page", "region_id", "label", "bbox", "bbox_norm", "crop_url"}
    assert citation.model_dump(include=region) == answer_citation.model_dump(include=region)


def test_filters_keep_the_search_within_one_document(retriever):
    other = doc_ids(retriever)["inv-2002.png"]
    with ScanRAGRetriever(index=retriever.index, filters={"doc_id": other}) as narrowed:
        documents = narrowed.invoke(TOTAL_QUESTION)
    assert documents and {d.metadata["doc_id"] for d in documents} == {other}
    assert "$9,310.00" in documents[0].metadata["text"]
    retriever.index.search("still open", 1)  # a retriever given an index leaves it open


class SlowStore:
    """The real index behind a slow store (a remote Qdrant): each search also waits 0.3 s,
    and says when it ran."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.spans: list[tuple[float, float]] = []

    def search(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        hits = self.index.search(*args, **kwargs)
        time.sleep(0.3)
        self.spans.append((started, time.perf_counter()))
        return hits


def test_async_retrieval_leaves_the_event_loop_running(retriever):
    slow = SlowStore(retriever.index)
    async_retriever = ScanRAGRetriever(index=slow, top_k=2)

    documents, beats = asyncio.run(with_heartbeat(lambda: async_retriever.ainvoke(TOTAL_QUESTION)))
    ((started, ended),) = slow.spans
    assert [b for b in beats if started < b < ended]  # the loop ran during the search
    expected = retriever.invoke(TOTAL_QUESTION)[0]
    assert documents[0].metadata["region_id"] == expected.metadata["region_id"]


def test_retriever_options_are_validated():
    with pytest.raises(ValidationError, match="top_k"):
        ScanRAGRetriever(index=object(), top_k="many")
    with pytest.raises(ValidationError, match="data_dirr"):
        ScanRAGRetriever(data_dirr="scanrag-data")  # a typo is not ignored
    with pytest.raises(ValidationError, match="page"):
        ScanRAGRetriever(index=object(), filters={"page": 0})


def small_form() -> Sheet:
    sheet = Sheet(width=1000, height=420)
    sheet.write(60, 50, "PACKING SLIP PS-7781", size=44, bold=True, label="title")
    sheet.write(60, 170, "Ship to: Harbor Tools Inc.")
    sheet.write(60, 240, "Parcels: 4")
    sheet.write(60, 310, "Weight: 18.5 kg")
    return sheet


def test_the_loader_gives_page_documents_whose_regions_map_text_to_boxes(tmp_path, caplog):
    sheet = small_form()
    sheet.image().save(tmp_path / "slip.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")

    (page,) = ScanRAGLoader(tmp_path).load()
    assert "broken.jpg" in caplog.text  # named, skipped
    assert page.metadata["source"] == str(tmp_path / "slip.png")
    assert page.metadata["page"] == 1 and page.metadata["total_pages"] == 1
    assert (page.metadata["page_width"], page.metadata["page_height"]) == (1000, 420)
    assert "PACKING SLIP PS-7781" in page.page_content
    spans = [page.page_content[r["start"] : r["end"]] for r in page.metadata["regions"]]
    assert "\n\n".join(spans) == page.page_content.strip()  # the regions tile the text
    weight = next(
        r for r in page.metadata["regions"] if "18.5" in page.page_content[r["start"] : r["end"]]
    )
    assert BBox(*weight["bbox"]).coverage_of(sheet.find("Weight").bbox) > 0.8
    assert weight["bbox_norm"] == list(BBox(*weight["bbox"]).to_norm(1000, 420))

    with pytest.raises(ScanragError, match=r"broken\.jpg"):
        list(ScanRAGLoader(tmp_path / "broken.jpg", raise_on_error=True).lazy_load())
