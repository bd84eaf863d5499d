"""`scanrag mcp`: the official MCP client library drives the real server — spawned as the
`scanrag` console script over stdio, run standalone over streamable HTTP with an API key, and
mounted in `scanrag serve` at /mcp behind the same key — over an invoice scan rendered here.
Its tools answer with the HTTP API's own objects: `ask` gives the citations of /v1/query
(page, region id, boxes), `get_region_image` the region's crop."""

from __future__ import annotations

import asyncio
import base64
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

pytest.importorskip("mcp.server.mcpserver")  # mcp 2.x (the `mcp` extra)

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import ImageContent

sys.path.insert(0, str(Path(__file__).resolve().parent))

from doors import KEY, TOTAL, TOTAL_QUESTION, console_script, copy_of, index_scans
from fakes import free_port, live_server
from seams import app_for, open_index

from scanrag.api import mcp_server
from scanrag.config import Settings
from scanrag.ingest.model import BBox
from scanrag.testing import invoice

SHEET = invoice()
TOOLS = {"search", "ask", "get_region_image", "list_documents"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("mcp")
    index_scans({"invoice.png": SHEET}, root / "scans", root / "data")
    return root / "data"


def session(client: Any) -> dict[str, Any]:
    """What a client sees of the server, through every tool."""

    async def run() -> dict[str, Any]:
        async with client as mcp:
            seen: dict[str, Any] = {"tools": {t.name: t for t in (await mcp.list_tools()).tools}}
            seen["ask"] = await mcp.call_tool("ask", {"question": TOTAL_QUESTION})
            region_id = seen["ask"].structured_content["citations"][0]["region_id"]
            seen["image"] = await mcp.call_tool("get_region_image", {"region_id": region_id})
            seen["search"] = await mcp.call_tool("search", {"query": "total due", "top_k": 3})
            seen["documents"] = await mcp.call_tool("list_documents", {})
            seen["no region"] = await mcp.call_tool("get_region_image", {"region_id": "r0"})
            seen["bad filter"] = await mcp.call_tool(
                "ask", {"question": "total?", "filters": {"page": 0}}
            )
            seen["other doc"] = await mcp.call_tool(
                "ask", {"question": TOTAL_QUESTION, "filters": {"doc_id": "0" * 16}}
            )
            return seen

    return asyncio.run(run())


def http_client(url: str, key: str | None) -> Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300))
    return Client(streamable_http_client(url, http_client=http))


def check_session(seen: dict[str, Any]) -> None:
    """Every tool of one session answered as the HTTP API would."""
    assert set(seen["tools"]) == TOOLS
    search_schema = seen["tools"]["search"].input_schema
    assert {"query", "top_k", "filters"} <= set(search_schema["properties"])
    assert all(tool.annotations.read_only_hint for tool in seen["tools"].values())

    ask = seen["ask"]
    assert not ask.is_error
    answer = ask.structured_content
    assert TOTAL in answer["answer"] and "[1]" in answer["answer"]
    (citation,) = answer["citations"]
    drawn = SHEET.find(TOTAL).bbox
    assert citation["page"] == 1 and citation["label"] == "text"
    assert BBox(*citation["bbox"]).coverage_of(drawn) > 0.8  # the region holds the amount
    assert [line["text"] for line in citation["lines"]] == [TOTAL]
    assert BBox(*citation["lines"][0]["bbox"]).iou(drawn) > 0.5
    assert citation["bbox_norm"] == list(BBox(*citation["bbox"]).to_norm(1654, 2339))
    text = ask.content[0].text  # for models that read text only
    assert answer["answer"] in text and citation["region_id"] in text

    (image,) = seen["image"].content
    assert isinstance(image, ImageContent) and image.mime_type == "image/jpeg"
    crop = Image.open(io.BytesIO(base64.b64decode(image.data)))
    x0, y0, x1, y1 = citation["bbox"]
    assert crop.size == (x1 - x0, y1 - y0)

    hits = seen["search"].structured_content["hits"]
    assert hits[0]["doc_id"] == citation["doc_id"]
    region = next(r for h in hits for r in h["regions"] if r["region_id"] == citation["region_id"])
    assert region["bbox"] == citation["bbox"] and region["page"] == 1

    (document,) = seen["documents"].structured_content["documents"]
    assert document["doc_id"] == citation["doc_id"] and document["status"] == "done"

    assert seen["no region"].is_error
    assert "no region 'r0'" in seen["no region"].content[0].text
    assert seen["bad filter"].is_error and "page" in seen["bad filter"].content[0].text
    other = seen["other doc"].structured_content
    assert other["citations"] == [] and TOTAL not in other["answer"]


def test_stdio_server_spawned_by_an_mcp_client_answers_with_cited_regions(data_dir, tmp_path):
    params = StdioServerParameters(
        command=console_script(),
        args=["mcp", "--data-dir", str(copy_of(data_dir, tmp_path / "data"))],
        env=dict(os.environ),  # the client passes on only HOME, PATH, ... by default
    )
    check_session(session(Client(params)))


def test_standalone_http_server_needs_the_key_and_answers_like_stdio(data_dir, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    args = ["mcp", "--transport", "http", "--port", str(port), "--data-dir"]
    server = subprocess.Popen(
        [console_script(), *args, str(copy_of(data_dir, tmp_path / "data"))],
        env={**os.environ, "SCANRAG_API_KEY": KEY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read().decode()
            try:
                refused = httpx.post(url, json={}, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "scanrag mcp --transport http did not start"
                time.sleep(0.2)
        assert refused.status_code == 401
        assert refused.json()["detail"].startswith("missing or wrong API key")
        check_session(session(http_client(url, KEY)))
        # stateless: no server-sent stream to hold open (405, as the specification allows)
        assert httpx.get(url, headers={"X-API-Key": KEY}, timeout=10).status_code == 405
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_serve_mounts_mcp_behind_its_key_with_the_citations_of_the_query_api(
    data_dir, tmp_path
):
    settings = Settings(data_dir=copy_of(data_dir, tmp_path / "data"), api_key=KEY)
    with live_server(app_for(settings)) as base:
        seen = session(http_client(f"{base}/mcp", KEY))
        refused = httpx.post(f"{base}/mcp", json={}, headers={"X-API-Key": "wrong"})
        no_stream = httpx.get(f"{base}/mcp", headers={"X-API-Key": KEY}, timeout=10)
        query = httpx.post(
            f"{base}/v1/query", json={"question": TOTAL_QUESTION}, headers={"X-API-Key": KEY}
        )
    check_session(seen)
    assert refused.status_code == 401 and no_stream.status_code == 405
    assert seen["ask"].structured_content == query.json()


def test_without_the_mcp_package_the_command_says_what_to_install(tmp_path):
    blocker = tmp_path / "blocked" / "mcp"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('mcp is not installed')\n")
    env = {**os.environ, "PYTHONPATH": str(blocker.parent)}
    done = subprocess.run(
        [console_script(), "mcp", "--data-dir", str(tmp_path / "data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip() == (
        "error: the MCP server needs the mcp package (2.x): pip install 'scanrag[mcp]'"
    )
    assert not (tmp_path / "data").exists()  # nothing written before the check


def test_without_the_mcp_package_serve_answers_mcp_clients_what_to_install(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(mcp_server, "MCPServer", None)  # as when `import mcp` failed
    with TestClient(app_for(Settings(data_dir=tmp_path))) as client:
        response = client.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        health = client.get("/healthz")
    assert response.status_code == 501
    assert response.json()["detail"] == mcp_server.MISSING
    assert health.status_code == 200


def test_a_data_dir_held_by_another_process_fails_at_start_with_one_line(
    data_dir, tmp_path
):
    held = copy_of(data_dir, tmp_path / "data")
    with open_index(data_dir=held) as index:
        index.search("total", 1)  # the store is open: its directory lock is held
        done = subprocess.run(
            [console_script(), "mcp", "--data-dir", str(held)],
            env=dict(os.environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: the index at") and "open in another scanrag process" in line
