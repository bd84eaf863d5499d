"""The chunk payload is defined once: the store's indexes, filters and search hits follow it."""

from __future__ import annotations

from scanrag.retrieval.results import INTEGER, KEYWORD, PARTITION, ChunkPayload, SearchHit, indexed
from scanrag.retrieval.store import (
    INTEGER_FIELDS,
    KEYWORD_FIELDS,
    PARTITION_FIELDS,
    Between,
    Either,
    Match,
    SearchFilters,
    conditions,
)


def keys(found: list) -> set[str]:
    out = set()
    for condition in found:
        if isinstance(condition, Either):
            out |= keys(list(condition.matches))
        else:
            out.add(condition.key)
    return out


def test_every_field_a_filter_or_a_delete_names_is_an_indexed_payload_field():
    every = SearchFilters(
        doc_id=["a", "b"],
        source="x.pdf",
        page_from=2,
        page_to=3,
        label="table",
        metadata={"dept": ["hr", "it"], "year": 2019},
    )
    found = conditions("acme", every, doc_id="0123456789abcdef")
    assert keys(found) == {
        "tenant", "doc_id", "source", "source_name", "pages", "labels", "meta_terms"
    }  # fmt: skip
    assert keys(found) <= set(PARTITION_FIELDS) | set(KEYWORD_FIELDS) | set(INTEGER_FIELDS)
    assert Between("pages", 2, 3) in found and Match("doc_id", ("a", "b")) in found
    assert Match("tenant", ("acme",)) in found
    assert Match("meta_terms", ("dept=hr", "dept=it")) in found
    assert Match("meta_terms", ("year=2019",)) in found
    assert conditions("acme", doc_id="0123456789abcdef") == [
        Match("tenant", ("acme",)),
        Match("doc_id", ("0123456789abcdef",)),
    ]
    assert conditions(None, doc_id="0123456789abcdef") == [Match("doc_id", ("0123456789abcdef",))]


def test_the_store_indexes_the_fields_the_payload_marks():
    assert PARTITION_FIELDS == indexed(PARTITION) == ("tenant",)
    assert KEYWORD_FIELDS == indexed(KEYWORD) == (
        "doc_id", "source", "source_name", "labels", "meta_terms"
    )  # fmt: skip
    assert INTEGER_FIELDS == indexed(INTEGER) == ("pages",)
    assert set(PARTITION_FIELDS + KEYWORD_FIELDS + INTEGER_FIELDS) <= set(ChunkPayload.model_fields)


def test_a_stored_payload_becomes_a_search_hit_with_its_regions_and_lines():
    region = {
        "region_id": "0123456789abcdef:p2:r4",
        "page": 2,
        "bbox": [10, 20, 300, 60],
        "bbox_norm": [6, 9, 181, 26],
        "label": "text",
        "start": 0,
        "end": 10,
        "page_width": 1654,
        "page_height": 2339,
        "lines": [{"text": "Total due:", "bbox": [10, 20, 300, 60], "start": 0, "end": 10}],
    }
    before_tenants = {
        "doc_id": "0123456789abcdef",
        "chunk": 3,
        "source": "scans/a.png",
        "source_name": "a.png",
        "text": "Total due:",
        "heading": "Invoice",
        "pages": [2],
        "labels": ["text"],
        "regions": [region],
    }
    stored = {
        "tenant": "acme",
        **before_tenants,
        "metadata": {"dept": "finance", "year": 2019},
        "meta_terms": ["dept=finance", "year=2019"],
    }
    assert ChunkPayload.model_validate(stored).model_dump(mode="json") == stored
    old = SearchHit.from_payload(before_tenants, 0.5)  # written before tenants and metadata
    assert old.metadata == {} and old.doc_id == "0123456789abcdef"
    hit = SearchHit.from_payload(stored, 0.5)
    assert (hit.chunk_id, hit.doc_id, hit.source, hit.score) == (
        "0123456789abcdef:c3",
        "0123456789abcdef",
        "scans/a.png",
        0.5,
    )
    assert hit.regions[0].model_dump(mode="json") == region
    assert hit.metadata == {"dept": "finance", "year": 2019}
    assert ChunkPayload.naming("uploads/x/b.pdf") == {
        "source": "uploads/x/b.pdf",
        "source_name": "b.pdf",
    }
