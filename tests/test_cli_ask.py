"""`scanrag ask --json` prints exactly one JSON document on stdout, the same one
POST /v1/query answers with; errors are one line on stderr."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import AMOUNT, free_port, memo_pdf
from seams import app_for, open_index

from scanrag.config import Settings

pytestmark = pytest.mark.slow  # runs the CLI in subprocesses

QUESTION = "What budget was approved for Project Falcon-31?"


def scanrag(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "scanrag"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A working directory whose memos/ folder holds the indexed memo."""
    folder = tmp_path_factory.mktemp("work")
    (folder / "memos").mkdir()
    memo_pdf(folder / "memos" / "memo.pdf")
    return folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, work) -> Path:
    folder = work / "memos"
    data = tmp_path_factory.mktemp("cli-data")
    with open_index(Settings(data_dir=data)) as index:
        assert index.ingest([folder]).added == 1
    return data


def test_ask_json_prints_the_same_document_as_the_query_api(data_dir):
    result = scanrag("ask", QUESTION, "--data-dir", str(data_dir), "--top-k", "3", "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)  # one JSON document and nothing else on stdout
    assert AMOUNT in printed["answer"]
    assert printed["citations"] and set(printed["citations"][0]) >= {
        "n", "doc_id", "source", "page", "region_id", "label", "bbox", "bbox_norm",
        "page_width", "page_height", "text", "score", "lines", "crop_url",
        "page_image_url", "highlight_url",
    }  # fmt: skip

    with TestClient(app_for(Settings(data_dir=data_dir))) as client:
        served = client.post("/v1/query", json={"question": QUESTION, "top_k": 3}).json()
    assert printed == served


def test_ask_prints_the_answer_and_each_citation_with_its_lines_and_no_noise(data_dir, work):
    result = scanrag("ask", QUESTION, "--data-dir", str(data_dir), cwd=work)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no model-loading bars or logs
    answer, first, *lines = result.stdout.splitlines()
    assert AMOUNT in answer and answer.endswith("[1]")
    # the source relative to the working directory, then the region and its box
    assert re.fullmatch(r"  \[1\] memos/memo\.pdf page 1 \w+ bbox=\d+,\d+,\d+,\d+", first)
    assert any(AMOUNT in line and re.search(r" at \d+,\d+,\d+,\d+$", line) for line in lines)


def test_ask_with_an_unreachable_model_fails_with_one_line_naming_the_url(data_dir):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = scanrag(
        "ask", QUESTION, "--data-dir", str(data_dir), "--answerer", "openai",
        "--llm-url", url, "--json",
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and url in errors[0]
    assert "Traceback" not in result.stderr
