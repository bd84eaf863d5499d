"""Tenants and metadata in the index: each tenant's documents, parses and points are its own
(the same file indexed by two tenants is two documents), metadata rides on every chunk and is
filtered on and changed without parsing, limits hold per tenant, and a data dir written
before tenants existed stays searchable as the default tenant's without parsing again."""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest
import seams

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_index import watched_runner, write_pdf

from scanrag.config import Settings
from scanrag.retrieval.index import Index
from scanrag.retrieval.store import EdgeStore

BEFORE_TENANTS = """
CREATE TABLE files (
    path BLOB PRIMARY KEY,
    sha256 TEXT,
    size INTEGER,
    mtime_ns INTEGER,
    doc_id TEXT,
    status TEXT NOT NULL,
    parser_fp TEXT,
    index_fp TEXT,
    pages INTEGER,
    error TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX files_doc_id ON files (doc_id);
"""
OLD_COLUMNS = (
    "path, sha256, size, mtime_ns, doc_id, status, parser_fp, index_fp, pages, error, updated_at"
)


def open_index(data_dir: Path, **options) -> Index:
    return seams.open_index(data_dir=data_dir, parser="pdf-text", **options)


@pytest.fixture
def docs(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    write_pdf(folder / "ledger.pdf", "quillfeather")
    write_pdf(folder / "roster.pdf", "marrowgate")
    return folder


def names(index: Index, query: str, **filters) -> list[str]:
    return [Path(hit.source).name for hit in index.search(query, top_k=5, filters=filters or None)]


def test_two_tenants_indexing_the_same_files_hold_two_separate_sets(tmp_path, docs):
    with open_index(tmp_path / "data") as index:
        acme, globex = index.as_tenant("acme"), index.as_tenant("globex")
        assert acme.ingest([docs]).added == 2
        assert names(index, "quillfeather") == []  # the default tenant has nothing
        assert globex.documents() == [] and names(globex, "quillfeather") == []
        assert globex.ingest([docs / "ledger.pdf"]).added == 1  # not "unchanged": not its own
        (ledger,) = globex.documents()
        acme_ids = {info.doc_id for info in acme.documents()}
        assert ledger.doc_id not in acme_ids  # ids never meet
        assert acme.document(ledger.doc_id) is None and acme.document_info(ledger.doc_id) is None
        assert globex.page_image(globex.document(ledger.doc_id), 1).is_relative_to(
            tmp_path / "data" / "tenants" / "globex"
        )
        # a delete by one tenant leaves the other's copy, parse and points alone
        acme_ledger = next(i.doc_id for i in acme.documents() if i.source.endswith("ledger.pdf"))
        assert globex.delete(acme_ledger) is False
        assert acme.delete(acme_ledger) is True
        assert "ledger.pdf" not in names(acme, "quillfeather")
        assert names(globex, "quillfeather") == ["ledger.pdf"]
        assert globex.document(ledger.doc_id) is not None
        assert globex.region_image(f"{ledger.doc_id}:p1:r0") is not None
        assert acme.region_image(f"{ledger.doc_id}:p1:r0") is None


def test_metadata_goes_on_every_chunk_is_filtered_on_and_changes_without_parsing(tmp_path, docs):
    runner, parsed = watched_runner()
    with open_index(tmp_path / "data", runner=runner) as index:
        index.ingest([docs / "ledger.pdf"], metadata={"dept": "finance", "year": 2019})
        index.ingest([docs / "roster.pdf"], metadata={"dept": "hr", "year": 2020})
        assert len(parsed) == 2
        ledger = next(i for i in index.documents() if i.source.endswith("ledger.pdf"))
        assert ledger.metadata == {"dept": "finance", "year": 2019}
        hits = index.search("committee supplier contracts", top_k=10)
        assert {Path(h.source).name: h.metadata["dept"] for h in hits} == {
            "ledger.pdf": "finance",
            "roster.pdf": "hr",
        }
        query = "committee supplier contracts"
        assert set(names(index, query, metadata={"dept": "finance"})) == {"ledger.pdf"}
        assert set(names(index, query, metadata={"year": "2020"})) == {"roster.pdf"}
        assert set(names(index, query, metadata={"dept": ["hr", "legal"]})) == {"roster.pdf"}
        assert names(index, query, metadata={"dept": "finance", "year": 2020}) == []

        info = index.update_metadata(ledger.doc_id, {"dept": "legal", "year": None, "q": 3})
        assert info is not None and info.metadata == {"dept": "legal", "q": 3}
        assert set(names(index, query, metadata={"dept": "legal", "q": 3})) == {"ledger.pdf"}
        assert names(index, query, metadata={"dept": "finance"}) == []
        assert index.update_metadata("0" * 16, {"x": 1}) is None
        with pytest.raises(ValueError, match="metadata"):
            index.update_metadata(ledger.doc_id, {"bad key!": 1})
        assert index.as_tenant("acme").update_metadata(ledger.doc_id, {"x": 1}) is None

        # an ingest without metadata keeps what documents have; with it, an unchanged file
        # gets the new metadata by a payload update
        assert index.ingest([docs]).unchanged == 2
        assert set(names(index, query, metadata={"dept": "legal"})) == {"ledger.pdf"}
        report = index.ingest([docs], metadata={"dept": "ops"})
        assert (report.updated, report.added) == (2, 0)
        assert set(names(index, query, metadata={"dept": "ops"})) == {"ledger.pdf", "roster.pdf"}
        assert len(parsed) == 2  # never parsed again


def test_two_patches_at_once_both_hold(tmp_path, docs, monkeypatch):
    """Each PATCH reads, merges and writes; the store write is slowed so that, unlocked, the
    second would read before the first wrote and drop its key."""
    with open_index(tmp_path / "data") as index:
        index.ingest([docs / "ledger.pdf"])
        (ledger,) = index.documents()
        set_payload = index.store.set_payload

        def slow_set_payload(*args, **kwargs):
            time.sleep(0.3)
            return set_payload(*args, **kwargs)

        monkeypatch.setattr(index.store, "set_payload", slow_set_payload)
        patches = [{"a": 1}, {"b": 2}]
        threads = [
            threading.Thread(target=index.update_metadata, args=(ledger.doc_id, patch))
            for patch in patches
        ]
        for thread in threads:
            thread.start()
            time.sleep(0.05)
        for thread in threads:
            thread.join()
        assert index.document_info(ledger.doc_id).metadata == {"a": 1, "b": 2}
        assert names(index, "quillfeather", metadata={"a": 1, "b": 2}) == ["ledger.pdf"]


def test_a_tenant_over_its_documents_or_pages_limit_gets_a_failure_naming_it(tmp_path, docs):
    settings = Settings(data_dir=tmp_path / "data", parser="pdf-text", tenant_max_documents=1)
    with Index(settings, encoder=seams.ENCODER) as index:
        report = index.as_tenant("acme").ingest([docs])
        assert (report.added, report.failed) == (1, 1)
        assert "limit of 1" in report.errors[0].error and "acme" in report.errors[0].error
        assert index.as_tenant("globex").ingest([docs / "ledger.pdf"]).added == 1  # its own count
        assert index.as_tenant("acme").ingest([docs]).failed == 1  # the held one is no problem
        # an upload over the limit is not kept: nothing could index it or delete it
        acme = index.as_tenant("acme")
        other = docs / Path(report.errors[0].path).name  # the file over the limit
        upload = acme.files.upload("f" * 64, other.name)
        upload.parent.mkdir(parents=True)
        upload.write_bytes(other.read_bytes())
        listed = len(acme.documents())
        report = acme.ingest([upload])
        assert report.failed == 1 and "limit of 1" in report.errors[0].error
        assert not upload.exists() and len(acme.documents()) == listed
    limited = Settings(
        data_dir=tmp_path / "data2",
        parser="pdf-text",
        tenant_limits={"acme": {"pages": 1}},
    )
    assert limited.limits_for("acme").pages == 1 and limited.limits_for("globex").pages is None
    with Index(limited, encoder=seams.ENCODER) as index:
        report = index.as_tenant("acme").ingest([docs])
        assert (report.added, report.failed) == (1, 1) and "pages" in report.errors[0].error


def make_pre_tenant(data_dir: Path) -> None:
    """Turn a data dir the default tenant wrote into what scanrag wrote before tenants: the
    manifest's old table, points without tenant or metadata fields, no tenant index."""
    db = sqlite3.connect(data_dir / "manifest.sqlite")
    with db:
        db.execute("ALTER TABLE files RENAME TO files_new")
        db.execute("DROP INDEX IF EXISTS files_doc")
        db.executescript(BEFORE_TENANTS)
        db.execute(f"INSERT INTO files SELECT {OLD_COLUMNS} FROM files_new")
        db.execute("DROP TABLE files_new")
        db.execute("DELETE FROM meta WHERE key = 'untenanted_points_claimed'")
    db.close()
    store = EdgeStore(data_dir / "qdrant", 384)
    try:
        qe = store._qe
        store._update(
            qe.UpdateOperation.delete_payload_by_filter(
                qe.Filter(must=[]), ["tenant", "metadata", "meta_terms"]
            )
        )
        store._update(qe.UpdateOperation.delete_field_index("tenant"))
        assert "tenant" not in store._shard.info().payload_schema
        assert store.search(store_dense(store), None, 5, tenant="default") == []
    finally:
        store.close()


def store_dense(store: EdgeStore):
    import numpy as np

    vector = np.ones(384, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_a_data_dir_from_before_tenants_stays_searchable_as_the_default_tenants(tmp_path, docs):
    data = tmp_path / "data"
    with open_index(data) as index:
        assert index.ingest([docs]).added == 2
    make_pre_tenant(data)
    cached = {path: path.stat().st_mtime_ns for path in (data / "cache").iterdir()}
    runner, parsed = watched_runner()
    with open_index(data, runner=runner) as index:
        assert names(index, "quillfeather")[0] == "ledger.pdf"  # before any ingest
        assert {Path(i.source).name for i in index.documents()} == {"ledger.pdf", "roster.pdf"}
        assert all(info.metadata == {} and info.status == "done" for info in index.documents())
        assert names(index.as_tenant("acme"), "quillfeather") == []
        report = index.ingest([docs])
        assert (report.unchanged, report.added, report.updated) == (2, 0, 0)
        ledger = next(i for i in index.documents() if i.source.endswith("ledger.pdf"))
        assert index.page_image(index.document(ledger.doc_id), 1).exists()
        assert index.update_metadata(ledger.doc_id, {"dept": "finance"}) is not None
        assert names(index, "quillfeather", metadata={"dept": "finance"}) == ["ledger.pdf"]
        schema = index.store._shard.info().payload_schema  # type: ignore[attr-defined]
        assert schema["tenant"].params.is_tenant is True
    assert parsed == []  # nothing parsed again
    assert {path: path.stat().st_mtime_ns for path in (data / "cache").iterdir()} == cached
    rows = sqlite3.connect(data / "manifest.sqlite").execute("SELECT tenant FROM files").fetchall()
    assert rows == [("default",), ("default",)]


def test_an_old_jobs_table_gains_the_tenant_column(tmp_path):
    """A jobs.sqlite from before tenants: its jobs are the default tenant's."""
    from scanrag.api.jobs import JobStore

    path = tmp_path / "jobs.sqlite"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, "
        "paths TEXT NOT NULL, within TEXT, finished INTEGER NOT NULL, status TEXT NOT NULL);"
    )
    status = (
        '{"id": "j1", "status": "done", "files_total": 0, "files_done": 0, "pages_done": 0,'
        ' "errors": [], "created_at": "2026-01-01T00:00:00+00:00"}'
    )
    db.execute(
        "INSERT INTO jobs (id, paths, within, finished, status) VALUES (?, '[]', NULL, 1, ?)",
        ("j1", status),
    )
    db.commit()
    db.close()
    store = JobStore(path)
    assert store.get("j1", "default") is not None
    assert store.get("j1", "acme") is None
    assert os.path.exists(path)


def test_finished_jobs_are_forgotten_per_tenant(tmp_path):
    """One tenant's many jobs never push another tenant's job records out."""
    from scanrag.api.jobs import JobStore, Work
    from scanrag.api.schemas import JobStatus

    store = JobStore(tmp_path / "jobs.sqlite")
    for number, tenant in enumerate(["globex", *["acme"] * 5]):
        job = JobStatus(
            id=f"job{number}",
            status="done",
            files_total=0,
            created_at="2026-01-01T00:00:00+00:00",
            finished_at="2026-01-01T00:00:01+00:00",
        )
        store.add(job, Work(job.id, [], None, tenant))
    store.prune(2)
    assert store.get("job0", "globex") is not None
    kept = [f"job{n}" for n in range(1, 6) if store.get(f"job{n}", "acme") is not None]
    assert kept == ["job4", "job5"]
    store.close()


def test_waiting_jobs_are_taken_in_turn_by_tenant():
    """acme's three jobs queued before globex's one do not make globex wait for all three."""
    from scanrag.api.jobs import TenantQueue, Work

    waiting = TenantQueue()
    for job_id, tenant in [("a1", "acme"), ("a2", "acme"), ("g1", "globex"), ("a3", "acme")]:
        waiting.put(Work(job_id, [], None, tenant))
    taken = [waiting.get() for _ in range(4)]
    assert [work.job_id for work in taken if work] == ["a1", "g1", "a2", "a3"]
    closer = threading.Timer(0.1, waiting.close)
    closer.start()
    assert waiting.get() is None  # a worker waiting on an empty queue wakes when it closes
    closer.join()


def test_the_langchain_and_llama_index_retrievers_search_one_tenant_with_metadata_filters(
    tmp_path, docs
):
    pytest.importorskip("langchain_core")
    pytest.importorskip("llama_index.core")
    from scanrag.connectors.langchain import ScanRAGRetriever as LangChainRetriever
    from scanrag.connectors.llama_index import ScanRAGRetriever as LlamaRetriever

    with open_index(tmp_path / "data") as index:
        acme, globex = index.as_tenant("acme"), index.as_tenant("globex")
        acme.ingest([docs / "ledger.pdf"], metadata={"dept": "finance"})
        acme.ingest([docs / "roster.pdf"], metadata={"dept": "hr"})
        globex.ingest([docs / "ledger.pdf"], metadata={"dept": "finance"})
        acme_ids = {info.doc_id for info in acme.documents()}
        (globex_id,) = [info.doc_id for info in globex.documents()]
        query = "committee supplier contracts"
        finance = {"metadata": {"dept": "finance"}}

        chain = LangChainRetriever(index=index, tenant="acme", top_k=10, filters=finance)
        found = chain.invoke(query)
        assert found and {Path(d.metadata["source"]).name for d in found} == {"ledger.pdf"}
        assert {d.metadata["doc_id"] for d in found} <= acme_ids
        assert all(d.metadata["metadata"] == {"dept": "finance"} for d in found)
        everything = LangChainRetriever(index=index, tenant="globex", top_k=10).invoke(query)
        assert {d.metadata["doc_id"] for d in everything} == {globex_id}

        llama = LlamaRetriever(index=index, tenant="acme", top_k=10, filters=finance)
        nodes = llama.retrieve(query)
        assert nodes and {n.node.metadata["doc_id"] for n in nodes} <= acme_ids
        assert {Path(n.node.metadata["source"]).name for n in nodes} == {"ledger.pdf"}
        other = LlamaRetriever(index=index, tenant="globex", top_k=10).retrieve(query)
        assert {n.node.metadata["doc_id"] for n in other} == {globex_id}
        assert LlamaRetriever(index=index, top_k=10).retrieve(query) == []  # default: none


def test_the_stdio_mcp_server_acts_for_its_tenant(tmp_path, docs):
    """`scanrag mcp --tenant acme`: the tools see acme's documents, and without it the
    default tenant's (none here)."""
    pytest.importorskip("mcp.server.mcpserver")
    import asyncio

    from doors import console_script
    from mcp import Client, StdioServerParameters

    with open_index(tmp_path / "data") as index:
        index.as_tenant("acme").ingest([docs / "ledger.pdf"], metadata={"dept": "finance"})
        (acme_doc,) = index.as_tenant("acme").documents()

    def listed(*extra: str) -> list[dict]:
        params = StdioServerParameters(
            command=console_script(),
            args=["mcp", "--data-dir", str(tmp_path / "data"), *extra],
            env=dict(os.environ),
        )

        async def run() -> list[dict]:
            async with Client(params) as mcp:
                result = await mcp.call_tool("list_documents", {})
            return result.structured_content["documents"]

        return asyncio.run(run())

    (document,) = listed("--tenant", "acme")
    assert document["doc_id"] == acme_doc.doc_id and document["metadata"] == {"dept": "finance"}
    assert listed() == []
