"""While the server OCRs a folder of scans, queries and searches at 20 requests a second all
succeed (the bounded CI run of bench/load_while_ingesting.py: 10 s on loopback). Latency is
the benchmark's to report, not this test's to assert."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a minute of queries against a live ingest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "load_while_ingesting.py"


def load_bench():
    sys.path.insert(0, str(BENCH.parent))  # as `python bench/...` has it, for bench/common.py
    spec = importlib.util.spec_from_file_location("load_while_ingesting", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def test_queries_and_searches_at_20_per_second_all_succeed_during_an_ingest(tmp_path):
    result = load_bench().run(duration=10, rate=20, scans=3, memos=2, workdir=tmp_path)
    assert result["requests"] == 200
    assert result["errors"] == 0, result["error_samples"]
    assert {r: v["requests"] for r, v in result["routes"].items()} == {
        "/v1/query": 100,
        "/v1/search": 100,
    }
    assert result["achieved_rate"] >= 18  # the schedule held: an open loop, not back-pressure
    ingest = result["ingest"]
    assert ingest["files_done_before_load"] == 0  # the ingest was under way from the start
    assert ingest["busy_for_the_whole_load"] or ingest["files_done_during_load"] > 0
    assert ingest["status_after_load"] in ("running", "done")
