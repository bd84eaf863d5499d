"""Ingest in parallel: files parsed by worker processes (`--workers 2`) or as Ray tasks on a
local Ray instance (`ray.init(num_cpus=2)`) give the index that parsing in-process gives: the
same Documents, manifest rows, points and page images. A task that raises, or a worker that
dies, is that file's error while the others land, and a second run parses nothing.

The folder mixes born-digital PDFs (pdf-text, fast), a five-page PDF that goes out in page
batches, and a small scanned page that the embedded OCR reads inside a worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from seams import open_index
from typer.testing import CliRunner

from scanrag.cli import app, optional_ray_address
from scanrag.config import Settings
from scanrag.ingest import parallel
from scanrag.ingest.loaders import open_source
from scanrag.ingest.parsers import get_parser
from scanrag.ingest.pipeline import parse_fingerprint
from scanrag.retrieval.chunking import chunk_document
from scanrag.retrieval.reports import IngestReport
from scanrag.testing import Sheet, pdf_paragraph, text_pdf

pytestmark = pytest.mark.slow  # starts Ray and worker processes
ray = pytest.importorskip("ray")

CODES = {"memo-alder": "alderwick", "memo-birch": "birchmoor", "memo-cedar": "cedarholt"}


def memo(path: Path, code: str) -> Path:
    text = (
        f"The {code} committee reviewed the supplier contracts and the warehouse inventory. "
        "Figures were agreed after the quarterly budget review."
    )
    return text_pdf([[(72, 80, f"Memo {code}", 16), *pdf_paragraph(72, 120, text, 450)]], path)


def ledger(path: Path) -> Path:
    """Five born-digital pages, one code word each: batches of two pages make three tasks."""
    pages = []
    for n in range(1, 6):
        text = f"Ledger page {n} records the shipment code ledgerword{n} and its freight costs."
        pages.append([(72, 80, f"Ledger page {n}", 16), *pdf_paragraph(72, 120, text, 450)])
    return text_pdf(pages, path)


def scan(path: Path) -> Path:
    """A small scanned page: no text layer, so the embedded OCR reads it."""
    sheet = Sheet(900, 420)
    sheet.write(60, 60, "DELIVERY NOTE DN-5521", size=44, bold=True)
    sheet.write(60, 170, "Consignee: Harbor Glassworks")
    sheet.write(60, 240, "Forty crates of tempered panels")
    sheet.image(noise=4, seed=3).save(path)
    return path


def build_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for name, code in CODES.items():
        memo(folder / f"{name}.pdf", code)
    ledger(folder / "ledger.pdf")
    scan(folder / "scan.png")
    (folder / "notes.txt").write_text("not a document: skipped")
    return folder


@dataclass
class Built:
    docs: Path
    data: Path
    report: IngestReport


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Built:
    """The folder indexed in-process, one file after another (the behaviour to match)."""
    base = tmp_path_factory.mktemp("parallel")
    docs = build_folder(base / "docs")
    with open_index(data_dir=base / "in-process", workers=1) as index:
        report = index.ingest([docs])
    assert (report.added, report.failed, report.skipped, report.pages) == (5, 0, 1, 9)
    return Built(docs, base / "in-process", report)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False)
    yield
    ray.shutdown()


# --- what "the same index" means --------------------------------------------------------


def documents(data: Path) -> dict[str, dict[str, Any]]:
    """Every indexed Document by source path, without its creation time."""
    with open_index(data_dir=data) as index:
        out = {}
        for row in index.manifest.all(index.tenant):
            doc = index.document(row.doc_id)
            assert doc is not None, row.path
            out[str(row.path)] = doc.model_dump(mode="json", exclude={"created_at"})
        return out


def manifest(data: Path) -> list[tuple]:
    with open_index(data_dir=data) as index:
        return [
            (
                str(r.path),
                r.sha256,
                r.size,
                r.mtime_ns,
                r.doc_id,
                r.status,
                r.parser_fp,
                r.index_fp,
                r.pages,
                r.error,
            )
            for r in index.manifest.all(index.tenant)
        ]


def points(data: Path) -> dict[str, dict[str, Any]]:
    """Every point in the store (id → payload), read with the engine itself."""
    import qdrant_edge as qe

    shard = qe.EdgeShard.load(str(data / "qdrant"))
    try:
        out, offset = {}, None
        while True:
            records, offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=500, with_payload=True)
            )
            out.update({str(record.id): record.payload for record in records})
            if offset is None:
                return out
    finally:
        shard.close()


def page_images(data: Path) -> dict[str, bytes]:
    return {
        path.relative_to(data).as_posix(): path.read_bytes()
        for path in sorted((data / "pages").rglob("*.jpg"))
    }


def assert_same_index(data: Path, expected: Path) -> None:
    docs = documents(data)
    assert docs == documents(expected)
    assert manifest(data) == manifest(expected)
    stored = points(data)
    assert stored == points(expected)
    assert page_images(data) == page_images(expected)
    # the manifest and the store agree: each done file's document has exactly its chunks
    rows = manifest(data)
    assert all(row[5] == "done" for row in rows)
    for path, doc in docs.items():
        doc_points = [p for p in stored.values() if p["doc_id"] == doc["id"]]
        with open_index(data_dir=data) as index:
            chunks = chunk_document(index.document(doc["id"]), index.settings.chunk_tokens)
        assert len(doc_points) == len(chunks), path
        assert {p["source"] for p in doc_points} == {path}


def same_report(report: IngestReport, expected: IngestReport) -> None:
    keys = ("added", "updated", "unchanged", "removed", "failed", "skipped", "pages", "documents")
    assert report.model_dump(include=set(keys)) == expected.model_dump(include=set(keys))


# --- Ray ----------------------------------------------------------------------------------


def test_ray_tasks_build_the_index_the_in_process_path_builds(reference, local_ray, tmp_path):
    data = tmp_path / "ray"
    events: list[tuple[str, str]] = []
    with open_index(data_dir=data, ray_address="auto", batch_pages=2) as index:
        report = index.ingest(
            [reference.docs], on_progress=lambda e: events.append((e.kind, e.path.name))
        )
        assert isinstance(index.runner, parallel.RayRunner)
    same_report(report, reference.report)
    assert report.errors == []
    assert_same_index(data, reference.data)
    ledger_doc = documents(data)[str(reference.docs / "ledger.pdf")]
    assert [page["number"] for page in ledger_doc["pages"]] == [1, 2, 3, 4, 5]  # 3 batches
    scan_doc = documents(data)[str(reference.docs / "scan.png")]
    assert {r["source"] for p in scan_doc["pages"] for r in p["regions"]} == {"embedded"}
    # progress came from completed tasks: one page event per page, one done per file
    assert sum(kind == "page" for kind, _ in events) == 9
    assert sorted(name for kind, name in events if kind == "done") == sorted(
        ["ledger.pdf", "scan.png", *(f"{name}.pdf" for name in CODES)]
    )

    with open_index(data_dir=data, ray_address="auto") as index:  # a second run parses nothing
        again = index.ingest([reference.docs])
        assert index.runner is None  # not a single task went out
    assert (again.unchanged, again.added, again.updated, again.pages) == (5, 0, 0, 0)


def test_a_ray_task_that_raises_is_that_files_error_and_the_others_land(tmp_path, local_ray):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, code in CODES.items():
        memo(docs / f"{name}.pdf", code)
    memo(docs / "explode.pdf", "emberfall")
    def dies_on_explode(unit, *args, **kwargs):  # shipped to the Ray workers by value
        if unit.path.name == "explode.pdf":
            raise RuntimeError("the node lost its scratch disk")
        return parallel.parse_unit(unit, *args, **kwargs)

    data = tmp_path / "data"
    runner = parallel.RayRunner("auto", dies_on_explode, send_files=False)
    with open_index(data_dir=data, ray_address="auto", runner=runner) as index:
        report = index.ingest([docs])
        (error,) = report.errors
        assert Path(error.path).name == "explode.pdf"
        assert "the Ray task failed (RuntimeError: the node lost its scratch disk)" in error.error
        assert (report.added, report.failed) == (3, 1)
        assert [d["status"] for d in report.documents] == ["failed", "added", "added", "added"]
        rows = {row.path.name: row for row in index.manifest.all(index.tenant)}
        assert rows["explode.pdf"].status == "failed" and rows["explode.pdf"].doc_id is None
        assert rows["explode.pdf"].error == error.error
        done = {row.doc_id for row in rows.values() if row.status == "done"}
        assert set(index.store.doc_counts()) == done and len(done) == 3
        assert index.search("emberfall", top_k=3, mode="sparse") == []

    with open_index(data_dir=data, ray_address="auto", ray_send_files=False) as index:
        retry = index.ingest([docs])  # only the failed file is parsed again
        assert (retry.added, retry.unchanged, retry.failed, retry.pages) == (1, 3, 0, 1)
        hit = index.search("emberfall", top_k=1, mode="sparse")[0]
        assert Path(hit.source).name == "explode.pdf"
    with open_index(data_dir=data, ray_address="auto") as index:
        assert index.ingest([docs]).unchanged == 4
        assert index.runner is None


def test_scanrag_ingest_ray_prints_one_json_report(reference, local_ray, tmp_path):
    data = tmp_path / "cli"
    result = CliRunner().invoke(
        app, ["ingest", str(reference.docs), "--data-dir", str(data), "--ray", "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["added"], report["pages"], report["failed"]) == (5, 9, 0)
    assert documents(data) == documents(reference.data)


def test_a_bare_ray_option_means_auto_and_an_address_is_kept():
    assert optional_ray_address(["ingest", "scans", "--ray"]) == [
        "ingest",
        "scans",
        "--ray",
        "auto",
    ]
    assert optional_ray_address(["ingest", "--ray", "scans"]) == [
        "ingest",
        "--ray",
        "auto",
        "scans",
    ]
    assert optional_ray_address(["ingest", "s", "--ray", "--json"])[3] == "auto"
    for address in ("ray://head:10001", "10.0.0.5:6379", "auto"):
        assert optional_ray_address(["ingest", "s", "--ray", address])[3] == address


# --- worker processes ---------------------------------------------------------------------


def test_two_worker_processes_build_the_index_the_in_process_path_builds(reference, tmp_path):
    data = tmp_path / "pool"
    with open_index(data_dir=data, workers=2, batch_pages=2) as index:
        report = index.ingest([reference.docs])
        assert isinstance(index.runner, parallel.PoolRunner)
    same_report(report, reference.report)
    assert_same_index(data, reference.data)


def test_scanrag_ingest_workers_keeps_stdout_for_the_json_report(reference, tmp_path):
    """Worker processes print to stderr: stdout is exactly one JSON document."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCANRAG_")}
    scanrag = Path(sys.executable).parent / "scanrag"
    data = tmp_path / "cli"
    done = subprocess.run(
        [str(scanrag), "ingest", str(reference.docs), "--data-dir", str(data),
         "--workers", "2", "--json"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["added"], report["pages"], report["skipped"]) == (5, 9, 1)
    assert documents(data) == documents(reference.data)


def test_each_worker_gets_its_share_of_the_cores():
    assert parallel.default_workers(16) == 8
    for options, threads in [
        ({"workers": 4}, 4),
        ({}, 2),  # 8 workers by default
        ({"workers": 1}, None),  # in-process: onnxruntime's default, all cores
        ({"ray_address": "auto"}, 1),  # one CPU per Ray task
        ({"workers": 4, "ocr_threads": 3}, 3),
    ]:
        assert parallel.worker_threads(Settings(**options), cpus=16) == threads, options
    assert parallel.default_workers(2) == 1  # a 2-core machine parses in-process


def test_workers_parse_with_their_share_of_the_cores(tmp_path):
    """What a worker is sent: the settings with its share of onnxruntime threads."""
    docs = tmp_path / "docs"
    docs.mkdir()
    memo(docs / "a.pdf", "ashgrove")
    sent: list[parallel.ParseUnit] = []

    class Recording(parallel.InlineRunner):
        def submit(self, unit: parallel.ParseUnit) -> None:
            sent.append(unit)
            super().submit(unit)

    with open_index(data_dir=tmp_path / "data", workers=4, runner=Recording()) as index:
        assert index.ingest([docs]).added == 1
    (unit,) = sent
    assert unit.settings["ocr_threads"] == parallel.worker_threads(Settings(workers=4))


def test_the_ocr_threads_setting_reaches_onnxruntime():
    import numpy as np

    from scanrag.config import Settings

    parser = get_parser(Settings(parser="embedded", ocr_threads=1))
    ocr, layout = parser.models()
    ocr(np.full((64, 256, 3), 255, dtype=np.uint8))  # RapidOCR builds its sessions lazily
    options = ocr.text_det.session.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert layout.session.session.get_session_options().intra_op_num_threads == 1


class DiesWhenUnpickled:
    """Put into a unit's settings: the worker that receives the unit exits at once, the way
    a worker killed by the OOM killer does (nothing is cleaned up, its pool breaks)."""

    def __reduce__(self):
        return (os._exit, (70,))


def memo_unit(path: Path, code: str, die: bool = False) -> parallel.ParseUnit:
    settings = Settings()
    parser_fp = parse_fingerprint(get_parser(settings), settings)
    values = settings.model_dump()
    if die:
        values["die"] = DiesWhenUnpickled()
    return parallel.ParseUnit(open_source(memo(path, code), settings), values, parser_fp)


def test_a_unit_sent_after_a_worker_died_goes_to_a_fresh_pool(tmp_path):
    runner = parallel.PoolRunner(1, parallel.parse_unit)
    try:
        runner.submit(memo_unit(tmp_path / "killed.pdf", "emberfall", die=True))
        wait(list(runner._futures))  # the pool is broken, and results() has not said so yet
        runner.submit(memo_unit(tmp_path / "alder.pdf", "alderwick"))  # not BrokenProcessPool
        results = []
        while runner.pending:  # the dead pool's future must not stop the fresh pool
            results += runner.results(block=True)
    finally:
        runner.close()
    killed, parsed = sorted(results, key=lambda result: result.path.name != "killed.pdf")
    assert killed.error.startswith(f"{tmp_path / 'killed.pdf'}: the parse worker failed (")
    assert "BrokenProcessPool" in killed.error and killed.document is None
    assert parsed.error is None and "alderwick" in parsed.document


def test_a_worker_that_dies_fails_its_files_and_a_fresh_pool_parses_the_rest(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    memo(docs / "a-killed.pdf", "emberfall")  # first: it goes out before the others
    for n in range(7):  # more than the runner's 4 slots: some go out after the death
        memo(docs / f"memo-{n}.pdf", f"codeword{n}")
    pools: dict[str, int] = {}  # file name → the pool its unit went to

    class KillsAWorker(parallel.PoolRunner):
        """The unit of a-killed.pdf kills the worker that unpickles it."""

        def submit(self, unit: parallel.ParseUnit) -> None:
            if unit.path.name == "a-killed.pdf":
                unit.settings = {**unit.settings, "die": DiesWhenUnpickled()}
            super().submit(unit)
            pools[unit.path.name] = id(self._pool)

    runner = KillsAWorker(2, parallel.parse_unit)
    with open_index(data_dir=tmp_path / "data", workers=2, runner=runner) as index:
        report = index.ingest([docs])
    errors = {Path(error.path).name: error.error for error in report.errors}
    assert "BrokenProcessPool" in errors["a-killed.pdf"]
    assert errors["a-killed.pdf"].startswith(f"{docs / 'a-killed.pdf'}: the parse worker failed")
    statuses = {Path(d["path"]).name: d["status"] for d in report.documents}
    assert len(statuses) == 8 and report.added + report.failed == 8
    dead = pools["a-killed.pdf"]
    after = [name for name, pool in pools.items() if pool != dead]
    assert after, pools  # the files sent after the death went to a fresh pool ...
    assert all(statuses[name] == "added" for name in after), (statuses, pools)
    for name, error in errors.items():  # ... and only files in flight on the dead one failed
        assert pools[name] == dead and "BrokenProcessPool" in error, error


def test_a_file_gone_before_it_is_sent_to_ray_is_that_files_error(tmp_path, local_ray):
    unit = memo_unit(tmp_path / "gone.pdf", "ashgrove")
    unit.path.unlink()  # deleted after it was hashed
    runner = parallel.RayRunner("auto", parallel.parse_unit)
    try:
        runner.submit(unit)
        (result,) = runner.results(block=True)
    finally:
        runner.close()
    assert result.path == unit.path and result.document is None
    assert result.error.startswith(f"{unit.path}: ") and "No such file" in result.error
