"""Queries and searches at a fixed rate while the same server ingests a folder of scans.

Loopback only: starts `scanrag serve` on 127.0.0.1 (a child process), indexes a few
born-digital memos so questions have answers, starts a server-side ingest of generated scans
(OCR, the heavy part), and meanwhile sends `POST /v1/query` and `POST /v1/search`
alternately at `--rate` requests per second for `--duration` seconds: a bounded, open-loop
schedule (request i leaves at i / rate seconds, whatever the earlier ones are doing).

    python bench/load_while_ingesting.py                     # 20 req/s for 60 s
    python bench/load_while_ingesting.py --ocr-threads 1     # keep a core for queries
    python bench/load_while_ingesting.py --duration 10 --scans 4   # the CI size

Prints the figures and writes bench/results/load_while_ingesting.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from common import free_port

from scanrag.evaluate import percentile

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "What is the total due on invoice INV-2003?",
    "Who should questions about the invoice be sent to?",
    "When is the payment due?",
    "What did the committee review in memo loadmemo1?",
]
SEARCHES = ["supplier contracts warehouse", "Total due", "Drill bit 6mm", "audit deadline"]


@dataclass
class Sample:
    route: str
    started: float
    seconds: float
    status: int | None
    error: str | None = None


@dataclass
class Result:
    samples: list[Sample] = field(default_factory=list)
    ingest: dict = field(default_factory=dict)


def make_corpus(folder: Path, scans: int, memos: int) -> tuple[Path, Path]:
    """`memos` born-digital PDFs (indexed first) and `scans` invoice scans (ingested under load)."""
    from scanrag.testing import code_pdf, invoice

    seed, load = folder / "seed", folder / "scans"
    seed.mkdir(parents=True)
    load.mkdir(parents=True)
    for i in range(memos):
        code_pdf(seed / f"memo{i}.pdf", f"loadmemo{i}")
    for i in range(scans):
        sheet = invoice(number=f"INV-{2000 + i}", total=f"${1000 + 37 * i:,}.50")
        sheet.image(noise=6, seed=i).save(load / f"invoice{i}.png")
    return seed, load


def summary(samples: list[Sample]) -> dict:
    ms = [s.seconds * 1000 for s in samples if s.status == 200]
    return {
        "requests": len(samples),
        "errors": sum(s.status != 200 for s in samples),
        **{f"p{q}_ms": round(percentile(ms, q), 1) if ms else None for q in (50, 95, 99)},
        "max_ms": round(max(ms), 1) if ms else None,
        "mean_ms": round(statistics.fmean(ms), 1) if ms else None,
    }


async def load(url: str, rate: float, duration: float, timeout: float) -> list[Sample]:
    """Exactly rate × duration requests, request i sent at i / rate s (open loop)."""
    total = round(rate * duration)
    samples: list[Sample] = []
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        start = time.perf_counter()

        async def one(i: int) -> None:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            if i % 2:
                route, body = "/v1/search", {"query": SEARCHES[i // 2 % len(SEARCHES)], "top_k": 5}
            else:
                route, body = "/v1/query", {"question": QUESTIONS[i // 2 % len(QUESTIONS)]}
            sent = time.perf_counter()
            try:
                response = await client.post(route, json=body)
                ok = response.status_code == 200 and response.json()
                error = None if ok else response.text[:200]
                status = response.status_code
            except httpx.HTTPError as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            samples.append(Sample(route, sent - start, time.perf_counter() - sent, status, error))

        await asyncio.gather(*(one(i) for i in range(total)))
    return samples


def wait_ready(url: str, server: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with {server.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start")


def run(
    duration: float = 60,
    rate: float = 20,
    scans: int = 24,
    memos: int = 4,
    ocr_threads: int = 0,
    timeout: float = 30,
    workdir: Path | None = None,
) -> dict:
    """Run the benchmark once; returns the figures (also what the CI test asserts on)."""
    owned = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="scanrag-load-")) if owned else workdir
    try:
        seed, scans_dir = make_corpus(workdir / "docs", scans, memos)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SCANRAG_")}
        env.update(
            SCANRAG_DATA_DIR=str(workdir / "data"),
            SCANRAG_ALLOWED_ROOTS=json.dumps([str(workdir / "docs")]),
            SCANRAG_ACCESS_LOG="off",
        )
        if ocr_threads:  # unset: onnxruntime uses every core
            env["SCANRAG_OCR_THREADS"] = str(ocr_threads)
        scanrag = Path(sys.executable).parent / "scanrag"
        server = subprocess.Popen(
            [str(scanrag), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / "server.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        try:
            wait_ready(url, server, time.monotonic() + 180)
            with httpx.Client(base_url=url, timeout=600) as client:
                seeded = client.post("/v1/ingest?wait=true", json={"path": str(seed)})
                seeded.raise_for_status()
                client.post("/v1/query", json={"question": QUESTIONS[0]}).raise_for_status()
                job = client.post("/v1/ingest", json={"path": str(scans_dir)}).json()
                before = client.get(job["status_url"]).json()
                started = time.perf_counter()
                samples = asyncio.run(load(url, rate, duration, timeout))
                elapsed = time.perf_counter() - started
                after = client.get(job["status_url"]).json()
        finally:
            server.terminate()
            try:
                server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        by_route = {
            route: summary([s for s in samples if s.route == route])
            for route in ("/v1/query", "/v1/search")
        }
        return {
            "duration_s": duration,
            "target_rate": rate,
            "achieved_rate": round(len(samples) / elapsed, 2),
            "cpus": os.cpu_count(),
            "ocr_threads": ocr_threads or "all",
            **summary(samples),
            "routes": by_route,
            "error_samples": [s.error for s in samples if s.status != 200][:5],
            "ingest": {
                "scans": scans,
                "files_done_before_load": before["files_done"],
                "files_done_during_load": after["files_done"] - before["files_done"],
                "pages_done_during_load": after["pages_done"] - before["pages_done"],
                "status_after_load": after["status"],
                "busy_for_the_whole_load": after["status"] in ("queued", "running"),
            },
        }
    finally:
        if owned:
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of load")
    parser.add_argument("--rate", type=float, default=20, help="requests per second")
    parser.add_argument("--scans", type=int, default=24, help="scans ingested under load")
    parser.add_argument("--ocr-threads", type=int, default=0, help="0 = all cores")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "load_while_ingesting.json"
    )
    args = parser.parse_args()
    result = run(args.duration, args.rate, args.scans, ocr_threads=args.ocr_threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(args.out.read_text()) if args.out.exists() else {}
    runs[f"scans={args.scans},ocr_threads={result['ocr_threads']}"] = result
    args.out.write_text(json.dumps(runs, indent=2))
    q, s, ing = result["routes"]["/v1/query"], result["routes"]["/v1/search"], result["ingest"]
    print(
        f"{result['requests']} requests in {args.duration:g}s at {result['achieved_rate']} req/s "
        f"(target {args.rate:g}), {result['errors']} errors; "
        f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms\n"
        f"  /v1/query  p50 {q['p50_ms']} ms  p95 {q['p95_ms']} ms  p99 {q['p99_ms']} ms\n"
        f"  /v1/search p50 {s['p50_ms']} ms  p95 {s['p95_ms']} ms  p99 {s['p99_ms']} ms\n"
        f"  ingest under load: {ing['files_done_during_load']} scans "
        f"({ing['pages_done_during_load']} pages), still running at the end: "
        f"{ing['busy_for_the_whole_load']}; OCR threads: {result['ocr_threads']}, "
        f"cores: {result['cpus']}"
    )
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
