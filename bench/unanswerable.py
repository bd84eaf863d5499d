"""Questions a labelled set cannot answer: how often the answerer says "not found" to them.

    python bench/unanswerable.py SET_DIR [SET_DIR...] [--per-doc 5] [--data-dir DIR]
                                 [--out bench/results/unanswerable.json]

For every document of a set, the questions of *other* documents whose field name (the quoted
"X" of 'What is the value of the field "X"?', “X”的内容是什么？) appears nowhere in this
document's ground-truth text are asked again about this document, with a filter on its file
(as `scanrag eval` asks a `"scope": "document"` question): the field is not on the page, so
the only right answer is "not found". Up to --per-doc such questions per document, chosen
reproducibly. The set's own questions are scored in the same index, so a rule that refuses
more cannot hide a collapse of the answerable figures: both are printed and written.

The generated questions live in a temporary copy of the set (documents linked, not copied)
and never in the project; the JSON keeps figures only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, describe, finish, machine, write_json

from scanrag.cli import format_eval
from scanrag.config import Settings
from scanrag.evaluate import EvalReport, load_questions, load_truth, run_eval
from scanrag.ingest.parsers.quiet import quiet_model_logs
from scanrag.retrieval.questions import normal, understand


def unanswerable(set_dir: Path, per_doc: int) -> list[dict[str, object]]:
    """qa.jsonl rows: other documents' field questions whose field this document lacks."""
    truth = load_truth(set_dir)
    questions = load_questions(set_dir)
    out: list[dict[str, object]] = []
    for name, gt in sorted(truth.items()):
        text = normal(" ".join(line.text for page in gt.pages for line in page.lines))
        asked: set[str] = set()
        candidates = []
        for question in questions:
            key = understand(question.question).key
            if question.file == name or not key or not normal(key):
                continue
            if normal(key) in text or normal(key) in asked:
                continue
            asked.add(normal(key))
            candidates.append(question.question)
        candidates.sort(key=lambda q: hashlib.sha256(f"{name}\n{q}".encode()).hexdigest())
        for question_text in candidates[:per_doc]:
            out.append(
                {
                    "file": name,
                    "question": question_text,
                    "answer": "\u0000",  # never contained in an answer: only "not found" counts
                    "page": 1,
                    "evidence_bbox": [0, 0, 1, 1],
                    "scope": "document",
                }
            )
    return out


def linked_set(set_dir: Path, rows: list[dict[str, object]], into: Path) -> Path:
    """A copy of the set whose documents and labels are links and whose qa.jsonl is `rows`."""
    into.mkdir(parents=True)
    for path in set_dir.iterdir():
        if path.is_file() and path.name != "qa.jsonl":
            (into / path.name).symlink_to(path.resolve())
    with (into / "qa.jsonl").open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    return into


def figures(report: EvalReport) -> dict[str, float]:
    overall = report.retrieval.get("all")
    return {
        "questions": report.answers["all"].questions if report.answers else 0,
        "hit_at_1": overall.hit_at_1 if overall else 0.0,
        "contains": report.answer_contains,
        "not_found": report.answer_not_found,
        "citation_hit": report.citation_hit,
        "mean_iou": report.mean_iou,
        "query_p95_ms": report.query_p95_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set_dirs", nargs="+", type=Path)
    parser.add_argument("--per-doc", type=int, default=5, help="questions per document")
    parser.add_argument(
        "--data-dir",
        type=Path,
        action="append",
        help="reuse this index (one per set, in order): cached parses, no OCR",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "unanswerable.json")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    quiet_model_logs()
    info = machine()
    started = time.perf_counter()
    results = {}
    for number, set_dir in enumerate(args.set_dirs):
        data_dir = args.data_dir[number] if args.data_dir else None
        rows = unanswerable(set_dir, args.per_doc)
        with tempfile.TemporaryDirectory(prefix="scanrag-unanswerable-") as scratch:
            own = run_eval(set_dir, Settings(), data_dir=data_dir, per_doc=True)
            asked = linked_set(set_dir, rows, Path(scratch) / set_dir.name)
            none = run_eval(asked, Settings(), data_dir=data_dir, per_doc=True)
        print(format_eval(own))
        print(
            f"\nunanswerable: {len(rows)} questions about fields that are on other documents "
            f"only; not found {none.answer_not_found:.3f}\n"
        )
        results[str(set_dir)] = {"answerable": figures(own), "unanswerable": figures(none)}
    seconds = round(time.perf_counter() - started, 1)
    info = finish(info)
    print(f"{describe(info)}; {seconds} s in all")
    command = " ".join(sys.argv[1:]) if argv is None else " ".join(argv)
    write_json(
        args.out,
        {
            "benchmark": "unanswerable",
            "command": f"python bench/unanswerable.py {command}".strip(),
            "machine": info,
            "seconds": seconds,
            "sets": results,
        },
    )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
