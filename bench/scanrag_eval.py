"""`scanrag eval` on a labelled set, with the machine and its load recorded beside the report.

    python bench/scanrag_eval.py [SET_DIR] [--parser NAME] [--k 5]
                                 [--out bench/results/scanrag_eval_dev_eval.json]

The same `scanrag.evaluate.run_eval` as `scanrag eval SET_DIR --json`, in a fresh temporary
data dir (so parse time is measured), printed with the CLI's own table. SET_DIR defaults to
/work/shared/dev-eval. What each figure means: README, "Evaluation".
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from common import RESULTS, describe, finish, machine, write_json

from scanrag.cli import format_eval
from scanrag.config import Settings
from scanrag.evaluate import run_eval
from scanrag.ingest.parsers.quiet import quiet_model_logs

DEFAULT_SET = Path("/work/shared/dev-eval")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set_dir", nargs="?", type=Path, default=DEFAULT_SET)
    parser.add_argument("--parser", default="auto", help="parser name (default auto)")
    parser.add_argument("--k", type=int, default=5, help="chunks retrieved per question")
    parser.add_argument("--out", type=Path, default=RESULTS / "scanrag_eval_dev_eval.json")
    args = parser.parse_args(argv)
    if not (args.set_dir / "qa.jsonl").exists():
        parser.error(f"{args.set_dir} has no qa.jsonl: not a labelled set")
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    quiet_model_logs()
    info = machine()
    started = time.perf_counter()
    report = run_eval(args.set_dir, Settings(parser=args.parser), k=args.k)
    seconds = round(time.perf_counter() - started, 1)
    info = finish(info)
    print(format_eval(report))
    print(f"\n{describe(info)}; {seconds} s in all")
    command = " ".join(sys.argv[1:]) if argv is None else " ".join(argv)
    write_json(
        args.out,
        {
            "benchmark": "scanrag_eval",
            "command": f"python bench/scanrag_eval.py {command}".strip(),
            "equivalent": f"scanrag eval {args.set_dir} --parser {args.parser} --k {args.k} --json",
            "machine": info,
            "seconds": seconds,
            "report": report.model_dump(),
        },
    )
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
