"""SIGKILL `scanrag serve` at random moments while uploads stream in and jobs are queued.

The same test CI runs (tests/test_api_restart.py: 2 kills), here with more kills: each trial
starts a server on the same data directory, checks that every job id acknowledged so far is
known, uploads new batches of 1-3 files and kills the server at a random moment; the last
trial stops it with SIGTERM instead. A final server must then finish every accepted job, and
every accepted file must be indexed exactly once (one manifest row, its document's points
exactly its chunks, no duplicate or orphan points).

    python bench/kill_serve.py                      # 20 kills
    python bench/kill_serve.py --trials 40 --seed 7

Writes bench/results/kill_serve.json.
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
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "kill_serve.json")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.unlink(missing_ok=True)
    env = {
        **os.environ,
        "API_KILL_TRIALS": str(args.trials),
        "API_KILL_SEED": str(args.seed),
        "API_KILL_RESULTS": str(args.out),
    }
    started = time.perf_counter()
    command = [sys.executable, "-m", "pytest", "--rootdir=tests", "-q", "-p", "no:warnings"]
    run = subprocess.run([*command, "tests/test_api_restart.py"], cwd=ROOT, env=env)
    seconds = round(time.perf_counter() - started, 1)
    stats = json.loads(args.out.read_text()) if args.out.exists() else {}
    stats.update(passed=run.returncode == 0, seconds=seconds, seed=args.seed)
    args.out.write_text(json.dumps(stats, indent=2))
    kills = [k for k in stats.get("kills", []) if k["signal"] == "KILL"]
    left = [k["jobs_left"] for k in kills]
    print(
        f"{len(kills)} SIGKILLs and 1 SIGTERM in {seconds}s: "
        f"{sum(k['batches_sent'] - k['acknowledged'] for k in kills)} uploads cut mid-request, "
        f"{sum(s.get('running', 0) for s in left)} kills with a job running, "
        f"{sum(k['files_indexed'] > 0 for k in kills)} after the server had indexed files "
        f"({sum(k['files_indexed'] for k in kills)} in all), "
        f"up to {max(s.get('queued', 0) + s.get('running', 0) for s in left)} unfinished jobs "
        f"at a kill ({stats.get('resumed_jobs')} jobs resumed at least once); "
        f"{stats.get('accepted_jobs')} jobs and {stats.get('accepted_files')} files accepted, "
        f"{stats.get('documents')} documents, {stats.get('points')} points after the last restart;"
        f" {'every accepted file indexed exactly once' if run.returncode == 0 else 'FAILED'}"
    )
    return run.returncode


if __name__ == "__main__":
    raise SystemExit(main())
