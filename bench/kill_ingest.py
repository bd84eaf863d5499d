"""SIGKILL `scanrag ingest` at random moments, many times, over a larger folder.

The same test CI runs (tests/test_ingest_crash.py: 10 trials over 20 files), here with more
trials and files; after each kill and restart it checks no duplicate points, no orphan
points, every document marked done wholly searchable, and the manifest in step with the store.

    python bench/kill_ingest.py                      # 30 trials over 60 files
    python bench/kill_ingest.py --trials 50 --files 100 --seed 7

Writes bench/results/kill_ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--seed", type=int, default=20250611)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "kill_ingest.json")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "KILL_TRIALS": str(args.trials),
        "KILL_FILES": str(args.files),
        "KILL_SEED": str(args.seed),
        "KILL_RESULTS": str(args.out),
    }
    started = time.perf_counter()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--rootdir=tests",
            "-q",
            "-p",
            "no:warnings",
            "tests/test_ingest_crash.py",
        ],
        cwd=ROOT,
        env=env,
    )
    seconds = round(time.perf_counter() - started, 1)
    stats = json.loads(args.out.read_text()) if args.out.exists() else {}
    stats.update(passed=run.returncode == 0, seconds=seconds, seed=args.seed)
    args.out.write_text(json.dumps(stats, indent=2))
    kills = stats.get("kills", [])
    print(
        f"{len(kills)} kills over {args.files} files in {seconds}s: "
        f"{sum(k['killed'] for k in kills)} landed, "
        f"{sum(k['rows_changed'] == 0 for k in kills)} before the first write; "
        f"{stats.get('points_checked_after_kill', 0)} points checked right after the kills; "
        f"after the last restart {stats.get('documents_after_restart')} documents, "
        f"{stats.get('points_after_restart')} points; "
        f"{'no duplicates, no orphans, nothing lost' if run.returncode == 0 else 'FAILED'}"
    )
    return run.returncode


if __name__ == "__main__":
    raise SystemExit(main())
