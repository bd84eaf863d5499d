"""A `scanrag ingest` killed with SIGKILL at a random moment leaves an index that the next
ingest completes: every file done, every document's points exactly its chunks, no orphans,
and, even right after the kill, no document with only part of its points and no file marked
done whose document is not wholly searchable.

CI runs 10 trials over a folder of 20 files; `bench/kill_ingest.py` runs more and larger
(KILL_TRIALS, KILL_FILES, KILL_SEED)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from seams import open_index

from scanrag.ingest.model import Document
from scanrag.retrieval.chunking import chunk_document
from scanrag.retrieval.points import POINT_NAMESPACE
from scanrag.testing import pdf_paragraph, text_pdf

pytestmark = pytest.mark.slow  # SIGKILLs scanrag ingest ten times

SEED = int(os.environ.get("KILL_SEED", "20250611"))
TRIALS = int(os.environ.get("KILL_TRIALS", "10"))
FILES = int(os.environ.get("KILL_FILES", "20"))
RESULTS = os.environ.get("KILL_RESULTS")  # a JSON file the bench reads the figures from
CHUNK_TOKENS = 200  # the default; the child process uses the defaults too


def write_pdf(path: Path, code: str, rng: random.Random) -> None:
    words = "supplier contract warehouse audit deadline committee forecast budget".split()
    body = " ".join(rng.choice(words) for _ in range(rng.randint(60, 260)))
    items = [(72, 80, f"Record {code}", 16), *pdf_paragraph(72, 120, f"{code} {body}", 450)]
    text_pdf([items], path)


def done_rows(data: Path) -> list[tuple[str, str, str]]:
    """(path, sha256, doc_id) of every row marked done, read without scanrag's code."""
    return [
        (os.fsdecode(path), sha256, doc_id)
        for path, sha256, doc_id, status in manifest_rows(data)
        if status == "done"
    ]


def manifest_rows(data: Path) -> set[tuple]:
    path = data / "manifest.sqlite"
    if not path.exists():
        return set()
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2)
        try:
            return set(db.execute("SELECT path, sha256, doc_id, status FROM files").fetchall())
        finally:
            db.close()
    except sqlite3.Error:
        return set()  # being created or locked: no progress seen yet


def engine_points(data: Path) -> list[tuple[str, str]]:
    """(point id, doc_id) of every point, read with the engine itself (no scanrag code)."""
    import qdrant_edge as qe

    shard = qe.EdgeShard.load(str(data / "qdrant"))
    try:
        out, offset = [], None
        while True:
            records, offset = shard.scroll(
                qe.ScrollRequest(offset=offset, limit=500, with_payload=True)
            )
            out += [(str(record.id), record.payload["doc_id"]) for record in records]
            if offset is None:
                return out
    finally:
        shard.close()


def cached_chunks(data: Path, doc_id: str) -> set[str]:
    """The point ids a complete document must have, from its cached parse."""
    (cache,) = (data / "cache").glob(f"{doc_id}*.json")
    doc = Document.model_validate_json(cache.read_bytes())
    return {
        str(uuid.uuid5(POINT_NAMESPACE, chunk.id)) for chunk in chunk_document(doc, CHUNK_TOKENS)
    }


def by_doc(points: list[tuple[str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for point_id, doc_id in points:
        out.setdefault(doc_id, set()).add(point_id)
    return out


def change_folder(docs: Path, codes: dict[str, str], trial: int, rng: random.Random) -> int:
    """Rewrite two files, delete one, add one; returns how many manifest rows must change."""
    names = sorted(codes)
    for name in rng.sample(names, 2):
        codes[name] = f"rewritten{trial}{name}"
        write_pdf(docs / name, codes[name], rng)
    gone = rng.choice([name for name in names if not codes[name].startswith("rewritten")])
    (docs / gone).unlink()
    del codes[gone]
    new = f"added{trial}.pdf"
    codes[new] = f"fresh{trial}code"
    write_pdf(docs / new, codes[new], rng)
    return 4


def letters(number: int) -> str:
    """A unique lowercase tag per number (0 → "aaa", 27 → "abb"): one search term each."""
    return "".join(chr(97 + number // 26**k % 26) for k in (2, 1, 0))


def file_sha(path: Path) -> str | None:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_a_killed_ingest_is_completed_without_duplicates_or_orphans(tmp_path):
    rng = random.Random(SEED)
    docs, data = tmp_path / "docs", tmp_path / "data"
    docs.mkdir()
    codes = {f"file{i}.pdf": f"code{letters(i)}word" for i in range(FILES)}
    for name, code in codes.items():
        write_pdf(docs / name, code, rng)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCANRAG_")}
    scanrag = str(Path(sys.executable).parent / "scanrag")
    killed = 0
    stats: dict = {"trials": TRIALS, "files": FILES, "kills": [], "points_checked_after_kill": 0}

    for trial in range(TRIALS):
        changes = FILES if trial == 0 else change_folder(docs, codes, trial, rng)
        before = manifest_rows(data)
        # Kill once the child has changed k manifest rows (k random), after a random delay:
        # the moment falls anywhere in the write phase, between or inside store writes.
        k = rng.randint(0, changes)  # 0: anywhere from start-up to the first write
        delay = rng.uniform(0.0, 0.5)
        child = subprocess.Popen(
            [scanrag, "ingest", str(docs), "--data-dir", str(data), "--parser", "pdf-text"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            if len(manifest_rows(data) ^ before) >= k:
                break
            time.sleep(0.02)
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        was_killed = child.wait() == -signal.SIGKILL
        killed += was_killed
        progress = len(manifest_rows(data) ^ before)
        stats["kills"].append({"trial": trial, "killed": was_killed, "rows_changed": progress,
                               "of": changes})  # fmt: skip

        # Right after the kill: a document has all of its points or none, and a file marked
        # done (and still as it was) has all of its document's points.
        stored = by_doc(engine_points(data)) if (data / "qdrant").exists() else {}
        for doc_id, ids in stored.items():
            assert ids == cached_chunks(data, doc_id), f"trial {trial}: {doc_id} is partial"
        for path, sha256, doc_id in done_rows(data):
            if file_sha(Path(path)) == sha256:
                assert stored.get(doc_id) == cached_chunks(data, doc_id), (trial, path)
        stats["points_checked_after_kill"] += sum(len(ids) for ids in stored.values())

        with open_index(data_dir=data, parser="pdf-text") as index:
            report = index.ingest([docs])
            assert report.failed == 0, report.errors
            rows = index.manifest.all(index.tenant)
            assert sorted(row.path.name for row in rows) == sorted(codes)
            assert all(row.status == "done" for row in rows)
            doc_ids = {row.doc_id for row in rows}
            for name, code in codes.items():
                hit = index.search(code, top_k=1, mode="sparse")
                assert hit and Path(hit[0].source).name == name, (trial, name)
            counts = index.store.doc_counts()

        points = engine_points(data)
        assert len({point_id for point_id, _ in points}) == len(points)  # ids unique
        stored = by_doc(points)
        assert set(stored) == doc_ids  # no orphans, nothing missing
        for doc_id in doc_ids:
            assert stored[doc_id] == cached_chunks(data, doc_id)  # no duplicates or leftovers
        assert counts == {doc_id: len(ids) for doc_id, ids in stored.items()}

        stats["points_after_restart"] = len(points)
        stats["documents_after_restart"] = len(doc_ids)

    if RESULTS:
        Path(RESULTS).write_text(json.dumps(stats, indent=2))
    assert killed >= TRIALS * 2 // 3  # most trials really interrupted the child
    # the kills fell at different moments of the write phase, not all at its start or end
    assert len({(k["rows_changed"] > 0, k["rows_changed"] >= k["of"]) for k in stats["kills"]}) > 1
