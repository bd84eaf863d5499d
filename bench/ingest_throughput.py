"""Ingest throughput and peak memory: scanned pages through `embedded`, against the raw OCR
engine on the same images in the same run, and born-digital PDFs through `pdf-text`.

    python bench/ingest_throughput.py [--pages 10] [--text-pages 100]
                                      [--out bench/results/ingest_throughput.json]
                                      [--plot docs/ingest_throughput.png]

Each mode runs in its own process, so that its peak RSS (`ru_maxrss`) is its own: models,
buffers and all. The processes load their models and handle one untimed page first.

Scanned pages (generated A4 invoices, two-column reports and forms at 200 dpi with scanner-like
grain, each page different, saved as JPEG):

  raw      rapidocr.RapidOCR(params={"Global.use_cls": False}) on the page decoded the way
           scanrag decodes it (decoding is not timed): the engine alone, the baseline
  parse    scanrag.parse(page.jpg, parser="embedded"): reading, hashing, decoding,
           RapidLayout, RapidOCR, lines into regions
  ingest   Index.ingest([page.jpg]) with parser="embedded", one index growing page by page:
           all of parse, plus storing the page image, chunking, MiniLM embeddings, BM25 terms
           and the Qdrant Edge upsert; the manifest and the parse cache

The three processes take the pages in lockstep: page i goes to each of them in turn (the
order rotating from page to page) while the other two wait, so that a change of load on the
machine hits all three alike; "vs raw" is the median over pages of time / raw time.

Born-digital PDF (one document of --text-pages pages, a heading and ~45 lines of 10 pt text a
page): `scanrag.parse(parser="pdf-text")` (best of 5) and `Index.ingest` with parser="pdf-text"
into a fresh index (best of 2); each in its own process too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    DOCS,
    RESULTS,
    describe,
    finish,
    machine,
    pyplot,
    rss_mb,
    save_plot,
    write_json,
)

SCANNED_MODES = ("raw", "parse", "ingest")
PDF_MODES = ("pdf-parse", "pdf-ingest")
LABELS = {
    "raw": "raw RapidOCR, decoded image",
    "parse": "scanrag.parse, embedded, JPEG",
    "ingest": "Index.ingest, embedded, JPEG",
    "pdf-parse": "scanrag.parse, pdf-text",
    "pdf-ingest": "Index.ingest, pdf-text",
}


# --- the worker processes -----------------------------------------------------------------


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def worker(mode: str, work: Path) -> None:
    """Serve one mode: answer "ready", then time each command read from stdin."""
    out = os.fdopen(os.dup(1), "w", buffering=1)  # results only; library prints go to stderr
    os.dup2(2, 1)
    pages = json.loads((work / "pages.json").read_text())
    run, prepare = _mode(mode, work, pages)
    prepare("warm")
    run("warm")
    out.write(json.dumps({"ready": True, "rss_mb": rss_mb()}) + "\n")
    for command in sys.stdin:
        command = command.strip()
        if command == "quit":
            break
        prepare(command)
        cpu, started = time.process_time(), time.perf_counter()
        run(command)
        seconds = time.perf_counter() - started
        out.write(json.dumps({"seconds": seconds, "cpu": time.process_time() - cpu}) + "\n")
    out.write(json.dumps({"peak_rss_mb": peak_rss_mb(), "rss_mb": rss_mb()}) + "\n")


def _mode(mode: str, work: Path, pages: dict[str, Any]) -> tuple[Callable, Callable]:
    """The timed call of a mode, and its untimed preparation; each is called with a page
    number, "run" (the born-digital PDF) or "warm"."""
    from scanrag.ingest.parsers.quiet import quiet_model_logs

    quiet_model_logs()

    def nothing(key: str) -> None:
        pass

    scanned = {"warm": pages["warm"], **{str(i): p for i, p in enumerate(pages["scanned"])}}
    if mode == "raw":
        import numpy as np
        from PIL import Image
        from rapidocr import RapidOCR

        engine = RapidOCR(params={"Global.use_cls": False, "Global.log_level": "warning"})
        decoded: dict[str, Any] = {}

        def decode(key: str) -> Any:
            with Image.open(scanned[key]) as image:
                return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])

        def run_raw(key: str) -> None:
            engine(decoded.pop(key))

        def prepare(key: str) -> None:  # decoding is outside the timed call
            decoded[key] = decode(key)

        return run_raw, prepare
    if mode == "parse":
        import scanrag
        from scanrag import Settings

        settings = Settings(parser="embedded")
        return lambda key: scanrag.parse(scanned[key], settings), nothing
    if mode == "ingest":
        from scanrag import Settings
        from scanrag.retrieval.index import Index

        index = Index(Settings(parser="embedded", data_dir=work / "index-scanned"))

        def run_ingest(key: str) -> None:
            report = index.ingest([scanned[key]])
            assert report.added == 1 and report.pages == 1, report

        return run_ingest, nothing
    if mode == "pdf-parse":
        import scanrag

        documents = {"warm": pages["warm_pdf"], "run": pages["text_pdf"]}
        return lambda key: scanrag.parse(documents[key], parser="pdf-text"), nothing
    if mode == "pdf-ingest":
        from scanrag import Settings
        from scanrag.retrieval.index import Index

        documents = {"warm": pages["warm_pdf"], "run": pages["text_pdf"]}
        encoder: list[Any] = []
        count = iter(range(1000))

        def run_pdf_ingest(key: str) -> None:
            # the model stays loaded between runs, as in a server
            index = Index(
                Settings(parser="pdf-text", data_dir=work / f"index-pdf-{next(count)}"),
                encoder=encoder[0] if encoder else None,
            )
            with index:
                report = index.ingest([documents[key]])
                assert report.added == 1 and report.pages > 0, report
                index.optimize()  # as `scanrag ingest` does (a no-op below 10k chunks)
            encoder[:] = [index.dense]

        return run_pdf_ingest, nothing
    raise ValueError(mode)


# --- the parent -----------------------------------------------------------------------------


class Worker:
    def __init__(self, mode: str, work: Path, log) -> None:
        self.mode = mode
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", mode, "--work", str(work)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            bufsize=1,
        )
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.mode} died; see its log")
        return json.loads(line)

    def call(self, command: str) -> dict[str, Any]:
        self.process.stdin.write(command + "\n")
        return self._read()

    def close(self) -> dict[str, Any]:
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        final = self._read()
        self.process.wait(timeout=60)
        return final


def generate(work: Path, count: int, text_pages: int) -> dict[str, Any]:
    from parse_speed import born_digital_pages, scanned_sheets

    from scanrag import testing

    sheets = scanned_sheets(count + 1)
    paths = []
    for i, sheet in enumerate(sheets):
        path = work / ("warm.jpg" if i == count else f"scan_{i + 1:02d}.jpg")
        sheet.image(noise=3, seed=i).save(path, quality=90, dpi=(200, 200))
        paths.append(str(path))
    text_pdf = testing.text_pdf(born_digital_pages(text_pages), work / "born_digital.pdf")
    warm_pdf = testing.text_pdf(born_digital_pages(2), work / "warm.pdf")
    pages = {
        "scanned": paths[:count],
        "warm": paths[count],
        "text_pdf": str(text_pdf),
        "warm_pdf": str(warm_pdf),
    }
    (work / "pages.json").write_text(json.dumps(pages))
    return pages


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    info = machine()
    started_all = time.perf_counter()
    print(f"generating {args.pages} scanned pages and a {args.text_pages}-page PDF in {work}")
    generate(work, args.pages, args.text_pages)
    log = (work / "workers.log").open("w")

    workers = {mode: Worker(mode, work, log) for mode in SCANNED_MODES}
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in SCANNED_MODES}
    for i in range(args.pages):
        shift = i % len(SCANNED_MODES)
        for mode in SCANNED_MODES[shift:] + SCANNED_MODES[:shift]:
            runs[mode].append(workers[mode].call(str(i)))
        print(
            f"  page {i + 1:>2}: "
            + "  ".join(
                f"{m} {runs[m][-1]['seconds']:.2f}s (cpu {runs[m][-1]['cpu']:.2f}s)"
                for m in SCANNED_MODES
            ),
            flush=True,
        )
    memory = {mode: {**w.ready, **w.close()} for mode, w in workers.items()}

    for mode, repeats in (("pdf-parse", 5), ("pdf-ingest", 2)):
        w = Worker(mode, work, log)
        runs[mode] = [w.call("run") for _ in range(repeats)]
        memory[mode] = {**w.ready, **w.close()}
        best = min(r["seconds"] for r in runs[mode])
        print(f"  {mode}: {args.text_pages} pages, best {best:.2f}s", flush=True)
    log.close()

    modes: dict[str, Any] = {}
    raw = [r["seconds"] for r in runs["raw"]]
    for mode in SCANNED_MODES:
        seconds = [r["seconds"] for r in runs[mode]]
        per_page = sum(seconds) / len(seconds)
        modes[mode] = {
            "label": LABELS[mode],
            "kind": "scanned",
            "pages": len(seconds),
            "s_per_page": round(per_page, 4),
            "pages_per_s": round(1 / per_page, 4),
            "cpu_s_per_page": round(sum(r["cpu"] for r in runs[mode]) / len(seconds), 4),
            "vs_raw_total": round(per_page / (sum(raw) / len(raw)), 4),
            "vs_raw_median_page": round(
                statistics.median(a / b for a, b in zip(seconds, raw, strict=True)), 4
            ),
            "seconds": [round(s, 4) for s in seconds],
            "rss_after_warmup_mb": memory[mode]["rss_mb"],
            "peak_rss_mb": memory[mode]["peak_rss_mb"],
        }
    for mode in PDF_MODES:
        best = min(runs[mode], key=lambda r: r["seconds"])
        modes[mode] = {
            "label": LABELS[mode],
            "kind": "born-digital",
            "pages": args.text_pages,
            "s_per_page": round(best["seconds"] / args.text_pages, 5),
            "pages_per_s": round(args.text_pages / best["seconds"], 2),
            "cpu_s_per_page": round(best["cpu"] / args.text_pages, 5),
            "seconds": [round(r["seconds"], 3) for r in runs[mode]],
            "rss_after_warmup_mb": memory[mode]["rss_mb"],
            "peak_rss_mb": memory[mode]["peak_rss_mb"],
        }
    from importlib.metadata import version

    return {
        "benchmark": "ingest_throughput",
        "command": "python bench/ingest_throughput.py " + " ".join(args.argv),
        "machine": finish(info),
        "versions": {
            name: version(name)
            for name in ("scanrag", "rapidocr", "rapid-layout", "onnxruntime", "pymupdf", "torch")
        },
        "setup": {
            "scanned_pages": args.pages,
            "page_size_px": [1654, 2339],
            "dpi": 200,
            "born_digital_pages": args.text_pages,
        },
        "modes": modes,
        "total_s": round(time.perf_counter() - started_all),
    }


def table(result: dict[str, Any]) -> str:
    setup, modes = result["setup"], result["modes"]
    head = (
        f"{'':32}{'pages':>6}{'s/page':>9}{'pages/s':>9}{'vs raw':>8}{'cpu s/page':>12}"
        f"{'RSS MB':>8}{'peak MB':>9}"
    )
    out = [
        f"ingest throughput: {setup['scanned_pages']} scanned A4 pages at 200 dpi (lockstep), "
        f"a {setup['born_digital_pages']}-page born-digital PDF",
        describe(result["machine"]),
        "",
        head,
    ]
    for mode, m in modes.items():
        if mode == "pdf-parse":
            out.append("")
        ratio = f"{m['vs_raw_median_page']:>7.2f}x" if "vs_raw_median_page" in m else f"{'':>8}"
        decimals = 3 if m["kind"] == "scanned" else 4
        out.append(
            f"{m['label']:32}{m['pages']:>6}{m['s_per_page']:>9.{decimals}f}"
            f"{m['pages_per_s']:>9.2f}{ratio}{m['cpu_s_per_page']:>12.3f}"
            f"{m['rss_after_warmup_mb']:>8.0f}{m['peak_rss_mb']:>9.0f}"
        )
    out += [
        "",
        "vs raw: median over pages of (time / raw engine time on the same page). RSS: resident",
        "memory of the mode's process after loading models and one warm-up page; peak: its",
        f"ru_maxrss at the end. Run time {result['total_s']} s.",
    ]
    return "\n".join(out)


def plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    modes = list(result["modes"].values())
    labels = [m["label"] for m in modes]
    colours = [
        "#888888"
        if m["label"].startswith("raw")
        else "#1f77b4"
        if m["kind"] == "scanned"
        else "#2ca02c"
        for m in modes
    ]
    fig, (speed, memory) = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    y = range(len(modes))
    speed.barh(y, [m["pages_per_s"] for m in modes], color=colours)
    speed.set_xscale("log")
    speed.set_xlim(right=max(m["pages_per_s"] for m in modes) * 10)
    speed.set_xlabel("pages per second (log scale)")
    for i, m in enumerate(modes):
        speed.text(m["pages_per_s"], i, f" {m['pages_per_s']:.2f}", va="center", fontsize=8)
    speed.set_yticks(list(y), labels)
    speed.invert_yaxis()
    memory.barh(y, [m["peak_rss_mb"] for m in modes], color=colours)
    memory.set_xlabel("peak RSS of the process (MB)")
    memory.set_xlim(right=max(m["peak_rss_mb"] for m in modes) * 1.15)
    for i, m in enumerate(modes):
        memory.text(m["peak_rss_mb"], i, f" {m['peak_rss_mb']:.0f}", va="center", fontsize=8)
    save_plot(fig, path, "Ingest throughput", result["machine"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=10, help="scanned pages (default 10)")
    parser.add_argument("--text-pages", type=int, default=100, help="born-digital pages")
    parser.add_argument("--out", type=Path, default=RESULTS / "ingest_throughput.json")
    parser.add_argument("--plot", type=Path, default=DOCS / "ingest_throughput.png")
    parser.add_argument("--plot-only", action="store_true", help="re-draw the plot from --out")
    parser.add_argument("--worker", choices=SCANNED_MODES + PDF_MODES, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.worker:
        worker(args.worker, args.work)
        return 0
    if args.plot_only:
        plot(json.loads(args.out.read_text()), args.plot)
        return 0
    if args.pages < 1 or args.text_pages < 1:
        parser.error("--pages and --text-pages must be at least 1")
    with tempfile.TemporaryDirectory(prefix="scanrag-ingest-bench-") as work:
        result = run(args, Path(work))
    print()
    print(table(result))
    write_json(args.out, result)
    plot(result, args.plot)
    print(f"\nwritten to {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
