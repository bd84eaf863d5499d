"""A real `scanrag serve` killed with SIGKILL while uploads are queued, or stopped with
SIGTERM, loses nothing it accepted: the next server on the same data directory answers every
job id it handed out, resumes the unfinished jobs, and every accepted file ends up indexed
exactly once (one manifest row, its document's points exactly its chunks, no duplicates).

CI runs API_KILL_TRIALS=2 kills; `bench/kill_serve.py` runs 20 (API_KILL_TRIALS,
API_KILL_SEED, API_KILL_RESULTS).
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import free_port
from seams import open_index
from test_ingest_crash import by_doc, cached_chunks, engine_points

from scanrag.testing import code_pdf

pytestmark = pytest.mark.slow  # SIGKILLs scanrag serve

TRIALS = int(os.environ.get("API_KILL_TRIALS", "2"))
SEED = int(os.environ.get("API_KILL_SEED", "20261203"))
RESULTS = os.environ.get("API_KILL_RESULTS")  # a JSON file the bench reads its figures from
SHUTDOWN_TIMEOUT = 5


class Server:
    """`scanrag serve` in a child process on a free port, over one data directory."""

    def __init__(self, data: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCANRAG_")}
        env.update(
            SCANRAG_PARSER="pdf-text",
            SCANRAG_ACCESS_LOG="off",
            SCANRAG_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT),
        )
        scanrag = str(Path(sys.executable).parent / "scanrag")
        command = [scanrag, "serve", "--data-dir", str(data), "--port", str(self.port)]
        self.log = log.open("ab")
        self.child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        deadline = time.monotonic() + 180
        while self.child.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.child.kill()
        raise AssertionError(f"serve did not start: {log.read_text()[-2000:]}")

    def stop(self, sig: signal.Signals) -> float:
        """Send `sig`; the seconds until the process was gone."""
        started = time.monotonic()
        self.child.send_signal(sig)
        self.child.wait(timeout=120)
        self.log.close()
        return time.monotonic() - started


class Uploader(threading.Thread):
    """Uploads batches of new files until told to stop or the server dies; records what was
    acknowledged (a 202 received) as job id → the codes of its files."""

    def __init__(
        self, url: str, folder: Path, first: int, batches: list[int], wait: bool = False
    ) -> None:
        super().__init__(daemon=True)
        self.url, self.folder, self.first, self.batches = url, folder, first, batches
        self.route = "/v1/documents?wait=true" if wait else "/v1/documents"
        self.acknowledged: dict[str, list[str]] = {}
        self.sent = 0

    def run(self) -> None:
        number = self.first
        with httpx.Client(base_url=self.url, timeout=60) as client:
            for size in self.batches:
                codes = [f"file{n:04d}code" for n in range(number, number + size)]
                number += size
                files = [
                    (
                        "files",
                        (f"{code}.pdf", code_pdf(self.folder / f"{code}.pdf", code).read_bytes()),
                    )
                    for code in codes
                ]
                self.sent += 1
                try:
                    response = client.post(self.route, files=files)
                except httpx.TransportError:
                    return  # killed mid-request: not acknowledged
                assert response.status_code in (200, 202), response.text
                self.acknowledged[response.json()["job_id"]] = codes


def wait_for_jobs(url: str, job_ids: list[str]) -> dict[str, dict]:
    """Every job as it ends; a job id the server does not know fails at once."""
    finished: dict[str, dict] = {}
    deadline = time.monotonic() + 600
    with httpx.Client(base_url=url, timeout=60) as client:
        while len(finished) < len(job_ids):
            for job_id in job_ids:
                if job_id in finished:
                    continue
                response = client.get(f"/v1/jobs/{job_id}")
                assert response.status_code == 200, f"job {job_id} lost: {response.text}"
                if response.json()["status"] in ("done", "failed"):
                    finished[job_id] = response.json()
            assert time.monotonic() < deadline, "jobs did not finish"
            time.sleep(0.2)
    return finished


def done_rows(data: Path) -> int:
    """Files the manifest marks indexed, read without scanrag's code."""
    if not (data / "manifest.sqlite").exists():
        return 0
    db = sqlite3.connect(f"file:{data / 'manifest.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM files WHERE status = 'done'").fetchone()[0]
    finally:
        db.close()


def job_states(data: Path) -> dict[str, int]:
    """How many jobs the dead server left in each state, read without scanrag's code."""
    db = sqlite3.connect(f"file:{data / 'jobs.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT status FROM jobs").fetchall()
    finally:
        db.close()
    states = [json.loads(status)["status"] for (status,) in rows]
    return {state: states.count(state) for state in sorted(set(states))}


@pytest.fixture
def started() -> Iterator[list[Server]]:
    """The servers a test starts; any still running at its end (a failed test) is killed."""
    servers: list[Server] = []
    yield servers
    for server in servers:
        if server.child.poll() is None:
            server.child.kill()
            server.child.wait()


def test_a_killed_server_loses_no_accepted_upload_and_indexes_each_once(
    tmp_path, started
):
    rng = random.Random(SEED)
    data, folder = tmp_path / "data", tmp_path / "files"
    folder.mkdir()
    log = tmp_path / "serve.log"
    accepted: dict[str, list[str]] = {}
    stats: dict = {"trials": TRIALS, "kills": []}
    number = 0

    for trial in range(TRIALS + 1):  # the last one ends with SIGTERM, the others with SIGKILL
        indexed_before = done_rows(data)
        server = Server(data, log)
        started.append(server)
        if accepted:  # what the previous server acknowledged is known here at once
            with httpx.Client(base_url=server.url, timeout=60) as client:
                for job_id in accepted:
                    assert client.get(f"/v1/jobs/{job_id}").status_code == 200, job_id
        batches = [rng.randint(1, 3) for _ in range(rng.randint(4, 10))]
        uploader = Uploader(server.url, folder, number, batches)
        number += sum(batches)
        uploader.start()
        # Kill at a random moment: half the trials once k batches were acknowledged (while
        # files stream in and jobs queue up), the others once this server has indexed j files
        # (while jobs are being indexed); then after a short random delay.
        if rng.random() < 0.5:
            k = rng.randint(0, len(batches))
            while len(uploader.acknowledged) < k and uploader.is_alive():
                time.sleep(0.01)
        else:
            j, deadline = rng.randint(1, 4), time.monotonic() + 120
            while done_rows(data) - indexed_before < j and time.monotonic() < deadline:
                time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        last = trial == TRIALS
        waiter = Uploader(server.url, folder, number, [1], wait=True)  # ?wait=true, then SIGTERM
        if last:
            number += 1
            waiter.start()
            time.sleep(0.5)
        seconds = server.stop(signal.SIGTERM if last else signal.SIGKILL)
        uploader.join(timeout=120)
        accepted.update(uploader.acknowledged)
        if last:
            waiter.join(timeout=120)
            accepted.update(waiter.acknowledged)
        stats["kills"].append(
            {"trial": trial, "signal": "TERM" if last else "KILL", "batches_sent": uploader.sent,
             "acknowledged": len(uploader.acknowledged), "seconds_to_exit": round(seconds, 2),
             "jobs_left": job_states(data), "files_indexed": done_rows(data) - indexed_before}
        )  # fmt: skip
        if last:  # a SIGTERM stops within the shutdown timeout (open requests, then the job),
            # a waiting request included
            assert seconds < 2 * SHUTDOWN_TIMEOUT + 30, seconds

    server = Server(data, log)
    started.append(server)
    jobs = wait_for_jobs(server.url, list(accepted))
    stats["resumed_jobs"] = sum(job["resumed"] > 0 for job in jobs.values())
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for code in (code for codes in accepted.values() for code in codes):
            found = client.post("/v1/search", json={"query": code, "mode": "sparse", "top_k": 1})
            (hit,) = found.json()["hits"]
            assert Path(hit["source"]).name == f"{code}.pdf"
    server.stop(signal.SIGTERM)

    assert all(job["status"] == "done" for job in jobs.values()), jobs
    codes = [code for codes in accepted.values() for code in codes]
    with open_index(data_dir=data, parser="pdf-text") as index:
        rows = index.manifest.all(index.tenant)
        counts = index.store.doc_counts()
    names = [row.path.name for row in rows]
    for code in codes:  # exactly once: one row, done
        assert names.count(f"{code}.pdf") == 1, code
    assert all(row.status == "done" for row in rows)
    points = engine_points(data)
    assert len({point_id for point_id, _ in points}) == len(points)  # no duplicate points
    stored = by_doc(points)
    assert set(stored) == {row.doc_id for row in rows}  # no orphans, nothing missing
    for doc_id, ids in stored.items():
        assert ids == cached_chunks(data, doc_id)  # each document's points: its chunks
    assert counts == {doc_id: len(ids) for doc_id, ids in stored.items()}

    stats.update(
        accepted_jobs=len(accepted), accepted_files=len(codes), documents=len(stored),
        points=len(points), unacknowledged_but_indexed=len(rows) - len(codes),
    )  # fmt: skip
    if RESULTS:
        Path(RESULTS).write_text(json.dumps(stats, indent=2))
    assert accepted, "no upload was acknowledged at all"
