"""The vector-store protocol and its two Qdrant implementations.

- `EdgeStore` (default): the Qdrant Edge engine (`qdrant-edge-py`), the real Qdrant segment /
  HNSW code running in-process under `<data dir>/qdrant`. One process at a time owns it.
- `ClientStore`: `qdrant-client` for a Qdrant server or cluster (`url=`), and for its local
  modes (`path=` or `:memory:`) in small setups.

Both store one point per chunk with a named dense vector ("dense"), a named sparse vector
("sparse", IDF applied by Qdrant) and the chunk's payload, and both fuse dense and sparse
results with reciprocal-rank fusion in one query. They pass one shared contract test suite.

Tenants share one collection, as Qdrant recommends: every point's payload names its tenant,
that field has a keyword index flagged `is_tenant` (Qdrant keeps each tenant's points
together and plans per-tenant queries on it), and every search, delete and payload update
filters on it — the store's methods take the tenant as a required argument.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field

from ..config import Settings
from ..errors import ConfigError, ScanragError, Text
from .embedding import SparseVec
from .metadata import MetadataFilter, wanted
from .results import DOC_ID, INTEGER, KEYWORD, META_TERMS, PARTITION, TENANT, indexed

SearchMode = Literal["hybrid", "dense", "sparse"]
#: How hybrid search merges its dense and sparse lists: reciprocal-rank fusion (ranks only), or
#: distribution-based score fusion (each list's scores normalised by their mean ± 3σ, then summed).
FusionMode = Literal["rrf", "dbsf"]
log = logging.getLogger(__name__)
PARTITION_FIELDS = indexed(PARTITION)
KEYWORD_FIELDS = indexed(KEYWORD)
INTEGER_FIELDS = indexed(INTEGER)
RRF_K = 60


DocId = Annotated[Text, Field(min_length=1, max_length=64)]
Label = Annotated[Text, Field(min_length=1, max_length=64)]


class SearchFilters(BaseModel):
    """Restrict a search; every field given must match."""

    doc_id: DocId | Annotated[list[DocId], Field(min_length=1, max_length=1000)] | None = Field(
        None, description="One document id or several (an empty list would match nothing)."
    )
    source: Annotated[Text, Field(min_length=1, max_length=4096)] | None = Field(
        None, description="A file's path as ingested, or its file name."
    )
    page: int | None = Field(None, ge=1, description="One page number.")
    page_from: int | None = Field(None, ge=1, description="First page of a range.")
    page_to: int | None = Field(None, ge=1, description="Last page of a range.")
    label: Label | Annotated[list[Label], Field(min_length=1, max_length=20)] | None = Field(
        None, description="Region label(s), e.g. table."
    )
    metadata: MetadataFilter | None = Field(
        None,
        description='Document metadata, e.g. {"dept": "finance", "year": 2019}: every key must '
        "match; a list of values means any of them. Values compare as text (2019 = \"2019\").",
    )


@dataclass
class StorePoint:
    id: str  # a UUID string, derived from the chunk id
    dense: np.ndarray
    sparse: SparseVec
    payload: dict[str, Any]


@dataclass
class StoreHit:
    id: str
    score: float
    payload: dict[str, Any]


class StoreError(ScanragError):
    """The vector store cannot be opened or used."""

    http_status = 503


class Store(Protocol):
    def upsert(self, points: list[StorePoint]) -> None:
        """Write points; all of them become visible together."""

    def delete_doc(self, doc_id: str, *, tenant: str) -> None: ...

    def set_payload(self, doc_id: str, values: dict[str, Any], *, tenant: str) -> None:
        """Merge `values` into the payload of every point of a document (top-level keys:
        a given key's value is replaced whole)."""

    def search(
        self,
        dense: np.ndarray | None,
        sparse: SparseVec | None,
        limit: int,
        filters: SearchFilters | None = None,
        *,
        tenant: str,
        fusion: FusionMode = "rrf",
    ) -> list[StoreHit]:
        """Dense, sparse, or both fused (RRF unless `fusion` says otherwise) when both are given;
        among the tenant's points only."""

    def count(self, doc_id: str | None = None, *, tenant: str | None = None) -> int:
        """Points of a document, of a tenant, or all (None: any)."""

    def doc_counts(self, tenant: str | None = None) -> dict[str, int]:
        """Points per document id (of one tenant, or of all)."""

    def claim_untenanted(self, tenant: str) -> int:
        """Give points written before tenants existed (no tenant field) to `tenant`; how many."""

    def optimize(self) -> None:
        """Build the HNSW index where the engine does not do it by itself."""

    def close(self) -> None: ...


def _as_tuple(value: str | list[str]) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True)
class Match:
    """The payload field holds one of `values` (a list field: one of its items does)."""

    key: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Between:
    """An integer payload field (one of its items) within [low, high]; None: unbounded."""

    key: str
    low: int | None
    high: int | None


@dataclass(frozen=True)
class Either:
    """At least one of the matches holds."""

    matches: tuple[Match, ...]


@dataclass(frozen=True)
class Missing:
    """The payload has no such field (or it is empty)."""

    key: str


Condition = Match | Between | Either | Missing


def conditions(
    tenant: str | None, filters: SearchFilters | None = None, doc_id: str | None = None
) -> list[Condition]:
    """What points must match, in payload field names: a tenant's points (None: any tenant's),
    the filters of a search, or one document's points (to delete, count or rename them). Each
    store translates these."""
    out: list[Condition] = []
    if tenant is not None:
        out.append(Match(TENANT, (tenant,)))
    if doc_id is not None:
        out.append(Match(DOC_ID, (doc_id,)))
    if filters is None:
        return out
    if filters.doc_id:
        out.append(Match(DOC_ID, _as_tuple(filters.doc_id)))
    if filters.label:
        out.append(Match("labels", _as_tuple(filters.label)))
    low, high = _page_range(filters)
    if low is not None or high is not None:
        out.append(Between("pages", low, high))
    if filters.source:  # a path as ingested, or a file name
        named = (filters.source,)
        out.append(Either((Match("source", named), Match("source_name", named))))
    for choices in wanted(filters.metadata or {}):  # each key: one of its terms
        out.append(Match(META_TERMS, choices))
    return out


# --- Qdrant Edge ------------------------------------------------------------------------


class EdgeStore:
    """The embedded Qdrant engine in a directory; its write-ahead log makes every returned
    `update` survive a crash."""

    def __init__(self, path: Path, dimension: int) -> None:
        import qdrant_edge as qe

        self._qe = qe
        self._lock = threading.Lock()
        config = qe.EdgeConfig(
            vectors={"dense": qe.EdgeVectorParams(size=dimension, distance=qe.Distance.Cosine)},
            sparse_vectors={"sparse": qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
        )
        self._shard: Any = None
        try:
            if (path / "edge_config.json").exists():
                self._shard = qe.EdgeShard.load(str(path), config)
            else:
                path.mkdir(parents=True, exist_ok=True)
                self._shard = qe.EdgeShard.create(str(path), config)
            self._index_payload()
        except Exception as exc:
            if self._shard is not None:  # else its directory lock lives on with the error
                with contextlib.suppress(Exception):  # the open's error is the one to report
                    self._shard.close()
            message = str(exc)
            if "WouldBlock" in message:
                raise StoreError(
                    f"the index at {path} is open in another scanrag process (a running "
                    "`scanrag serve`?); stop it, or send the work to its HTTP API"
                ) from exc
            if "incompatible" in message:
                raise ConfigError(
                    f"the index at {path} was built with another embedding size; use a new "
                    f"--data-dir or delete {path} to rebuild it ({message})"
                ) from exc
            raise StoreError(f"cannot open the index at {path}: {message}") from exc

    def _index_payload(self) -> None:
        """The payload indexes the fields need; a shard made by an older scanrag gets the
        ones it lacks (the tenant partition, metadata terms) when it is opened."""
        qe = self._qe
        wanted = {
            **{name: qe.KeywordIndexParams(is_tenant=True) for name in PARTITION_FIELDS},
            **{name: qe.PayloadSchemaType.Keyword for name in KEYWORD_FIELDS},
            **{name: qe.PayloadSchemaType.Integer for name in INTEGER_FIELDS},
        }
        with self._lock:
            present = set(self._shard.info().payload_schema)
        for name, schema in wanted.items():
            if name not in present:
                self._update(qe.UpdateOperation.create_field_index(name, schema))

    def _update(self, operation: Any) -> None:
        with self._lock:
            self._shard.update(operation)

    def _condition(self, condition: Condition) -> Any:
        qe = self._qe
        if isinstance(condition, Missing):
            return qe.IsEmptyCondition(condition.key)
        if isinstance(condition, Either):
            return qe.Filter(should=[self._condition(match) for match in condition.matches])
        if isinstance(condition, Between):
            between = qe.RangeFloat(gte=condition.low, lte=condition.high)
            return qe.FieldCondition(condition.key, range=between)
        values = condition.values
        match = qe.MatchValue(values[0]) if len(values) == 1 else qe.MatchAny(list(values))
        return qe.FieldCondition(condition.key, match=match)

    def _filter(self, matching: list[Condition]) -> Any:
        must = [self._condition(condition) for condition in matching]
        return self._qe.Filter(must=must) if must else None

    def upsert(self, points: list[StorePoint]) -> None:
        qe = self._qe
        batch = [
            qe.Point(
                point.id,
                {
                    "dense": point.dense,
                    "sparse": qe.SparseVector(point.sparse.indices, point.sparse.values),
                },
                point.payload,
            )
            for point in points
        ]
        if batch:
            self._update(qe.UpdateOperation.upsert_points(batch))

    def delete_doc(self, doc_id: str, *, tenant: str) -> None:
        matching = self._filter(conditions(tenant, doc_id=doc_id))
        self._update(self._qe.UpdateOperation.delete_points_by_filter(matching))

    def set_payload(self, doc_id: str, values: dict[str, Any], *, tenant: str) -> None:
        matching = self._filter(conditions(tenant, doc_id=doc_id))
        self._update(self._qe.UpdateOperation.set_payload_by_filter(matching, values))

    def claim_untenanted(self, tenant: str) -> int:
        matching = self._filter([Missing(TENANT)])
        with self._lock:
            found = self._shard.count(self._qe.CountRequest(filter=matching))
        if found:
            self._update(self._qe.UpdateOperation.set_payload_by_filter(matching, {TENANT: tenant}))
        return found

    def search(
        self,
        dense: np.ndarray | None,
        sparse: SparseVec | None,
        limit: int,
        filters: SearchFilters | None = None,
        *,
        tenant: str,
        fusion: FusionMode = "rrf",
    ) -> list[StoreHit]:
        qe = self._qe
        _check_fusion(fusion)
        queries = []
        if dense is not None:
            queries.append(qe.Query.Nearest(dense, using="dense"))
        if sparse is not None and sparse.indices:
            queries.append(
                qe.Query.Nearest(qe.SparseVector(sparse.indices, sparse.values), using="sparse")
            )
        if not queries:
            return []
        flt = self._filter(conditions(tenant, filters))
        if len(queries) == 1:
            request = qe.QueryRequest(limit=limit, query=queries[0], filter=flt, with_payload=True)
        else:
            depth = max(50, limit * 5)
            request = qe.QueryRequest(
                limit=limit,
                prefetches=[qe.Prefetch(limit=depth, query=query) for query in queries],
                query=qe.Fusion.Rrf(k=RRF_K) if fusion == "rrf" else qe.Fusion.Dbsf(),
                filter=flt,
                with_payload=True,
            )
        with self._lock:
            hits = self._shard.query(request)
        return [StoreHit(str(hit.id), float(hit.score), hit.payload) for hit in hits]

    def count(self, doc_id: str | None = None, *, tenant: str | None = None) -> int:
        matching = self._filter(conditions(tenant, doc_id=doc_id))
        with self._lock:
            return self._shard.count(self._qe.CountRequest(filter=matching))

    def doc_counts(self, tenant: str | None = None) -> dict[str, int]:
        request = self._qe.FacetRequest(
            DOC_ID, limit=1_000_000, exact=True, filter=self._filter(conditions(tenant))
        )
        with self._lock:
            hits = self._shard.facet(request)
        # The engine's facet keeps a value whose points were all deleted, with count 0.
        return {str(hit.value): int(hit.count) for hit in hits if hit.count}

    def optimize(self) -> None:
        with self._lock:
            self._shard.optimize()

    def close(self) -> None:
        with self._lock:
            self._shard.close()


def _check_fusion(fusion: str) -> None:
    if fusion not in ("rrf", "dbsf"):
        raise ValueError(f"unknown fusion {fusion!r}; use 'rrf' or 'dbsf'")


def _page_range(filters: SearchFilters) -> tuple[int | None, int | None]:
    if filters.page is not None:
        return filters.page, filters.page
    return filters.page_from, filters.page_to


# --- qdrant-client ----------------------------------------------------------------------


class ClientStore:
    """A collection on a Qdrant server or cluster, or qdrant-client's local mode.

    On a cluster, a new collection gets `shards`, `replicas` and `write_consistency`
    (replicas that must acknowledge a write); `write_ordering` (weak, medium, strong) is sent
    with every write. Left at None, the server's defaults apply.
    """

    def __init__(
        self,
        dimension: int,
        url: str | None = None,
        api_key: str | None = None,
        path: str | None = None,
        collection: str = "scanrag",
        shards: int | None = None,
        replicas: int | None = None,
        write_consistency: int | None = None,
        write_ordering: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        from qdrant_client import QdrantClient, models

        self._m = models
        self.collection = collection
        self.local = not url
        self._writes: dict[str, Any] = {"wait": True}
        if write_ordering:
            self._writes["ordering"] = models.WriteOrdering(write_ordering)
        where = url or path or ":memory:"
        self._client: Any = None
        try:
            if url:
                self._client = QdrantClient(url=url, api_key=api_key, timeout=int(timeout))
            elif path and path != ":memory:":
                self._client = QdrantClient(path=path)
            else:
                self._client = QdrantClient(":memory:")
            if not self._client.collection_exists(collection):
                self._create(dimension, shards, replicas, write_consistency)
                self._index_payload(set())
            else:  # one round trip for the collection's vectors, layout and payload indexes
                info = self._client.get_collection(collection)
                self._check_dimension(info, dimension)
                self._check_layout(info, shards, replicas, write_consistency)
                self._index_payload(set(info.payload_schema or {}))
        except Exception as exc:
            if self._client is not None:  # local mode locks its folder until closed
                with contextlib.suppress(Exception):  # the open's error is the one to report
                    self._client.close()
            if isinstance(exc, ScanragError):
                raise
            raise StoreError(
                f"cannot reach Qdrant at {where}: {exc}; check SCANRAG_QDRANT_URL"
            ) from exc

    def _create(
        self, dimension: int, shards: int | None, replicas: int | None, consistency: int | None
    ) -> None:
        m = self._m
        self._client.create_collection(
            self.collection,
            vectors_config={"dense": m.VectorParams(size=dimension, distance=m.Distance.COSINE)},
            sparse_vectors_config={"sparse": m.SparseVectorParams(modifier=m.Modifier.IDF)},
            shard_number=shards,
            replication_factor=replicas,
            write_consistency_factor=consistency,
        )

    def _index_payload(self, present: set[str]) -> None:
        """The payload indexes the fields need — the tenant field as Qdrant's tenant partition
        (`is_tenant`) — that are not `present`: all on a new collection, those missing from one
        an older scanrag made. Local mode has no payload indexes (it warns), so it is asked for
        none."""
        if self.local:
            return
        m = self._m
        wanted = {
            **{name: m.KeywordIndexParams(type=m.KeywordIndexType.KEYWORD, is_tenant=True)
               for name in PARTITION_FIELDS},
            **{name: m.PayloadSchemaType.KEYWORD for name in KEYWORD_FIELDS},
            **{name: m.PayloadSchemaType.INTEGER for name in INTEGER_FIELDS},
        }  # fmt: skip
        for name, schema in wanted.items():
            if name not in present:
                self._client.create_payload_index(self.collection, name, schema)

    def _check_dimension(self, info: Any, dimension: int) -> None:
        vectors = info.config.params.vectors
        size = vectors["dense"].size if isinstance(vectors, dict) else None
        if size is not None and size != dimension:
            raise ConfigError(
                f"Qdrant collection {self.collection!r} holds {size}-dim vectors but the embedding "
                f"model makes {dimension}; use another SCANRAG_QDRANT_COLLECTION"
            )

    def _check_layout(
        self, info: Any, shards: int | None, replicas: int | None, consistency: int | None
    ) -> None:
        """An existing collection keeps its shards; say so when the settings ask otherwise."""
        params = info.config.params
        wanted = {
            "shard_number": shards,
            "replication_factor": replicas,
            "write_consistency_factor": consistency,
        }
        for name, value in wanted.items():
            actual = getattr(params, name, None)
            if value is not None and actual is not None and actual != value:
                log.warning(
                    "Qdrant collection %r has %s=%s, not %s as configured; settings apply to "
                    "new collections (change replication with Qdrant's update_collection)",
                    self.collection,
                    name,
                    actual,
                    value,
                )

    def _condition(self, condition: Condition) -> Any:
        m = self._m
        if isinstance(condition, Missing):
            return m.IsEmptyCondition(is_empty=m.PayloadField(key=condition.key))
        if isinstance(condition, Either):
            return m.Filter(should=[self._condition(match) for match in condition.matches])
        if isinstance(condition, Between):
            return m.FieldCondition(
                key=condition.key, range=m.Range(gte=condition.low, lte=condition.high)
            )
        values = condition.values
        match = m.MatchValue(value=values[0]) if len(values) == 1 else m.MatchAny(any=list(values))
        return m.FieldCondition(key=condition.key, match=match)

    def _filter(self, matching: list[Condition]) -> Any:
        must = [self._condition(condition) for condition in matching]
        return self._m.Filter(must=must) if must else None

    def upsert(self, points: list[StorePoint]) -> None:
        m = self._m
        if not points:
            return
        self._client.upsert(
            self.collection,
            [
                m.PointStruct(
                    id=point.id,
                    vector={
                        "dense": point.dense.tolist(),
                        "sparse": m.SparseVector(
                            indices=point.sparse.indices, values=point.sparse.values
                        ),
                    },
                    payload=point.payload,
                )
                for point in points
            ],
            **self._writes,
        )

    def delete_doc(self, doc_id: str, *, tenant: str) -> None:
        matching = self._filter(conditions(tenant, doc_id=doc_id))
        self._client.delete(
            self.collection, points_selector=self._m.FilterSelector(filter=matching), **self._writes
        )

    def set_payload(self, doc_id: str, values: dict[str, Any], *, tenant: str) -> None:
        self._set_payload(self._filter(conditions(tenant, doc_id=doc_id)), values)

    def _set_payload(self, matching: Any, values: dict[str, Any]) -> None:
        self._client.set_payload(
            self.collection,
            payload=values,
            points=self._m.FilterSelector(filter=matching),
            **self._writes,
        )

    def claim_untenanted(self, tenant: str) -> int:
        matching = self._filter([Missing(TENANT)])
        found = self._client.count(self.collection, count_filter=matching, exact=True).count
        if found:
            self._set_payload(matching, {TENANT: tenant})
        return found

    def search(
        self,
        dense: np.ndarray | None,
        sparse: SparseVec | None,
        limit: int,
        filters: SearchFilters | None = None,
        *,
        tenant: str,
        fusion: FusionMode = "rrf",
    ) -> list[StoreHit]:
        m = self._m
        _check_fusion(fusion)
        queries: list[tuple[Any, str]] = []
        if dense is not None:
            queries.append((dense.tolist(), "dense"))
        if sparse is not None and sparse.indices:
            queries.append((m.SparseVector(indices=sparse.indices, values=sparse.values), "sparse"))
        if not queries:
            return []
        flt = self._filter(conditions(tenant, filters))
        if len(queries) == 1:
            query, using = queries[0]
            result = self._client.query_points(
                self.collection,
                query=query,
                using=using,
                query_filter=flt,
                limit=limit,
                with_payload=True,
            )
        else:
            depth = max(50, limit * 5)
            result = self._client.query_points(
                self.collection,
                prefetch=[
                    m.Prefetch(query=query, using=using, limit=depth, filter=flt)
                    for query, using in queries
                ],
                query=(
                    m.RrfQuery(rrf=m.Rrf(k=RRF_K))
                    if fusion == "rrf"
                    else m.FusionQuery(fusion=m.Fusion.DBSF)
                ),
                query_filter=flt,
                limit=limit,
                with_payload=True,
            )
        return [
            StoreHit(str(point.id), float(point.score), point.payload or {})
            for point in result.points
        ]

    def count(self, doc_id: str | None = None, *, tenant: str | None = None) -> int:
        matching = self._filter(conditions(tenant, doc_id=doc_id))
        return self._client.count(self.collection, count_filter=matching, exact=True).count

    def doc_counts(self, tenant: str | None = None) -> dict[str, int]:
        result = self._client.facet(
            self.collection,
            key=DOC_ID,
            facet_filter=self._filter(conditions(tenant)),
            exact=True,
            limit=1_000_000,
        )
        return {str(hit.value): int(hit.count) for hit in result.hits}

    def optimize(self) -> None:
        """Qdrant servers index in the background; local mode has no index to build."""

    def close(self) -> None:
        self._client.close()


def open_store(settings: Settings, edge_path: Path, dimension: int) -> Store:
    """A Qdrant server, cluster or local mode when the settings name one (`qdrant_url`,
    `qdrant_path`), else the embedded Qdrant Edge engine at `edge_path`."""
    s = settings
    if s.qdrant_url or s.qdrant_path:
        return ClientStore(
            dimension,
            url=s.qdrant_url,
            api_key=s.qdrant_api_key,
            path=s.qdrant_path,
            collection=s.qdrant_collection,
            shards=s.qdrant_shards,
            replicas=s.qdrant_replicas,
            write_consistency=s.qdrant_write_consistency,
            write_ordering=s.qdrant_write_ordering,
        )
    return EdgeStore(edge_path, dimension)
