"""OCR accuracy and speed of the embedded parser's profiles on labelled sets, without the
answerer: line recall and CER (as `scanrag eval` computes them) and word F1 against the
ground-truth lines, with parse seconds per page.

    python bench/ocr_accuracy.py [SET ...] [--profiles accurate fast] [--step 1]
                                 [--out bench/results/ocr_accuracy.json]

SET defaults to /work/shared/dev-eval and the three real-dev sets (funsd, sroie, xfund-zh).
Each file is parsed with `scanrag.parse` under each profile, in turn, file by file (so a
change of load on the machine hits the profiles alike); --step 3 takes every third file.

Word F1: the page's ground-truth words against the words of every line read on it, as
multisets (NFKC, lower case; each CJK character counts as a word, since Chinese has no
spaces), micro-averaged over the set: it scores the text read, whatever the line boxes are.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from common import RESULTS, describe, finish, machine, write_json

import scanrag
from scanrag import Settings
from scanrag.evaluate import load_truth, normalise, score_lines
from scanrag.ingest.model import Document

SHARED = Path("/work/shared")
SETS = [
    SHARED / "dev-eval",
    SHARED / "real-dev" / "funsd",
    SHARED / "real-dev" / "sroie",
    SHARED / "real-dev" / "xfund-zh",
]
CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def words(text: str) -> list[str]:
    out: list[str] = []
    for word in normalise(text).split():
        out.extend(list(word) if CJK.search(word) else [word])
    return out


def word_counts(truth: Any, document: Document) -> tuple[int, int, int]:
    """(words in common, ground-truth words, words read) over the document's labelled pages."""
    common = gold = read = 0
    for gt_page in truth.pages:
        page = document.page(gt_page.page)
        lines = [line for region in page.regions for line in region.lines] if page else []
        want = Counter(w for line in gt_page.lines for w in words(line.text))
        got = Counter(w for line in lines for w in words(line.text))
        common += sum((want & got).values())
        gold += sum(want.values())
        read += sum(got.values())
    return common, gold, read


def run_set(set_dir: Path, profiles: list[str], step: int) -> dict[str, dict[str, float]]:
    truth = load_truth(set_dir)
    if not truth:
        raise SystemExit(f"{set_dir}: no <name>.gt.json files, not a labelled set")
    settings = {name: Settings(parser="auto", ocr_profile=name) for name in profiles}
    totals = {name: Counter() for name in profiles}
    for name in profiles:  # models loaded and run once before timing
        scanrag.parse(set_dir / next(iter(truth.values())).file, settings[name])
    for number, gt in enumerate(sorted(truth.values(), key=lambda t: t.file)[::step]):
        order = profiles[number % len(profiles) :] + profiles[: number % len(profiles)]
        for name in order:
            started = time.perf_counter()
            document = scanrag.parse(set_dir / gt.file, settings[name])
            seconds = time.perf_counter() - started
            lines = score_lines(gt, document)
            common, gold, read = word_counts(gt, document)
            totals[name].update(
                lines=lines.lines,
                found=lines.found,
                cer_sum=lines.cer_sum,
                common=common,
                gold=gold,
                read=read,
                pages=len(document.pages),
                seconds=seconds,
            )
    out = {}
    for name, t in totals.items():
        precision = t["common"] / t["read"] if t["read"] else 0.0
        recall = t["common"] / t["gold"] if t["gold"] else 0.0
        out[name] = {
            "lines": t["lines"],
            "line_recall": round(t["found"] / t["lines"], 4),
            "cer": round(t["cer_sum"] / t["lines"], 4),
            "word_f1": round(2 * precision * recall / (precision + recall), 4)
            if precision + recall
            else 0.0,
            "pages": t["pages"],
            "s_per_page": round(t["seconds"] / t["pages"], 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="*", type=Path, default=SETS)
    parser.add_argument("--profiles", nargs="+", default=["accurate", "fast"])
    parser.add_argument("--step", type=int, default=1, help="every n-th file (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ocr_accuracy.json")
    args = parser.parse_args(argv)
    info = machine()
    results = {}
    for set_dir in args.sets:
        results[set_dir.name] = run_set(set_dir, args.profiles, args.step)
        for name, row in results[set_dir.name].items():
            print(
                f"{set_dir.name:10} {name:9} lines {row['lines']:>5}  recall "
                f"{row['line_recall']:.3f}  CER {row['cer']:.4f}  word F1 {row['word_f1']:.3f}"
                f"  {row['s_per_page']:.2f} s/page ({row['pages']} pages)",
                flush=True,
            )
    info = finish(info)
    print(describe(info))
    write_json(
        args.out,
        {
            "benchmark": "ocr_accuracy",
            "command": "python bench/ocr_accuracy.py " + " ".join(sys.argv[1:]),
            "machine": info,
            "step": args.step,
            "results": results,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
