"""Answers and citations through the HTTP API on a labelled set, and query latency.

    python bench/query_eval.py [SET_DIR] [--data-dir D] [--top-k 5] [--rounds 3]
                               [--out bench/results/query_dev_eval.json]

SET_DIR (default /work/shared/dev-eval) holds documents, `<name>.gt.json` and `qa.jsonl` (see
scanrag.evaluate). The set is ingested with `Index.ingest` (into --data-dir when given, so a
second run reuses the parsed and indexed documents; else a temp dir), then the app from
`scanrag.api.app.create_app` is started and every question goes through `POST /v1/query`
{"question", "top_k"} with the extractive answerer — the path a client takes.

Scores, per question:

  cite      a cited region box or cited line box from the right file and page covers at least
            50 % of the question's evidence_bbox (scanrag.evaluate.evidence_hit)
  line      the same with the cited *line* boxes only (the extractive answerer cites lines)
  contains  answer_key(gold) is contained in answer_key(answer)
  not found the answer has no citations ("the documents do not say")

Latency is the wall time of one `POST /v1/query` seen by the client (in-process ASGI, no
network), over `--rounds` rounds of all questions after one untimed warm-up round. Targets
from the query issue: cite ≥ 0.90, contains ≥ 0.70, p95 ≤ 150 ms on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import describe, finish, machine
from fastapi.testclient import TestClient

from scanrag import Settings
from scanrag.api.app import create_app
from scanrag.evaluate import (
    answer_key,
    evidence_hit,
    language,
    load_questions,
    load_truth,
    percentile,
    scale_box,
)
from scanrag.ingest.parsers.quiet import quiet_model_logs
from scanrag.retrieval.answer import Citation
from scanrag.retrieval.index import Index

HERE = Path(__file__).resolve().parent
DEFAULT_SET = Path("/work/shared/dev-eval")
TARGETS = {"cite": 0.90, "contains": 0.70, "p95_ms": 150.0}


def line_hit(question: Any, citations: list[Citation], truth: Any) -> bool:
    """A cited line box (not the region box) of the right file and page covers the evidence."""
    size = next(((p.width, p.height) for p in truth.pages if p.page == question.page), None)
    for citation in citations:
        if Path(citation.source).name != question.file or citation.page != question.page:
            continue
        for line in citation.lines:
            box = line.bbox
            if size:
                box = scale_box(box, (citation.page_width, citation.page_height), size)
            if box.coverage_of(question.evidence_bbox) >= 0.5:
                return True
    return False


def ingest(set_dir: Path, data_dir: Path, settings: Settings) -> dict[str, Any]:
    started = time.perf_counter()
    with Index(settings, data_dir=data_dir) as index:
        report = index.ingest([set_dir])
    return {
        "added": report.added,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "failed": report.failed,
        "pages_parsed": report.pages,
        "seconds": round(time.perf_counter() - started, 1),
        "errors": [error.error for error in report.errors],
    }


def run(set_dir: Path, data_dir: Path, top_k: int, rounds: int) -> dict[str, Any]:
    info = machine()
    truth = load_truth(set_dir)
    questions = load_questions(set_dir)
    # no access log on stderr: the table is the output
    settings = Settings(data_dir=data_dir, answerer="extractive", access_log="off")
    ingested = ingest(set_dir, data_dir, settings)
    print(f"ingest: {ingested}", file=sys.stderr)

    rows: list[dict[str, Any]] = []
    latencies: dict[int, list[float]] = {i: [] for i in range(len(questions))}
    with TestClient(create_app(settings)) as client:

        def ask(question: str) -> tuple[dict[str, Any], float]:
            started = time.perf_counter()
            response = client.post("/v1/query", json={"question": question, "top_k": top_k})
            elapsed = time.perf_counter() - started
            response.raise_for_status()
            return response.json(), elapsed

        for question in questions:  # round 0: scored, not timed (warm-up)
            body, _ = ask(question.question)
            citations = [Citation.model_validate(c) for c in body["citations"]]
            gt = truth.get(question.file)
            rows.append(
                {
                    "file": question.file,
                    "lang": language(question.question),
                    "question": question.question,
                    "gold": question.answer,
                    "answer": body["answer"],
                    "cite": any(evidence_hit(question, c.source, [c], gt) for c in citations),
                    "line": gt is not None and line_hit(question, citations, gt),
                    "contains": answer_key(question.answer) in answer_key(body["answer"]),
                    "not_found": not citations,
                }
            )
        for _ in range(rounds):
            for i, question in enumerate(questions):
                _, elapsed = ask(question.question)
                latencies[i].append(elapsed)

    groups: dict[str, Any] = {}
    for key in ("all", "en", "zh"):
        chosen = [i for i, row in enumerate(rows) if key in ("all", row["lang"])]
        if not chosen:
            continue
        n = len(chosen)
        times = [t for i in chosen for t in latencies[i]]
        groups[key] = {
            "questions": n,
            "cite": round(sum(rows[i]["cite"] for i in chosen) / n, 4),
            "line": round(sum(rows[i]["line"] for i in chosen) / n, 4),
            "contains": round(sum(rows[i]["contains"] for i in chosen) / n, 4),
            "not_found": round(sum(rows[i]["not_found"] for i in chosen) / n, 4),
            "p50_ms": round(percentile(times, 50) * 1000, 1),
            "p95_ms": round(percentile(times, 95) * 1000, 1),
        }
    overall = groups["all"]
    return {
        "set": str(set_dir),
        "route": "POST /v1/query",
        "answerer": "extractive",
        "top_k": top_k,
        "rounds": rounds,
        "ingest": ingested,
        "scores": groups,
        "targets": TARGETS,
        "meets_targets": {
            "cite": overall["cite"] >= TARGETS["cite"],
            "contains": overall["contains"] >= TARGETS["contains"],
            "p95_ms": overall["p95_ms"] <= TARGETS["p95_ms"],
        },
        "command": "python bench/query_eval.py " + " ".join(sys.argv[1:]),
        "machine": finish(info),
        "misses": [row for row in rows if not (row["cite"] and row["contains"])],
    }


def table(result: dict[str, Any]) -> str:
    head = (
        f"{'':<8}{'questions':>10}{'cite':>8}{'line':>8}{'contains':>10}"
        f"{'not found':>11}{'p50 ms':>9}{'p95 ms':>9}"
    )
    out = [
        f"{result['set']}: POST /v1/query, extractive, top_k={result['top_k']}, "
        f"latency over {result['rounds']} rounds after a warm-up",
        head,
    ]
    for key, s in result["scores"].items():
        out.append(
            f"{key:<8}{s['questions']:>10}{s['cite']:>8.3f}{s['line']:>8.3f}{s['contains']:>10.3f}"
            f"{s['not_found']:>11.3f}{s['p50_ms']:>9.1f}{s['p95_ms']:>9.1f}"
        )
    targets = result["targets"]
    met = result["meets_targets"]
    out.append(
        f"targets: cite ≥ {targets['cite']:.2f} {'ok' if met['cite'] else 'MISSED'}, "
        f"contains ≥ {targets['contains']:.2f} {'ok' if met['contains'] else 'MISSED'}, "
        f"p95 ≤ {targets['p95_ms']:.0f} ms {'ok' if met['p95_ms'] else 'MISSED'}"
    )
    out.append(describe(result["machine"]))
    for row in result["misses"]:
        flags = ",".join(k for k in ("cite", "contains") if not row[k]) + " missed"
        out.append(f"  {flags}: {row['question']} gold={row['gold']!r} got={row['answer']!r}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set_dir", nargs="?", type=Path, default=DEFAULT_SET)
    parser.add_argument("--data-dir", type=Path, help="Keep (and reuse) the index here.")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="Timed rounds of all questions.")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "query_dev_eval.json")
    args = parser.parse_args()
    if not (args.set_dir / "qa.jsonl").exists():
        parser.error(f"{args.set_dir} has no qa.jsonl: not a labelled set")
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    quiet_model_logs()

    with tempfile.TemporaryDirectory(prefix="scanrag-query-eval-") as scratch:
        result = run(args.set_dir, args.data_dir or Path(scratch), args.top_k, args.rounds)
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
