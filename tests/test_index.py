"""The index keeps a folder and its vectors in step: a second ingest reads nothing but stats, a
changed file is re-indexed alone, a deleted one leaves the store, re-chunking reuses the parse
cache, and the CLI prints one JSON document per command."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import seams

from scanrag.errors import ConfigError
from scanrag.ingest.model import BBox, doc_id_for
from scanrag.ingest.parallel import InlineRunner
from scanrag.ingest.parsers import Block
from scanrag.ingest.pipeline import parse_file
from scanrag.retrieval.chunking import chunk_document
from scanrag.retrieval.index import Index
from scanrag.retrieval.reports import IngestReport
from scanrag.retrieval.store import EdgeStore
from scanrag.testing import pdf_paragraph, text_pdf

#: One unique code word per file, so a search can tell the files apart.
CODES = {"alpha": "amberline", "bravo": "birchwood", "charlie": "cobaltine", "delta": "dunewater"}


def write_pdf(path: Path, code: str, paragraphs: int = 1, extra: str = "") -> Path:
    """A born-digital one-page memo (the pdf-text parser reads it without OCR)."""
    items = [(72, 80, f"Memo about project {code}", 16)]
    y = 120
    for i in range(paragraphs):
        text = (
            f"Section {i + 1}. The {code} committee reviewed supplier contracts, warehouse "
            f"inventory and the audit deadline for period {i + 7}. {extra} Figures were agreed "
            "after the quarterly budget review and the terms were renewed for two years."
        )
        lines = pdf_paragraph(72, y, text, width=450)
        items += lines
        y = lines[-1][1] + 24
    return text_pdf([items], path)


def make_folder(docs: Path) -> Path:
    docs.mkdir(parents=True)
    for name, code in CODES.items():
        write_pdf(docs / f"{name}.pdf", code, paragraphs=6 if name == "alpha" else 1)
    return docs


@pytest.fixture
def folder(tmp_path) -> Path:
    return make_folder(tmp_path / "docs")


@pytest.fixture
def data_dir(tmp_path) -> Path:
    return tmp_path / "data"


def open_index(data_dir: Path, **options) -> Index:
    return seams.open_index(data_dir=data_dir, parser="pdf-text", **options)


@dataclass
class Workspace:
    docs: Path
    data: Path
    first: IngestReport  # the report of the ingest that built it


@pytest.fixture(scope="session")
def pristine(tmp_path_factory) -> tuple[Path, IngestReport]:
    """The corpus ingested once; tests get a fresh copy at the same paths (the manifest
    records absolute paths, and copying keeps every file's size and mtime)."""
    base = tmp_path_factory.mktemp("index")
    docs = make_folder(base / "work" / "docs")
    with open_index(base / "work" / "data") as index:
        report = index.ingest([docs])
    shutil.copytree(base / "work", base / "pristine")
    return base, report


@pytest.fixture
def indexed(pristine) -> Workspace:
    base, report = pristine
    shutil.rmtree(base / "work")
    shutil.copytree(base / "pristine", base / "work")
    return Workspace(base / "work" / "docs", base / "work" / "data", report)


def watched_runner() -> tuple[InlineRunner, list[Path]]:
    """An in-process runner that parses as usual and records every file it is given."""
    parsed: list[Path] = []

    def parse(path: Path, *args, **kwargs):
        parsed.append(path)
        return parse_file(path, *args, **kwargs)

    return InlineRunner(parse), parsed


def scramble_keeping_stat(folder: Path) -> None:
    """Every file's bytes replaced by as many others, its mtime put back: a file that is
    skipped on its stat alone stays unchanged, one that is hashed (or read) would not."""
    for path in folder.iterdir():
        stat = path.stat()
        path.write_bytes(os.urandom(stat.st_size))
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def doc_of(path: Path) -> str:
    return doc_id_for(hashlib.sha256(path.read_bytes()).hexdigest(), "default")


def expected_chunks(index: Index, doc_id: str, tokens: int | None = None) -> int:
    doc = index.document(doc_id)
    assert doc is not None
    return len(chunk_document(doc, tokens or index.settings.chunk_tokens))


def sources(index: Index, query: str, **kwargs) -> list[str]:
    return [Path(hit.source).name for hit in index.search(query, top_k=5, **kwargs)]


def test_every_file_becomes_one_document_with_one_point_per_chunk(indexed):
    assert (indexed.first.added, indexed.first.failed, indexed.first.pages) == (4, 0, 4)
    folder, data_dir = indexed.docs, indexed.data
    with open_index(data_dir) as index:
        counts = index.store.doc_counts()
        assert set(counts) == {doc_of(folder / f"{name}.pdf") for name in CODES}
        for doc_id, count in counts.items():
            assert count == expected_chunks(index, doc_id)
        assert counts[doc_of(folder / "alpha.pdf")] > 1
        for name, code in CODES.items():
            assert sources(index, f"project {code}")[0] == f"{name}.pdf"
            hit = index.search(code, top_k=1, mode="sparse")[0]
            region = hit.regions[0]
            assert region.page == 1 and region.page_width > 0 and region.bbox.area > 0
            assert hit.text[region.start : region.end].strip()


def test_a_second_ingest_reads_only_stats_and_is_fast(indexed):
    folder, data_dir = indexed.docs, indexed.data
    with open_index(data_dir) as index:
        before = index.store.doc_counts()
    scramble_keeping_stat(folder)
    runner, parsed = watched_runner()
    started = time.perf_counter()
    with open_index(data_dir, runner=runner) as index:
        report = index.ingest([folder])
        after = index.store.doc_counts()
    elapsed = time.perf_counter() - started
    assert (report.unchanged, report.added, report.updated, report.removed) == (4, 0, 0, 0)
    assert report.pages == 0 and report.failed == 0 and parsed == []
    assert elapsed < 3.0, elapsed
    assert after == before


def counted_reads(index: Index, monkeypatch) -> dict[str, int]:
    """How often each way of reading the manifest is called from now on."""
    reads = {"get": 0, "all": 0, "by_doc": 0}
    for name in reads:
        read = getattr(index.manifest, name)

        def counted(*args, name=name, read=read):
            reads[name] += 1
            return read(*args)

        monkeypatch.setattr(index.manifest, name, counted)
    return reads


def test_a_second_ingest_reads_the_manifest_once_not_once_per_file(indexed, monkeypatch):
    """A run reads the tenant's rows once, whatever the number of files: for the files
    unchanged on their stat, the files gone and the sweep of points no file refers to."""
    folder, data_dir = indexed.docs, indexed.data
    with open_index(data_dir) as index:
        reads = counted_reads(index, monkeypatch)
        report = index.ingest([folder])
    assert (report.unchanged, report.added, report.updated, report.removed) == (4, 0, 0, 0)
    assert reads == {"get": 0, "all": 1, "by_doc": 0}


def test_changing_one_files_content_reindexes_exactly_that_file(indexed):
    folder, data_dir = indexed.docs, indexed.data
    bravo = folder / "bravo.pdf"
    old_doc = doc_of(bravo)
    with open_index(data_dir) as index:
        before = index.store.doc_counts()
    write_pdf(bravo, "bravo-two", extra="The new budget line is called quillfeather.")
    new_doc = doc_of(bravo)
    with open_index(data_dir) as index:
        report = index.ingest([folder])
        assert (report.updated, report.unchanged, report.added, report.removed) == (1, 3, 0, 0)
        assert report.pages == 1
        assert [d["path"] for d in report.documents] == [str(bravo)]
        counts = index.store.doc_counts()
        assert index.store.count(old_doc) == 0 and old_doc not in counts
        assert counts[new_doc] == expected_chunks(index, new_doc)
        assert {k: v for k, v in counts.items() if k != new_doc} == {
            k: v for k, v in before.items() if k != old_doc
        }
        assert sources(index, "quillfeather", mode="sparse") == ["bravo.pdf"]
        assert sources(index, CODES["bravo"], mode="sparse") == []  # the old text is gone
        assert index.manifest.get(index.tenant, bravo).doc_id == new_doc


def test_touching_a_file_without_changing_it_reindexes_nothing(indexed):
    folder, data_dir = indexed.docs, indexed.data
    charlie = folder / "charlie.pdf"
    stat = charlie.stat()
    os.utime(charlie, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    runner, parsed = watched_runner()
    with open_index(data_dir, runner=runner) as index:
        report = index.ingest([folder])
        assert (report.unchanged, report.updated, report.pages) == (4, 0, 0)
        row = index.manifest.get(index.tenant, charlie)
        assert row.mtime_ns == stat.st_mtime_ns + 5_000_000_000
    assert parsed == []
    scramble_keeping_stat(folder)  # the new stat is recorded: next time not even a hash
    with open_index(data_dir) as index:
        report = index.ingest([folder])
        assert (report.unchanged, report.failed, report.updated) == (4, 0, 0)


def test_deleting_a_file_removes_its_points_and_its_row(indexed):
    folder, data_dir = indexed.docs, indexed.data
    delta = folder / "delta.pdf"
    doc_id = doc_of(delta)
    delta.unlink()
    with open_index(data_dir) as index:
        report = index.ingest([folder])
        assert (report.removed, report.unchanged, report.updated) == (1, 3, 0)
        assert index.store.count(doc_id) == 0
        assert doc_id not in index.store.doc_counts()
        assert index.manifest.get(index.tenant, delta) is None
        assert doc_id not in {info.doc_id for info in index.documents()}
        assert "delta.pdf" not in sources(index, f"project {CODES['delta']}")


def test_changing_the_chunk_budget_rechunks_from_the_cache(indexed):
    folder, data_dir = indexed.docs, indexed.data
    alpha = doc_of(folder / "alpha.pdf")
    with open_index(data_dir) as index:
        before = index.store.count(alpha)
    runner, parsed = watched_runner()
    with open_index(data_dir, chunk_tokens=64, runner=runner) as index:
        report = index.ingest([folder])
        assert (report.updated, report.pages, report.failed) == (4, 0, 0) and parsed == []
        after = index.store.count(alpha)
        assert after == expected_chunks(index, alpha, 64) > before
        assert sum(index.store.doc_counts().values()) == index.store.count()


def test_identical_files_share_one_document_until_both_are_gone(indexed):
    folder, data_dir = indexed.docs, indexed.data
    alpha = folder / "alpha.pdf"
    copy = folder / "alpha-copy.pdf"
    shutil.copyfile(alpha, copy)
    doc_id = doc_of(alpha)
    with open_index(data_dir) as index:
        points = index.store.count(doc_id)
        report = index.ingest([folder])
        assert (report.added, report.unchanged, report.pages) == (1, 4, 0)  # parse cache hit
        assert len(index.store.doc_counts()) == 4
        assert index.store.count(doc_id) == points
        info = next(d for d in index.documents() if d.doc_id == doc_id)
        assert sorted(Path(p).name for p in info.paths) == ["alpha-copy.pdf", "alpha.pdf"]
    copy.unlink()
    with open_index(data_dir) as index:
        report = index.ingest([folder])
        assert report.removed == 1
        assert index.store.count(doc_id) == points
        hit = index.search(f"project {CODES['alpha']}", top_k=1)[0]
        assert hit.doc_id == doc_id
        assert Path(hit.source).exists()  # it cites the file that is still there
        assert index.search("alpha", top_k=3, filters={"source": "alpha.pdf"})
    alpha.unlink()
    with open_index(data_dir) as index:
        assert index.ingest([folder]).removed == 1
        assert index.store.count(doc_id) == 0


def test_metadata_given_to_identical_files_is_written_once(indexed):
    """The second file of a document sees the metadata the first one just gave it: its row is
    read when the file is looked at, not when the run began."""
    folder, data_dir = indexed.docs, indexed.data
    shutil.copyfile(folder / "alpha.pdf", folder / "alpha-copy.pdf")
    doc_id = doc_of(folder / "alpha.pdf")
    with open_index(data_dir) as index:
        assert index.ingest([folder]).added == 1
        report = index.ingest([folder], metadata={"dept": "ops"})
        assert (report.updated, report.unchanged, report.failed) == (4, 1, 0)
        rows = index.manifest.by_doc(index.tenant, doc_id)
        assert [row.metadata for row in rows] == [{"dept": "ops"}] * 2
        assert index.search("alpha", top_k=1, filters={"metadata": {"dept": "ops"}})


def test_a_broken_file_is_reported_and_the_others_are_indexed(folder, data_dir):
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj garbage\n%%EOF\n")
    with open_index(data_dir) as index:
        report = index.ingest([folder])
        assert (report.added, report.failed) == (4, 1)
        assert len(report.errors) == 1 and "broken.pdf" in report.errors[0].path
        failed = [info for info in index.documents() if info.status == "failed"]
        assert len(failed) == 1 and failed[0].error and failed[0].doc_id == ""
        assert len(index.store.doc_counts()) == 4
    (folder / "broken.pdf").unlink()
    with open_index(data_dir) as index:
        report = index.ingest([folder])
        assert (report.removed, report.failed, report.unchanged) == (1, 0, 4)
        assert all(info.status == "done" for info in index.documents())


def test_documents_document_and_delete(indexed):
    folder, data_dir = indexed.docs, indexed.data
    charlie = folder / "charlie.pdf"
    doc_id = doc_of(charlie)
    with open_index(data_dir) as index:
        infos = {info.doc_id: info for info in index.documents()}
        assert set(infos) == {doc_of(folder / f"{name}.pdf") for name in CODES}
        assert infos[doc_id].paths == [str(charlie)] and infos[doc_id].pages == 1
        assert infos[doc_id].status == "done"
        assert all(index.document_info(key) == info for key, info in infos.items())
        assert index.document_info("0" * 16) is None
        doc = index.document(doc_id)
        assert doc is not None and doc.id == doc_id and doc.source == str(charlie)
        assert index.page_image(doc, 1).exists()
        assert index.document("0" * 16) is None

        assert index.delete(doc_id) is True
        assert index.store.count(doc_id) == 0
        assert index.manifest.by_doc(index.tenant, doc_id) == []
        assert "charlie.pdf" not in sources(index, f"project {CODES['charlie']}")
        assert index.delete(doc_id) is False
        # the file is still in the folder: the next ingest adds it back
        assert index.ingest([folder]).added == 1
        assert index.store.count(doc_id) == expected_chunks(index, doc_id)


def test_a_delete_killed_after_the_points_went_is_finished_by_the_next_ingest(indexed, monkeypatch):
    """Killed between dropping the points and removing the rows, a delete must not leave
    `done` rows whose points are gone: the next ingest would skip the file for good."""
    folder, data_dir = indexed.docs, indexed.data
    doc_id = doc_of(folder / "charlie.pdf")
    with open_index(data_dir) as index:

        def killed(tenant: str, path: Path) -> None:
            raise KeyboardInterrupt  # the process dies before any row is removed

        monkeypatch.setattr(index.manifest, "remove", killed)
        with pytest.raises(KeyboardInterrupt):
            index.delete(doc_id)
        assert index.store.count(doc_id) == 0
        assert [row.status for row in index.manifest.by_doc(index.tenant, doc_id)] == ["indexing"]
    with open_index(data_dir) as index:
        report = index.ingest([folder])
        assert (report.updated, report.unchanged, report.failed) == (1, 3, 0)
        assert index.store.count(doc_id) == expected_chunks(index, doc_id)
        assert all(info.status == "done" and not info.error for info in index.documents())
        assert sources(index, f"project {CODES['charlie']}")[0] == "charlie.pdf"


def test_a_corrupt_cache_entry_is_no_document_rather_than_an_error(indexed):
    """`document()` reads the cache as ingest does: a corrupt entry is logged and ignored,
    never a validation error (an HTTP 500 for the pages and crops of the document)."""
    doc_id = doc_of(indexed.docs / "bravo.pdf")
    with open_index(indexed.data) as index:
        (row,) = index.manifest.by_doc(index.tenant, doc_id)
        cache = indexed.data / "cache" / f"{row.sha256}-{row.parser_fp}.json"
        assert index.document(doc_id) is not None
        cache.write_text('{"id": "truncated')
        assert index.document(doc_id) is None
        assert index.region_image(f"{doc_id}:p1:r0") is None


class FailsToClose(EdgeStore):
    def close(self) -> None:
        raise OSError("disk gone")


def test_closing_releases_the_manifest_even_when_the_store_fails_to_close(data_dir):
    store = FailsToClose(data_dir / "qdrant", seams.ENCODER.dimension)
    index = open_index(data_dir, store=store)
    assert index.store is store
    with pytest.raises(OSError, match="disk gone"):
        index.close()
    with pytest.raises(sqlite3.ProgrammingError):  # closed database
        index.manifest.meta("anything")
    EdgeStore.close(store)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCANRAG_")}
    scanrag = Path(sys.executable).parent / "scanrag"
    return subprocess.run(
        [str(scanrag), *args], capture_output=True, text=True, env=env, timeout=120
    )


@pytest.mark.slow  # runs the CLI in subprocesses
def test_cli_ingest_and_search_print_exactly_one_json_document(indexed):
    folder, data_dir = indexed.docs, indexed.data
    write_pdf(folder / "echo.pdf", "emberfall")
    (folder / "bravo.pdf").unlink()
    ingest = run_cli("ingest", str(folder), "--data-dir", str(data_dir), "--parser", "pdf-text",
                     "--json")  # fmt: skip
    assert ingest.returncode == 0, ingest.stderr
    report = json.loads(ingest.stdout)  # the whole of stdout is one JSON document
    assert (report["added"], report["removed"], report["unchanged"]) == (1, 1, 3)
    assert report["pages"] == 1 and report["errors"] == []

    search = run_cli("search", "project emberfall", "--data-dir", str(data_dir),
                     "--top-k", "2", "--filter", "page=1", "--json")  # fmt: skip
    assert search.returncode == 0, search.stderr
    result = json.loads(search.stdout)
    assert result["query"] == "project emberfall"
    assert len(result["hits"]) == 2
    top = result["hits"][0]
    assert Path(top["source"]).name == "echo.pdf"
    assert top["regions"] and len(top["regions"][0]["bbox"]) == 4


@pytest.mark.parametrize("store", ["edge", "qdrant-client path"])
def test_points_of_a_document_no_file_refers_to_are_swept(tmp_path, store):
    """A run killed between removing a file's row and its points leaves orphans; the next
    ingest removes them, whichever store the index uses."""
    docs = tmp_path / "docs"
    docs.mkdir()
    write_pdf(docs / "only.pdf", "solitaire")
    options = {} if store == "edge" else {"qdrant_path": str(tmp_path / "local")}
    with open_index(tmp_path / "data", **options) as index:
        index.ingest([docs])
        kept = doc_of(docs / "only.pdf")
        orphan = index.encoders.points(index.document(kept), "/gone/orphan.pdf", index.tenant, {})
        for point in orphan:
            point.id = str(uuid.uuid4())
            point.payload["doc_id"] = "feedfacefeedface"
        index.store.upsert(orphan)
        assert set(index.store.doc_counts()) == {kept, "feedfacefeedface"}
    with open_index(tmp_path / "data", **options) as index:
        assert index.ingest([docs]).unchanged == 1
        assert index.store.doc_counts() == {kept: expected_chunks(index, kept)}


class OneRegion:
    """A parser object of one's own: every page is one region saying so."""

    name, version = "one-region", "1"

    def config(self) -> dict:
        return {}

    def parse_page(self, page) -> list[Block]:
        return [Block("text", BBox(10, 10, 400, 60), text="handwritten ledger", source=self.name)]


def test_a_parser_object_reads_every_file_in_this_process(folder, data_dir):
    with seams.open_index(data_dir=data_dir, parser=OneRegion()) as index:
        assert index.settings.parser == "auto"  # an object is no setting
        report = index.ingest([folder])
        assert (report.added, report.failed) == (4, 0)
        assert isinstance(index.runner, InlineRunner)
        for info in index.documents():
            doc = index.document(info.doc_id)
            assert {region.source for region in doc.regions()} == {"one-region"}
        assert len(index.search("handwritten ledger", top_k=10, mode="sparse")) == 4
    with seams.open_index(data_dir=data_dir, parser="pdf-text") as index:
        assert index.ingest([folder]).updated == 4  # another parser: parsed again
    with pytest.raises(ConfigError, match="in this process"):
        Index(data_dir=data_dir, parser=OneRegion(), workers=2)
