"""The API exposed on a network: the key on every route (checked in constant time, before any
body is read), server-side ingest only below the allowed roots, size limits, CORS closed by
default, and an access log of its own with request ids."""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import live_server
from seams import app_for, override_index

from scanrag import tenants
from scanrag.api.deps import get_answerer
from scanrag.config import Settings
from scanrag.testing import code_pdf

KEY = "k3y-for-tests"
PUBLIC = {"/healthz", "/", "/static/{name}", "/docs", "/docs/oauth2-redirect", "/redoc",
          "/docs/static/{name}", "/openapi.json"}  # fmt: skip


def every_route(app) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves, documented or not."""

    def walk(routes, prefix: str = ""):
        for route in routes:
            if hasattr(route, "original_router"):  # FastAPI ≥ 0.16x keeps included routers
                yield from walk(route.original_router.routes, prefix + route.include_context.prefix)
            elif isinstance(route, APIRoute | Route):
                for method in sorted(route.methods - {"HEAD"}):
                    yield method, prefix + route.path

    return list(walk(app.routes))


WRONG_KEYS = [
    {},
    {"X-API-Key": "wrong"},
    {"Authorization": f"Bearer {KEY}x"},
    {"Authorization": f"Basic {KEY}"},
    {"X-API-Key": KEY[:-1]},
]


def filled(path: str) -> str:
    values = {"doc_id": "0123456789abcdef", "number": "1", "job_id": "000000000000",
              "region_id": "0123456789abcdef:p1:r0", "name": "app.js"}  # fmt: skip
    return path.format(**values)


# --- the API key ---------------------------------------------------------------------------


def test_every_route_but_the_public_ones_needs_the_key_and_compares_it_in_constant_time(
    tmp_path, monkeypatch
):
    compared = []
    real = tenants.hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tenants.hmac, "compare_digest", spy)
    app = app_for(Settings(data_dir=tmp_path, api_key=KEY, access_log="off"))
    routes = every_route(app)
    assert {path for _, path in routes} >= PUBLIC | {
        "/v1/documents/{doc_id}/pages/{number}/image", "/v1/regions/{region_id}/crop",
        "/v1/ingest", "/metrics",
    }  # fmt: skip
    with TestClient(app) as client:
        for method, path in routes:
            for headers in WRONG_KEYS:
                compared.clear()
                response = client.request(method, filled(path), headers=headers)
                if path in PUBLIC:
                    assert response.status_code != 401, (method, path)
                    continue
                assert response.status_code == 401, (method, path, headers, response.text)
                assert response.json()["detail"].startswith("missing or wrong API key")
                assert response.headers["www-authenticate"] == "Bearer"
                # digests of equal length whatever was sent: the time says nothing about the key
                assert compared and all(len(a) == len(b) == 32 for a, b in compared)
            for headers in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}):
                response = client.request(method, filled(path), headers=headers, json={})
                assert response.status_code != 401, (method, path)


def raw_request(url: str, head: str) -> str:
    """Send only a request's head (no body) and read what the server answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            block = sock.recv(65536)
            if not block:
                break
            answer += block
        return answer.decode("latin-1")


def test_a_request_without_the_key_or_over_the_size_limit_is_answered_before_its_body(tmp_path):
    settings = Settings(data_dir=tmp_path, api_key=KEY, max_upload_mb=1, max_upload_files=2)
    with live_server(app_for(settings)) as url:
        huge = 50 * (1 << 30)  # claimed, never sent: the answer comes at once
        head = (
            f"POST /v1/documents HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
            f"boundary=b\r\nContent-Length: {huge}\r\n"
        )
        assert raw_request(url, head + "\r\n").startswith("HTTP/1.1 401")
        answer = raw_request(url, head + f"X-API-Key: {KEY}\r\n\r\n")
        assert answer.startswith("HTTP/1.1 413"), answer
        assert "SCANRAG_MAX_UPLOAD_MB" in answer
        query = f"POST /v1/query HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n"
        answer = raw_request(url, query + "Content-Length: 5000000\r\n\r\n")
        assert answer.startswith("HTTP/1.1 413")
        answer = raw_request(url, query + "Transfer-Encoding: chunked\r\n\r\n")
        assert answer.startswith("HTTP/1.1 411")

        three = [("files", (f"{i}.png", b"\x89PNG\r\n\x1a\n" + bytes(100))) for i in range(3)]
        response = httpx.post(f"{url}/v1/documents", files=three, headers={"X-API-Key": KEY})
        assert response.status_code == 413
        assert "more than 2 files in one upload" in response.json()["detail"]


def test_a_file_over_the_size_limit_refuses_the_whole_upload_and_nothing_is_stored(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", max_upload_mb=1)
    good = code_pdf(tmp_path / "good.pdf", "keptfile").read_bytes()
    huge = b"%PDF-1.7\n" + bytes(2 * (1 << 20))
    files = [("files", ("good.pdf", good)), ("files", ("huge.pdf", huge))]
    with TestClient(app_for(settings)) as client:
        response = client.post("/v1/documents?wait=true", files=files)
        assert response.status_code == 413, response.text
        detail = response.json()["detail"]
        assert "huge.pdf" in detail and "upload limit of 1 MB" in detail
        assert "nothing of this upload was stored" in detail
        assert client.get("/v1/documents").json() == []
    uploads = tmp_path / "data" / "uploads"
    assert [p for p in uploads.rglob("*") if p.is_file()] == []  # not even good.pdf


def test_deleting_an_uploaded_document_removes_its_file_with_a_relative_data_dir(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    uploads = tmp_path / "data" / "uploads"
    with TestClient(app_for(Settings(data_dir=Path("data")))) as client:
        pdf = code_pdf(tmp_path / "memo.pdf", "deletedfile").read_bytes()
        response = client.post("/v1/documents?wait=true", files={"files": ("memo.pdf", pdf)})
        assert response.status_code == 200, response.text
        (stored,) = uploads.glob("*/memo.pdf")
        (doc,) = client.get("/v1/documents").json()
        assert client.delete(f"/v1/documents/{doc['doc_id']}").status_code == 204
    assert not stored.parent.exists()
    assert not (tmp_path / "data" / "pages" / doc["doc_id"]).exists()


class Breaks:
    """An answerer whose stream fails after its first event."""

    def stream(self, question, hits):
        yield {"answer": "partial"}
        raise RuntimeError("boom")


def test_a_stream_that_fails_unexpectedly_ends_with_an_error_event(tmp_path):
    app = app_for(Settings(data_dir=tmp_path / "data"))
    app.dependency_overrides[get_answerer] = Breaks
    with TestClient(app) as client:
        response = client.post("/v1/query", json={"question": "anything", "stream": True})
    assert response.status_code == 200
    events = [block.split("\n")[0] for block in response.text.strip().split("\n\n")]
    assert events == ["event: answer", "event: error"]
    assert "internal error" in response.text and "boom" not in response.text


# --- server-side ingest --------------------------------------------------------------------


@pytest.fixture
def roots(tmp_path) -> dict[str, Path]:
    allowed = tmp_path / "allowed"
    (allowed / "scans" / "sub").mkdir(parents=True)
    code_pdf(allowed / "scans" / "inside.pdf", "insidefile")
    outside = tmp_path / "secret"
    outside.mkdir()
    code_pdf(outside / "private.pdf", "privatefile")
    os.symlink(outside, allowed / "scans" / "escape")  # a folder link out of the root
    os.symlink(outside / "private.pdf", allowed / "scans" / "sub" / "leak.pdf")
    os.symlink(outside, allowed / "door")
    return {"allowed": allowed, "outside": outside}


def test_server_side_ingest_is_off_without_allowed_roots(tmp_path, roots):
    with TestClient(app_for(Settings(data_dir=tmp_path / "data"))) as client:
        response = client.post("/v1/ingest", json={"path": str(roots["allowed"])})
        assert response.status_code == 403
        assert "SCANRAG_ALLOWED_ROOTS" in response.json()["detail"]


def test_server_side_ingest_reads_only_below_the_allowed_roots(tmp_path, roots):
    allowed, outside = roots["allowed"], roots["outside"]
    settings = Settings(data_dir=tmp_path / "data", allowed_roots=[allowed])
    with TestClient(app_for(settings)) as client:
        for path, status in [
            (str(outside), 403),  # absolute, elsewhere
            ("/etc", 403),
            (str(allowed / ".." / "secret"), 403),  # `..`
            ("scans/../../secret", 403),
            ("../secret", 403),
            (str(allowed / "door"), 403),  # a link out of the root
            ("door/private.pdf", 403),
            ("scans/escape", 403),
            (str(allowed) + "-sibling", 403),  # a prefix is not a parent
            ("scans/missing.pdf", 404),
            ("scans/\x00x", 400),
            ("", 422),
        ]:
            response = client.post("/v1/ingest", json={"path": path})
            assert response.status_code == status, (path, response.text)
            assert response.json()["detail"]

        response = client.post("/v1/ingest?wait=true", json={"path": "scans"})  # relative
        assert response.status_code == 200, response.text
        job = response.json()["job"]
        assert response.json()["path"] == "scans"  # relative to its root: the layout is private
        assert job["report"]["added"] == 1
        refused = {Path(e["path"]).name: e["error"] for e in job["errors"]}
        assert set(refused) == {"escape", "leak.pdf"}  # reported, not followed
        assert all("outside the allowed folders" in message for message in refused.values())
        found = client.post("/v1/search", json={"query": "privatefile", "mode": "sparse"})
        assert all("private" not in hit["text"] for hit in found.json()["hits"])
        assert client.post("/v1/search", json={"query": "insidefile"}).json()["hits"]

        absolute = client.post("/v1/ingest", json={"path": str(allowed / "scans" / "inside.pdf")})
        assert absolute.status_code == 202 and absolute.json()["status_url"].startswith("/v1/jobs/")


def test_server_side_ingest_never_reads_the_data_directory_inside_a_root(tmp_path, roots):
    """A root that holds the data dir (roots ["."], data dir ./scanrag-data) must not give a
    caller the uploads and page images of every tenant, nor say which of them exist."""
    allowed = roots["allowed"]
    settings = Settings(data_dir=allowed / "scanrag-data", allowed_roots=[allowed])
    with TestClient(app_for(settings)) as client:
        upload = client.post(
            "/v1/documents?wait=true",
            files={"files": ("memo.pdf", (allowed / "scans" / "inside.pdf").read_bytes())},
        )
        assert upload.status_code == 200, upload.text
        held = next((allowed / "scanrag-data").rglob("*.pdf"))  # the stored upload
        answers = [
            client.post("/v1/ingest", json={"path": str(path)})
            for path in (held, held.parent, allowed / "scanrag-data", held.with_name("none.pdf"))
        ]
        assert {(a.status_code, a.json()["detail"].split(": ", 1)[1]) for a in answers} == {
            (403, "inside scanrag's data directory")
        }

        walked = client.post("/v1/ingest?wait=true", json={"path": "."})  # the whole root
        report = walked.json()["job"]["report"]
        assert walked.status_code == 200 and report["added"] == 1, walked.text
        assert all("scanrag-data" not in error["path"] for error in report["errors"])
        listed = client.get("/v1/documents").json()
        assert all("scanrag-data" not in doc["source"] for doc in listed), listed


# --- CORS ----------------------------------------------------------------------------------


def preflight(client: TestClient, origin: str) -> httpx.Response:
    return client.options(
        "/v1/query",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key,content-type",
        },
    )


def test_cors_is_closed_by_default(tmp_path):
    with TestClient(app_for(Settings(data_dir=tmp_path))) as client:
        assert "access-control-allow-origin" not in preflight(client, "https://evil.test").headers
        response = client.get("/v1/documents", headers={"Origin": "https://evil.test"})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers


def test_cors_allows_exactly_the_configured_origins(tmp_path):
    settings = Settings(data_dir=tmp_path, api_key=KEY, cors_origins=["https://app.example"])
    with TestClient(app_for(settings)) as client:
        allowed = preflight(client, "https://app.example")
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-api-key" in allowed.headers["access-control-allow-headers"].lower()
        denied = preflight(client, "https://evil.test")
        assert denied.headers.get("access-control-allow-origin") != "https://evil.test"
        response = client.get(
            "/v1/documents", headers={"Origin": "https://app.example", "X-API-Key": KEY}
        )
        assert response.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-credentials" not in response.headers
        no_key = client.get("/v1/documents", headers={"Origin": "https://app.example"})
        assert no_key.status_code == 401  # CORS lets the browser ask, not skip the key


# --- request ids and the access log --------------------------------------------------------

LINE = re.compile(
    r"^\S+ \S+ (?P<id>[A-Za-z0-9._-]+) (?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) "
    r"(?P<ms>\d+\.\d)ms$"
)


def test_every_request_gets_one_access_log_line_apart_from_the_error_log(
    tmp_path, monkeypatch, caplog
):
    log_file = tmp_path / "access.log"
    settings = Settings(data_dir=tmp_path / "data", api_key=KEY, access_log=str(log_file))
    app = app_for(settings)
    caplog.set_level(logging.INFO)
    with TestClient(app, raise_server_exceptions=False) as client:
        ok = client.get("/v1/documents", headers={"X-API-Key": KEY, "X-Request-ID": "trace-42"})
        denied = client.get("/v1/documents")
        missing = client.get("/v1/jobs/nope", headers={"X-API-Key": KEY})
        forged = client.get("/healthz", headers={"X-Request-ID": "x" * 200})
        sneaky = client.get("/v1/jobs/a%0Ab", headers={"X-API-Key": KEY})

        def explode(*args, **kwargs):
            raise RuntimeError("store exploded")

        override_index(app, search=explode)
        crashed = client.post("/v1/search", json={"query": "x"}, headers={"X-API-Key": KEY})
    assert ok.headers["x-request-id"] == "trace-42"
    assert forged.headers["x-request-id"] != "x" * 200  # not a valid id: a fresh one
    assert crashed.status_code == 500
    assert crashed.json()["detail"].startswith("internal error (request id ")
    assert crashed.headers["x-request-id"] in crashed.json()["detail"]

    lines = log_file.read_text().splitlines()
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    seen = [(m["id"], m["method"], m["path"], m["status"]) for m in parsed]
    responses = [ok, denied, missing, forged, sneaky, crashed]
    assert seen == [
        (r.headers["x-request-id"], r.request.method, r.request.url.raw_path.decode(),
         str(r.status_code))
        for r in responses
    ]  # fmt: skip
    assert [s for *_, s in seen] == ["200", "401", "404", "200", "404", "500"]
    assert "Traceback" not in log_file.read_text()  # errors are not the access log's business

    assert not logging.getLogger("scanrag.access").propagate  # nor the other way round
    errors = [r for r in caplog.records if r.name.startswith("scanrag")]
    (crash,) = [r for r in errors if r.levelno >= logging.ERROR]
    assert crash.name == "scanrag.api"
    assert crash.exc_info and crashed.headers["x-request-id"] in crash.getMessage()
