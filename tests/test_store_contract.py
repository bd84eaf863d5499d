"""One contract for every vector store: the embedded Qdrant Edge engine and qdrant-client's
local modes must answer the same calls the same way (a Qdrant server runs the same suite when
one is available to point `ClientStore(url=...)` at). Every call is a tenant's: searches,
deletes and payload updates never reach another tenant's points."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scanrag.errors import ConfigError
from scanrag.retrieval.embedding import SparseEncoder
from scanrag.retrieval.points import metadata_payload
from scanrag.retrieval.store import (
    RRF_K,
    ClientStore,
    EdgeStore,
    SearchFilters,
    Store,
    StoreError,
    StorePoint,
)

DIM = 16
SPARSE = SparseEncoder()
T = "acme"  # the tenant of CHUNKS

# doc_id, source, pages, labels, text: four chunks over three documents and two folders.
CHUNKS = [
    ("doc-a", "/data/inbox/invoice.pdf", [1], ["title", "table"], "invoice total due 2448 euros"),
    ("doc-a", "/data/inbox/invoice.pdf", [1, 2], ["text"], "payment terms thirty days net"),
    ("doc-b", "/data/archive/receipt.jpg", [1], ["text"], "联系人：徐明 联系电话 13884707867"),
    ("doc-c", "/data/inbox/report.pdf", [3, 4], ["text", "list"], "warehouse inventory audit"),
]


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def point_id(index: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"chunk-{index}"))


def make_point(
    index: int,
    text: str | None = None,
    tenant: str | None = T,
    metadata: dict[str, Any] | None = None,
    doc_id: str | None = None,
) -> StorePoint:
    """Chunk `index` of CHUNKS as a point of `tenant` (None: a point from before tenants)."""
    chunk_doc, source, pages, labels, chunk_text = CHUNKS[index]
    doc_id = doc_id or chunk_doc
    text = text or chunk_text
    owner = {"tenant": tenant} if tenant is not None else {}
    return StorePoint(
        id=point_id(index)
        if tenant in (T, None)
        else str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}-{index}")),
        dense=unit(index),
        sparse=SPARSE.encode_document(text),
        payload={
            **owner,
            **metadata_payload(metadata or {}),
            "doc_id": doc_id,
            "chunk": index,
            "source": source,
            "source_name": Path(source).name,
            "text": text,
            "pages": pages,
            "labels": labels,
            "regions": [{"region_id": f"{doc_id}:p{pages[0]}:r0", "page": pages[0]}],
        },
    )


Opener = Callable[[], Store]


@pytest.fixture(params=["edge", "client-memory", "client-path"])
def opener(request, tmp_path) -> Opener:
    """Opens the store under test; calling it again after close() reopens the same data."""
    kind = request.param
    opened: list[Store] = []

    def open_store() -> Store:
        if kind == "edge":
            store: Store = EdgeStore(tmp_path / "qdrant", DIM)
        elif kind == "client-memory":
            store = ClientStore(DIM, path=":memory:")
        else:
            store = ClientStore(DIM, path=str(tmp_path / "local"))
        opened.append(store)
        return store

    open_store.kind = kind  # type: ignore[attr-defined]
    yield open_store
    for store in opened:
        store.close()


@pytest.fixture
def store(opener) -> Store:
    store = opener()
    store.upsert([make_point(i) for i in range(len(CHUNKS))])
    return store


def ids(hits) -> list[str]:
    return [hit.id for hit in hits]


def chunks(hits) -> list[int]:
    return [hit.payload["chunk"] for hit in hits]


def test_dense_search_ranks_the_nearest_vector_first(store):
    hits = store.search(unit(2), None, limit=4, tenant=T)
    assert ids(hits)[0] == point_id(2)
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert len(hits) == 4
    assert hits[0].payload["text"] == CHUNKS[2][4]


def test_sparse_search_matches_terms_with_idf(store):
    hits = store.search(None, SPARSE.encode_query("warehouse audit"), limit=4, tenant=T)
    assert chunks(hits) == [3]  # only chunk 3 holds those terms
    hits = store.search(None, SPARSE.encode_query("徐明是谁"), limit=4, tenant=T)
    assert chunks(hits) == [2]


def test_hybrid_search_fuses_both_lists_by_reciprocal_rank(store):
    # dense points at chunk 0, sparse at chunk 3: both lead the fused list
    hits = store.search(unit(0), SPARSE.encode_query("warehouse"), limit=4, tenant=T)
    assert set(chunks(hits)[:2]) == {0, 3}
    # first in both lists: 1/(k + 0) twice (Qdrant counts ranks from 0)
    hits = store.search(unit(1), SPARSE.encode_query("payment terms"), limit=4, tenant=T)
    assert chunks(hits)[0] == 1
    assert hits[0].score == pytest.approx(2 / RRF_K, rel=1e-3)


def test_hybrid_search_can_fuse_by_score_distribution(store):
    rrf = store.search(unit(1), SPARSE.encode_query("payment terms"), limit=4, tenant=T)
    dbsf = store.search(
        unit(1), SPARSE.encode_query("payment terms"), limit=4, fusion="dbsf", tenant=T
    )
    assert chunks(dbsf)[0] == 1
    assert dbsf[0].score > 1.0 > rrf[0].score  # normalised scores summed, not 1/(k+rank)
    with pytest.raises(ValueError, match="fusion"):
        store.search(unit(1), None, limit=4, fusion="max", tenant=T)  # type: ignore[arg-type]


def test_a_query_without_terms_falls_back_to_dense_and_no_vectors_find_nothing(store):
    assert ids(store.search(unit(3), SPARSE.encode_query("the of and"), limit=1, tenant=T)) == [
        point_id(3)
    ]
    assert store.search(None, SPARSE.encode_query("?"), limit=3, tenant=T) == []
    assert store.search(None, None, limit=3, tenant=T) == []


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (SearchFilters(doc_id="doc-a"), {0, 1}),
        (SearchFilters(doc_id=["doc-b", "doc-c"]), {2, 3}),
        (SearchFilters(source="/data/inbox/report.pdf"), {3}),
        (SearchFilters(source="receipt.jpg"), {2}),
        (SearchFilters(source="inbox"), set()),  # neither a full path nor a file name
        (SearchFilters(page=2), {1}),
        (SearchFilters(page=1), {0, 1, 2}),
        (SearchFilters(page_from=2, page_to=3), {1, 3}),
        (SearchFilters(page_from=4), {3}),
        (SearchFilters(page_to=1), {0, 1, 2}),
        (SearchFilters(label="table"), {0}),
        (SearchFilters(label=["list", "title"]), {0, 3}),
        (SearchFilters(doc_id="doc-a", page=2, label="text"), {1}),
        (SearchFilters(doc_id="doc-a", label="list"), set()),
    ],
)
def test_filters_restrict_every_search_mode(store, filters, expected):
    dense = unit(0)
    sparse = SPARSE.encode_query("invoice payment 13884707867 warehouse")  # a term of each chunk
    for query in [(dense, None), (None, sparse), (dense, sparse)]:
        assert set(chunks(store.search(*query, limit=10, filters=filters, tenant=T))) == expected


def test_count_and_doc_counts(store):
    assert store.count() == 4
    assert store.count("doc-a") == 2
    assert store.count("missing") == 0
    assert store.doc_counts() == {"doc-a": 2, "doc-b": 1, "doc-c": 1}


def test_delete_doc_removes_only_that_documents_points(store):
    store.delete_doc("doc-a", tenant=T)
    assert store.count("doc-a") == 0
    assert store.doc_counts() == {"doc-b": 1, "doc-c": 1}
    assert store.search(None, SPARSE.encode_query("invoice payment"), limit=5, tenant=T) == []
    assert (
        chunks(
            store.search(unit(3), None, limit=5, filters=SearchFilters(doc_id="doc-a"), tenant=T)
        )
        == []
    )
    store.delete_doc("missing", tenant=T)  # deleting nothing is fine
    assert store.count() == 2


def test_set_payload_changes_every_point_of_one_document(store):
    store.set_payload(
        "doc-a", {"source": "/data/copy/invoice.pdf", "source_name": "x.pdf"}, tenant=T
    )
    hits = store.search(unit(0), None, 10, SearchFilters(source="/data/copy/invoice.pdf"), tenant=T)
    assert sorted(chunks(hits)) == [0, 1]
    assert all(hit.payload["text"] == CHUNKS[hit.payload["chunk"]][4] for hit in hits)  # merged
    assert chunks(store.search(unit(0), None, 10, SearchFilters(source="x.pdf"), tenant=T)) != []
    assert store.search(unit(0), None, 10, SearchFilters(source="invoice.pdf"), tenant=T) == []
    assert chunks(
        store.search(unit(2), None, 10, SearchFilters(source="receipt.jpg"), tenant=T)
    ) == [2]
    store.set_payload("missing", {"source": "y"}, tenant=T)  # no points: nothing happens
    assert store.count() == 4


def test_upsert_replaces_points_with_the_same_id(store):
    store.upsert([make_point(3, text="zeppelin hangar lease")])
    assert store.count() == 4
    assert store.count("doc-c") == 1
    assert chunks(store.search(None, SPARSE.encode_query("zeppelin"), limit=5, tenant=T)) == [3]
    assert store.search(None, SPARSE.encode_query("warehouse audit"), limit=5, tenant=T) == []


def test_upsert_of_nothing_is_a_no_op(store):
    store.upsert([])
    assert store.count() == 4


@pytest.mark.parametrize("kind", ["edge", "client-path"])
def test_points_survive_closing_and_reopening(tmp_path, kind):
    def open_store() -> Store:
        if kind == "edge":
            return EdgeStore(tmp_path / "qdrant", DIM)
        return ClientStore(DIM, path=str(tmp_path / "local"))

    store = open_store()
    store.upsert([make_point(i) for i in range(len(CHUNKS))])
    store.delete_doc("doc-c", tenant=T)
    store.close()
    store = open_store()
    try:
        assert store.doc_counts() == {"doc-a": 2, "doc-b": 1}
        assert ids(store.search(unit(2), None, limit=1, tenant=T)) == [point_id(2)]
        assert chunks(store.search(None, SPARSE.encode_query("徐明"), limit=3, tenant=T)) == [2]
        assert chunks(
            store.search(unit(0), None, 5, SearchFilters(source="invoice.pdf"), tenant=T)
        ) == [0, 1]
    finally:
        store.close()


def test_a_new_edge_shard_whose_payload_indexes_fail_is_closed(tmp_path, monkeypatch):
    """Else its directory lock lives as long as the error's traceback (which holds the half
    opened store), and every open meanwhile says the index is in use."""

    def broken(self: EdgeStore, operation: object) -> None:
        raise RuntimeError("no space left on device")

    monkeypatch.setattr(EdgeStore, "_update", broken)
    with pytest.raises(StoreError, match="no space left on device") as failed:
        EdgeStore(tmp_path / "qdrant", DIM)
    monkeypatch.undo()
    EdgeStore(tmp_path / "qdrant", DIM).close()
    assert failed.traceback  # kept until here


def test_a_local_collection_of_another_size_is_refused_and_the_client_closed(tmp_path):
    """qdrant-client's local mode locks its folder too: a refused open must release it."""
    ClientStore(DIM, path=str(tmp_path / "local")).close()
    with pytest.raises(ConfigError, match="dim") as refused:
        ClientStore(DIM * 2, path=str(tmp_path / "local"))
    ClientStore(DIM, path=str(tmp_path / "local")).close()
    assert refused.traceback  # kept until here


# --- tenants and metadata ------------------------------------------------------------------

OTHER = "globex"


def test_every_call_reaches_only_its_tenants_points(store):
    """Two tenants holding the same document ids: searches, counts, deletes and payload
    updates of one never touch the other's points."""
    store.upsert([make_point(i, tenant=OTHER) for i in range(len(CHUNKS))])
    sparse = SPARSE.encode_query("invoice payment 13884707867 warehouse")
    for tenant in (T, OTHER):
        for query in [(unit(0), None), (None, sparse), (unit(0), sparse)]:
            hits = store.search(*query, limit=20, tenant=tenant)
            assert {hit.payload["tenant"] for hit in hits} == {tenant}
            assert sorted(chunks(hits)) == [0, 1, 2, 3]
    assert store.search(unit(0), sparse, limit=20, tenant="nobody") == []
    assert store.count() == 8 and store.count(tenant=T) == 4 == store.count(tenant=OTHER)
    assert store.doc_counts(OTHER) == {"doc-a": 2, "doc-b": 1, "doc-c": 1}
    store.delete_doc("doc-a", tenant=OTHER)
    assert store.count("doc-a", tenant=T) == 2 and store.count("doc-a", tenant=OTHER) == 0
    assert store.doc_counts(T) == {"doc-a": 2, "doc-b": 1, "doc-c": 1}
    store.set_payload("doc-b", {"source": "moved.jpg", "source_name": "moved.jpg"}, tenant=OTHER)
    moved = SearchFilters(source="moved.jpg")
    assert chunks(store.search(unit(2), None, 10, moved, tenant=OTHER)) == [2]
    assert store.search(unit(2), None, 10, moved, tenant=T) == []


def test_metadata_filters_need_every_key_and_take_any_listed_value(opener):
    store = opener()
    store.upsert(
        [
            make_point(0, metadata={"dept": "finance", "year": 2019}),
            make_point(2, metadata={"dept": "hr", "year": 2020, "audited": True}),
            make_point(3, metadata={"dept": "finance", "year": 2020, "rate": 1.5, "部门": "财务"}),
            make_point(1, tenant=OTHER, metadata={"dept": "finance", "year": 2019}),
        ]
    )

    def found(metadata: dict[str, Any], tenant: str = T) -> set[int]:
        filters = SearchFilters(metadata=metadata)
        sparse = SPARSE.encode_query("invoice payment 13884707867 warehouse")
        return set(chunks(store.search(unit(0), sparse, 10, filters, tenant=tenant)))

    assert found({"dept": "finance"}) == {0, 3}
    assert found({"dept": "finance", "year": 2019}) == {0}  # every key
    assert found({"year": "2019"}) == {0}  # values compare as text
    assert found({"dept": ["hr", "legal"]}) == {2}  # a list: any of them
    assert found({"dept": ["hr", "finance"], "year": 2020}) == {2, 3}
    assert found({"audited": True}) == {2} and found({"audited": False}) == set()
    assert found({"rate": 1.5}) == {3} and found({"部门": "财务"}) == {3}
    assert found({"dept": "it"}) == set() and found({"nothing": "x"}) == set()
    assert found({"dept": "finance"}, OTHER) == {1}
    (hit,) = store.search(unit(0), None, 1, SearchFilters(metadata={"year": 2019}), tenant=T)
    assert hit.payload["metadata"] == {"dept": "finance", "year": 2019}


def test_changing_metadata_replaces_it_on_every_point_of_the_document(opener):
    """What PATCH does: the document's whole metadata (a key dropped is gone), by payload."""
    store = opener()
    store.upsert([make_point(i, metadata={"dept": "finance", "year": 2019}) for i in range(4)])
    store.set_payload("doc-a", metadata_payload({"dept": "legal"}), tenant=T)
    legal = store.search(unit(0), None, 10, SearchFilters(metadata={"dept": "legal"}), tenant=T)
    assert sorted(chunks(legal)) == [0, 1]
    assert all(hit.payload["metadata"] == {"dept": "legal"} for hit in legal)
    year = store.search(unit(0), None, 10, SearchFilters(metadata={"year": 2019}), tenant=T)
    assert sorted(chunks(year)) == [2, 3]


def test_points_from_before_tenants_are_claimed_for_a_tenant_once(opener):
    store = opener()
    store.upsert([make_point(i, tenant=None) for i in range(len(CHUNKS))])
    store.upsert([make_point(0, tenant=OTHER)])
    assert store.search(unit(0), None, 10, tenant="default") == []
    assert store.claim_untenanted("default") == 4
    hits = store.search(unit(0), None, 10, tenant="default")
    assert sorted(chunks(hits)) == [0, 1, 2, 3]
    assert store.claim_untenanted("default") == 0
    assert store.count(tenant=OTHER) == 1


def test_an_edge_shard_indexes_the_tenant_field_as_its_partition(tmp_path, monkeypatch):
    """Qdrant's multitenancy: the tenant field's keyword index is flagged `is_tenant`, on a
    new shard and on one an older scanrag made without it (added when it is opened)."""
    import scanrag.retrieval.store as store_module

    monkeypatch.setattr(store_module, "PARTITION_FIELDS", ())  # a shard from before tenants
    EdgeStore(tmp_path / "old", DIM).close()
    monkeypatch.undo()
    for path in (tmp_path / "old", tmp_path / "new"):
        store = EdgeStore(path, DIM)
        try:
            schema = store._shard.info().payload_schema
            assert schema["tenant"].params.is_tenant is True
            assert {"doc_id", "meta_terms", "pages"} <= set(schema)
        finally:
            store.close()


def test_a_server_collection_gets_the_tenant_index_flagged_is_tenant(monkeypatch):
    """No Qdrant server runs here: record what ClientStore asks of qdrant-client for a
    server collection (local mode takes the call, and ignores payload indexes)."""
    from qdrant_client import QdrantClient, models

    asked: list[tuple[str, Any]] = []
    original = QdrantClient.create_payload_index

    def recording(self, collection_name, field_name, field_schema=None, **kwargs):
        asked.append((field_name, field_schema))
        return original(self, collection_name, field_name, field_schema, **kwargs)

    monkeypatch.setattr(QdrantClient, "create_payload_index", recording)
    store = ClientStore(DIM, path=":memory:")
    try:
        assert asked == []  # local mode: no payload indexes
        store.local = False  # as it is against a server
        store._index_payload(set())  # a new collection
    finally:
        store.close()
    schemas = dict(asked)
    assert schemas["tenant"] == models.KeywordIndexParams(
        type=models.KeywordIndexType.KEYWORD, is_tenant=True
    )
    assert schemas["meta_terms"] == schemas["doc_id"] == models.PayloadSchemaType.KEYWORD
    assert schemas["pages"] == models.PayloadSchemaType.INTEGER


def test_an_existing_server_collection_is_read_once_when_opened(tmp_path, monkeypatch):
    """Its vectors, layout and payload indexes come from one `get_collection`, not one round
    trip each. No Qdrant server runs here: the URL is served by qdrant-client's local mode,
    which takes the same calls, and what ClientStore asks of it is recorded."""
    import qdrant_client
    from qdrant_client import QdrantClient

    class AtServer(QdrantClient):
        def __init__(self, url: str, **options: Any) -> None:
            super().__init__(path=str(tmp_path / "server"))

    asked: list[str] = []
    original = QdrantClient.get_collection

    def recording(self, collection_name, *args, **kwargs):
        asked.append(collection_name)
        return original(self, collection_name, *args, **kwargs)

    monkeypatch.setattr(qdrant_client, "QdrantClient", AtServer)
    monkeypatch.setattr(QdrantClient, "get_collection", recording)
    url = "http://qdrant.invalid:6333"
    store = ClientStore(DIM, url=url)
    assert not store.local and asked == []  # a new collection has nothing to read
    store.close()
    ClientStore(DIM, url=url).close()
    assert asked == ["scanrag"]
    with pytest.raises(ConfigError, match="16-dim"):  # still checked from that one answer
        ClientStore(DIM * 2, url=url)
    assert asked == ["scanrag", "scanrag"]
