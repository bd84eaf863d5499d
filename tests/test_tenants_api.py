"""Tenants over real HTTP: a uvicorn server with two tenants (and the default one), each
uploading with its own key. Every route answers another tenant's ids exactly as unknown ones
(404), searches, answers, chat completions and MCP tools see only the caller's documents, the
owner reads everything of its own, metadata is returned and filtered on and changed by PATCH,
and the limits answer 429 with Retry-After.

The same scan uploaded by both tenants is two documents; OCR of it is the slow part, so the
uploads happen once for the module.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import live_server
from seams import app_for

from scanrag.config import Settings
from scanrag.testing import code_pdf, invoice

TOTAL_QUESTION = "What is the total due on invoice INV-1001?"
TOTAL = "$2,448.50"
KEYS = {"acme": ["acme-key-1", "acme-key-2"], "globex": ["globex-key-1"]}
DEFAULT_KEY = "default-key-9"
UNKNOWN_DOC = "0123456789abcdef"


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


INVOICE = png(invoice().image())


def client(base: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=300)


def upload(api: httpx.Client, name: str, data: bytes, metadata: dict[str, Any]) -> dict:
    """Upload one file with metadata and wait for its job to finish."""
    kind = "application/pdf" if name.endswith(".pdf") else "image/png"
    response = api.post(
        "/v1/documents?wait=true",
        files=[("files", (name, data, kind))],
        data={"metadata": json.dumps(metadata)},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["job"]["status"] == "done" and not body["job"]["errors"], body
    return body


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Two tenants' uploads on one live server; yields the base URL and what was uploaded."""
    root = tmp_path_factory.mktemp("tenants-api")
    memo = code_pdf(root / "memo.pdf", "quillfeather").read_bytes()
    settings = Settings(
        data_dir=root / "data",
        api_key=DEFAULT_KEY,
        api_keys=KEYS,
        wait_timeout=600,
        access_log="off",
    )
    with live_server(app_for(settings)) as base:
        acme, globex = client(base, "acme-key-1"), client(base, "globex-key-1")
        jobs = {
            "acme": upload(acme, "invoice.png", INVOICE, {"dept": "finance", "year": 2019}),
            "acme-memo": upload(acme, "memo.pdf", memo, {"dept": "hr", "year": 2020}),
            "globex": upload(globex, "invoice.png", INVOICE, {"dept": "ops"}),
        }
        ids = {
            tenant: {Path(d["source"]).name: d["doc_id"] for d in api.get("/v1/documents").json()}
            for tenant, api in (("acme", acme), ("globex", globex))
        }
        yield {"base": base, "jobs": jobs, "ids": ids, "acme": acme, "globex": globex}
        acme.close()
        globex.close()


def region_of(api: httpx.Client) -> tuple[str, str]:
    """The caller's cited region for the total: (doc_id, region_id)."""
    answer = api.post("/v1/query", json={"question": TOTAL_QUESTION}).json()
    assert TOTAL in answer["answer"], answer
    citation = answer["citations"][0]
    return citation["doc_id"], citation["region_id"]


def test_the_same_scan_uploaded_by_two_tenants_is_two_documents(server):
    ids = server["ids"]
    assert set(ids["acme"]) == {"invoice.png", "memo.pdf"}
    assert set(ids["globex"]) == {"invoice.png"}
    assert ids["acme"]["invoice.png"] != ids["globex"]["invoice.png"]
    with client(server["base"], "acme-key-2") as rotated:  # a tenant's second key
        assert {d["doc_id"] for d in rotated.get("/v1/documents").json()} == set(
            ids["acme"].values()
        )
    with client(server["base"], DEFAULT_KEY) as default:  # SCANRAG_API_KEY: the default tenant
        assert default.get("/v1/documents").json() == []
        assert default.post("/v1/search", json={"query": "total due"}).json()["hits"] == []
    listed = {Path(d["source"]).name: d for d in server["acme"].get("/v1/documents").json()}
    assert listed["invoice.png"]["metadata"] == {"dept": "finance", "year": 2019}
    assert listed["memo.pdf"]["metadata"] == {"dept": "hr", "year": 2020}


def test_another_tenants_ids_answer_exactly_as_unknown_ids(server):
    acme, globex = server["acme"], server["globex"]
    doc_id, region_id = region_of(acme)
    assert doc_id == server["ids"]["acme"]["invoice.png"]
    unknown_region = f"{UNKNOWN_DOC}:{region_id.split(':', 1)[1]}"
    job_id = server["jobs"]["acme"]["job_id"]
    routes = [
        ("GET", "/v1/documents/{doc}", None),
        ("GET", "/v1/documents/{doc}/markdown", None),
        ("GET", "/v1/documents/{doc}/json", None),
        ("GET", "/v1/documents/{doc}/pages/1/image", None),
        ("GET", "/v1/documents/{doc}/pages/1/image?highlight={region}", None),
        ("GET", "/v1/regions/{region}/crop", None),
        ("PATCH", "/v1/documents/{doc}", {"metadata": {"dept": "stolen"}}),
        ("POST", "/v1/extract", {"doc_id": "{doc}", "fields": ["total"]}),
        ("DELETE", "/v1/documents/{doc}", None),
        ("GET", "/v1/jobs/{job}", None),
    ]
    for method, path, body in routes:

        def call(api, doc, region, job, method=method, path=path, body=body):
            url = path.format(doc=doc, region=region, job=job)
            payload = json.loads(json.dumps(body).replace("{doc}", doc)) if body else None
            return api.request(method, url, json=payload)

        theirs = call(globex, doc_id, region_id, job_id)
        unknown = call(globex, UNKNOWN_DOC, unknown_region, "0" * 12)
        assert theirs.status_code == unknown.status_code == 404, (method, path, theirs.text)
        same = theirs.text
        for known, fake in ((region_id, unknown_region), (doc_id, UNKNOWN_DOC), (job_id, "0" * 12)):
            same = same.replace(known, fake)
        assert same == unknown.text, (method, path, theirs.text, unknown.text)
        if method != "DELETE":
            mine = call(acme, doc_id, region_id, job_id)
            assert mine.status_code == 200, (method, path, mine.text)
    # the owner's document came through every one of those untouched
    info = acme.get(f"/v1/documents/{doc_id}").json()
    assert info["metadata"] == {"dept": "stolen", "year": 2019}  # the owner's PATCH, merged
    acme.patch(f"/v1/documents/{doc_id}", json={"metadata": {"dept": "finance"}})
    assert acme.get(f"/v1/documents/{doc_id}/pages/1/image").headers["content-type"] == (
        "image/jpeg"
    )


def test_search_answers_chat_and_mcp_see_only_the_callers_documents(server):
    ids = server["ids"]
    acme, globex = server["acme"], server["globex"]
    for tenant, api in (("acme", acme), ("globex", globex)):
        own = set(ids[tenant].values())
        hits = api.post("/v1/search", json={"query": "total due invoice", "top_k": 20}).json()
        assert hits["hits"] and {hit["doc_id"] for hit in hits["hits"]} <= own
        answer = api.post("/v1/query", json={"question": TOTAL_QUESTION}).json()
        assert TOTAL in answer["answer"]
        assert {c["doc_id"] for c in answer["citations"]} == {ids[tenant]["invoice.png"]}
        chat = api.post(
            "/v1/chat/completions",
            json={"model": "scanrag", "messages": [{"role": "user", "content": TOTAL_QUESTION}]},
        ).json()
        assert {c["doc_id"] for c in chat["citations"]} == {ids[tenant]["invoice.png"]}
    acme_invoice = ids["acme"]["invoice.png"]
    theirs = {"doc_id": acme_invoice}
    assert globex.post("/v1/search", json={"query": "total", "filters": theirs}).json() == {
        "query": "total",
        "hits": [],
    }
    answer = globex.post("/v1/query", json={"question": TOTAL_QUESTION, "filters": theirs})
    assert answer.json()["citations"] == []
    assert mcp_documents(server["base"], "globex-key-1") == {ids["globex"]["invoice.png"]}
    assert mcp_documents(server["base"], "acme-key-2") == set(ids["acme"].values())


def mcp_documents(base: str, key: str) -> set[str]:
    """The doc ids MCP's list_documents gives a key, and its search's doc ids (a subset)."""
    pytest.importorskip("mcp")
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async def run() -> set[str]:
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
        async with Client(streamable_http_client(f"{base}/mcp", http_client=http)) as mcp:
            listed = await mcp.call_tool("list_documents", {})
            found = await mcp.call_tool("search", {"query": "total due", "top_k": 20})
        documents = {d["doc_id"] for d in listed.structured_content["documents"]}
        assert {hit["doc_id"] for hit in found.structured_content["hits"]} <= documents
        return documents

    return asyncio.run(run())


def test_metadata_is_returned_filtered_on_and_patched(server):
    acme, ids = server["acme"], server["ids"]["acme"]

    def found(metadata: dict[str, Any]) -> set[str]:
        body = {"query": "total due memo committee", "top_k": 20, "filters": {"metadata": metadata}}
        response = acme.post("/v1/search", json=body)
        assert response.status_code == 200, response.text
        return {hit["doc_id"] for hit in response.json()["hits"]}

    assert found({"dept": "finance"}) == {ids["invoice.png"]}
    assert found({"year": 2020}) == {ids["memo.pdf"]}
    assert found({"dept": ["hr", "finance"]}) == set(ids.values())
    assert found({"dept": "finance", "year": 2020}) == set()
    answer = acme.post(
        "/v1/query",
        json={"question": TOTAL_QUESTION, "filters": {"metadata": {"dept": "finance"}}},
    ).json()
    assert answer["citations"] and all(
        c["metadata"] == {"dept": "finance", "year": 2019} for c in answer["citations"]
    )
    for dept, value in (("finance", TOTAL), ("hr", None)):
        extract = {"doc_id": ids["invoice.png"], "fields": ["total"],
                   "filters": {"metadata": {"dept": dept}}}  # fmt: skip
        (field,) = acme.post("/v1/extract", json=extract).json()["fields"]
        assert field["value"] == value, (dept, field)
    patched = acme.patch(
        f"/v1/documents/{ids['memo.pdf']}", json={"metadata": {"dept": "legal", "year": None}}
    )
    assert patched.status_code == 200 and patched.json()["metadata"] == {"dept": "legal"}
    assert found({"dept": "legal"}) == {ids["memo.pdf"]} and found({"year": 2020}) == set()
    bad = acme.patch(f"/v1/documents/{ids['memo.pdf']}", json={"metadata": {"x": {"a": 1}}})
    assert bad.status_code == 422
    refused = acme.post(
        "/v1/documents",
        files=[("files", ("again.png", INVOICE, "image/png"))],
        data={"metadata": '{"dept": ["a", "b"]}'},
    )
    assert refused.status_code == 422 and "metadata" in refused.text
    not_json = acme.post(
        "/v1/documents",
        files=[("files", ("again.png", INVOICE, "image/png"))],
        data={"metadata": "dept=finance"},
    )
    assert not_json.status_code == 422 and "not JSON" in not_json.text


def test_metrics_cover_every_tenant_so_only_the_servers_tenant_reads_them(server, tmp_path):
    assert server["globex"].get("/metrics").status_code == 403
    with client(server["base"], DEFAULT_KEY) as default:
        assert default.get("/metrics").status_code == 200
    keyless = Settings(data_dir=tmp_path / "keyless", tenant="acme", access_log="off")
    with TestClient(app_for(keyless)) as anyone:  # every caller is the server's tenant
        assert anyone.get("/metrics").status_code == 200


def test_the_owner_deletes_its_copy_and_the_other_tenant_keeps_its_own(server):
    ids = server["ids"]
    acme, globex = server["acme"], server["globex"]
    assert acme.delete(f"/v1/documents/{ids['acme']['invoice.png']}").status_code == 204
    assert acme.get(f"/v1/documents/{ids['acme']['invoice.png']}").status_code == 404
    answer = globex.post("/v1/query", json={"question": TOTAL_QUESTION}).json()
    assert TOTAL in answer["answer"]
    assert globex.get(f"/v1/documents/{ids['globex']['invoice.png']}").status_code == 200


def test_limits_answer_429_with_retry_after_per_tenant(tmp_path):
    settings = Settings(
        data_dir=tmp_path / "data",
        api_keys=KEYS,
        tenant_limits={"acme": {"requests_per_minute": 3}, "globex": {"documents": 1}},
        access_log="off",
    )
    one = code_pdf(tmp_path / "one.pdf", "amberline").read_bytes()
    two = code_pdf(tmp_path / "two.pdf", "birchwood").read_bytes()
    with (
        live_server(app_for(settings)) as base,
        client(base, "acme-key-1") as acme,
        client(base, "globex-key-1") as globex,
    ):
        answers = [acme.get("/v1/documents") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 60
        assert "requests per minute" in answers[-1].json()["detail"]
        with client(base, "acme-key-2") as rotated:  # the tenant's count, not the key's
            assert rotated.get("/v1/documents").status_code == 429
        assert globex.get("/v1/documents").status_code == 200  # another tenant's count

        both = globex.post(
            "/v1/documents",
            files=[
                ("files", ("one.pdf", one, "application/pdf")),
                ("files", ("two.pdf", two, "application/pdf")),
            ],
        )
        assert both.status_code == 429 and "limit of 1" in both.json()["detail"]
        assert globex.get("/v1/documents").json() == []  # nothing of it was stored
        first = globex.post(
            "/v1/documents?wait=true", files=[("files", ("one.pdf", one, "application/pdf"))]
        )
        assert first.status_code == 200 and first.json()["job"]["status"] == "done"
        again = globex.post(
            "/v1/documents", files=[("files", ("two.pdf", two, "application/pdf"))]
        )
        assert again.status_code == 429
        assert len(globex.get("/v1/documents").json()) == 1
        resent = globex.post(  # a document it holds, sent again under another name
            "/v1/documents?wait=true", files=[("files", ("copy.pdf", one, "application/pdf"))]
        )
        assert resent.status_code == 200, resent.text
