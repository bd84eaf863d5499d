"""Memory and time of the API's image operations on a huge page (pixel budgets).

Indexes one PDF whose single page renders at 12000 × 12000 pixels (144 megapixels, under the
default max_pixels), then, each in a fresh process, serves one request through the app and
reports how much it raised the process's peak RSS (Linux: VmHWM, reset just before) and how
long it took: the plain page, a highlighted page (`?boxes=`), a highlighted region, a crop.

    python bench/image_budget.py                 # writes bench/results/image_budget.json
    python bench/image_budget.py --side 8000     # a smaller page
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymupdf

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = {
    "page": "/v1/documents/{doc}/pages/1/image",
    "boxes": "/v1/documents/{doc}/pages/1/image?boxes=100,100,9000,9000;500,500,2000,2000",
    "highlight": "/v1/documents/{doc}/pages/1/image?highlight={doc}:p1:r0",
    "crop": "/v1/regions/{doc}:p1:r0/crop",
}


def build(data: Path, side: int) -> str:
    """Index a one-page PDF that renders at side × side pixels at 200 dpi; its doc id."""
    from scanrag.retrieval.index import Index
    from scanrag.testing import pdf_paragraph, text_pdf

    points = side * 72 / 200
    line = pdf_paragraph(72, 90, "Huge page hugetoken with one line.", 450)
    doc = pymupdf.open(text_pdf([line], data.parent / "huge.pdf"))
    doc[0].set_mediabox(pymupdf.Rect(0, 0, points, points))
    doc.save(data.parent / "huge-page.pdf")
    with Index(data_dir=data, parser="pdf-text") as index:
        report = index.ingest([data.parent / "huge-page.pdf"])
        assert report.added == 1, report.errors
        return index.documents()[0].doc_id


def memory_kb(field: str) -> int:
    """VmRSS (now) or VmHWM (the peak since the last reset) of this process, in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def one_request(data: Path, url: str) -> None:
    """In this process: start the app, serve `url` once, print the peak RSS it added."""
    from fastapi.testclient import TestClient

    from scanrag.api.app import create_app
    from scanrag.config import Settings

    with TestClient(create_app(Settings(data_dir=data, access_log="off"))) as client:
        client.get("/healthz")
        Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak restarts from here
        before = memory_kb("VmRSS")
        started = time.perf_counter()
        response = client.get(url)
        seconds = time.perf_counter() - started
        peak = memory_kb("VmHWM")
    figures = {
        "status": response.status_code,
        "bytes": len(response.content),
        "seconds": round(seconds, 3),
        "peak_rss_added_mb": (peak - before) // 1024,
    }
    print(json.dumps(figures))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=12000)
    out = ROOT / "bench" / "results" / "image_budget.json"
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--request", help=argparse.SUPPRESS)  # internal: one request
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.request:
        one_request(args.data, args.request)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        doc = build(data, args.side)
        results = {"side": args.side, "load": os.getloadavg()[0]}
        for name, template in REQUESTS.items():
            url = template.format(doc=doc)
            run = subprocess.run(
                [sys.executable, __file__, "--request", url, "--data", str(data)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            results[name] = json.loads(run.stdout.strip().splitlines()[-1])
            print(f"{name:10} {results[name]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
