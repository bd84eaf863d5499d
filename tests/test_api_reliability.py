"""Nothing accepted is lost, nothing can wedge the server: bounded waits that hold no thread,
files opened as they were checked, delete that deletes, pixel budgets, a keyless server that
answers only its own host and origin, long names, FIFOs, hostile request fields, uploads
refused while they stream, and no server paths in answers.

(Accepted work surviving a SIGKILL of a real server process: tests/test_api_restart.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import live_server
from seams import ENCODER, app_for, open_index, override_index

from scanrag.api.app import create_app
from scanrag.api.jobs import JobStore, Work
from scanrag.api.schemas import JobStatus
from scanrag.config import Settings
from scanrag.errors import LimitExceeded
from scanrag.ingest.parallel import InlineRunner
from scanrag.ingest.pipeline import parse_file
from scanrag.retrieval.images import read_page_image
from scanrag.retrieval.index import Index
from scanrag.retrieval.reports import FileError
from scanrag.testing import code_pdf, pdf_paragraph, text_pdf


def settings_for(tmp_path: Path, **values) -> Settings:
    return Settings(data_dir=tmp_path / "data", parser="pdf-text", access_log="off", **values)


def pdf_bytes(tmp_path: Path, code: str) -> bytes:
    return code_pdf(tmp_path / f"{code}.pdf", code).read_bytes()


def hits(client, query: str) -> list[dict]:
    response = client.post("/v1/search", json={"query": query, "mode": "sparse", "top_k": 20})
    assert response.status_code == 200, response.text
    return [hit for hit in response.json()["hits"] if query in hit["text"]]


def poll(client, job_id: str, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("done", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


class Gate(threading.Event):
    """Every ingest of an app made by `app` waits until the gate is set (a busy ingest worker,
    on demand)."""

    def app(self, settings: Settings) -> FastAPI:
        gate = self

        class Gated(Index):
            def ingest(self, *args, **kwargs):
                gate.wait(120)
                return super().ingest(*args, **kwargs)

        return create_app(settings, open_index=lambda s: Gated(s, encoder=ENCODER))


@pytest.fixture
def gate() -> Iterator[Gate]:
    gate = Gate()
    yield gate
    gate.set()


# --- 1. jobs outlive the server (with a real SIGKILL: tests/test_api_restart.py) ------------


def test_a_folder_job_left_running_is_resumed_with_fresh_counts(tmp_path, rooted):
    allowed = rooted["allowed"]
    settings = settings_for(tmp_path, allowed_roots=[allowed])
    open_index(settings).close()  # the data dir a previous server used
    store = JobStore(Path(settings.data_dir) / "jobs.sqlite")
    rejected = FileError(path="notes.txt", error="notes.txt: not a supported document type")
    left = JobStatus(
        id="0123456789ab",
        status="running",
        files_total=3,
        files_done=2,
        pages_done=1,
        errors=[rejected],
        created_at="2026-01-01T00:00:00+00:00",
    )
    store.add(left, Work(left.id, [allowed], [allowed]))
    store.close()
    with TestClient(app_for(settings)) as client:
        job = poll(client, "0123456789ab")
    assert job["status"] == "done" and job["resumed"] == 1
    assert (job["files_total"], job["files_done"]) == (3, 3)  # a.pdf, b.pdf and the rejected
    assert job["report"]["added"] == 2 and job["errors"] == [rejected.model_dump()]


# --- 2. ?wait=true: bounded, no thread held, ends with its client ---------------------------


@pytest.mark.slow  # fifty uploads held open at once
def test_more_waiting_uploads_than_worker_threads_leave_health_and_reads_answering(tmp_path, gate):
    pdf = pdf_bytes(tmp_path, "waitmemo")
    waiters = 50  # more than the 40 threads sync routes share

    async def scenario(url: str) -> tuple[list[httpx.Response], httpx.Response, httpx.Response]:
        limits = httpx.Limits(max_connections=waiters + 10)
        async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
            waiting = [
                asyncio.create_task(
                    client.post("/v1/documents?wait=true", files={"files": (f"w{i}.pdf", pdf)})
                )
                for i in range(waiters)
            ]
            await asyncio.sleep(2)
            health = await asyncio.wait_for(client.get("/healthz"), 20)
            documents = await asyncio.wait_for(client.get("/v1/documents"), 20)
            gate.set()  # the ingest goes on: every waiter gets its finished job
            return await asyncio.gather(*waiting), health, documents

    with live_server(gate.app(settings_for(tmp_path))) as url:
        answers, health, documents = asyncio.run(scenario(url))
    assert health.status_code == 200 and documents.status_code == 200
    assert [answer.status_code for answer in answers] == [200] * waiters
    assert all(answer.json()["job"]["status"] == "done" for answer in answers)


def test_a_wait_that_runs_out_answers_202_with_the_job_as_it_is(tmp_path, gate):
    settings = settings_for(tmp_path, wait_timeout=1)
    with TestClient(gate.app(settings)) as client:
        files = {"files": ("slow.pdf", pdf_bytes(tmp_path, "slowmemo"))}
        answer = client.post("/v1/documents?wait=true", files=files)
        assert answer.status_code == 202
        body = answer.json()
        assert body["job"]["status"] in ("queued", "running") and body["job"]["finished_at"] is None
        gate.set()
        assert poll(client, body["job_id"])["status"] == "done"


def test_a_waiting_request_ends_when_its_client_goes_away(tmp_path, gate):
    log_file = tmp_path / "access.log"
    settings = Settings(data_dir=tmp_path / "data", parser="pdf-text", access_log=str(log_file))
    pdf = pdf_bytes(tmp_path, "leavingmemo")  # wait_timeout stays the default (60 s)
    with live_server(gate.app(settings)) as url:
        with pytest.raises(httpx.ReadTimeout):  # the client gives up, closing its connection
            httpx.post(
                f"{url}/v1/documents?wait=true",
                files={"files": ("leaving.pdf", pdf)},
                headers={"X-Request-ID": "the-leaver"},
                timeout=1.0,
            )
        deadline = time.monotonic() + 20
        while "the-leaver" not in log_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        ended = "the-leaver" in log_file.read_text()  # the access line is written at its end
        gate.set()
    assert ended, "the waiting request outlived its client"


# --- 3. and 8. open what was checked ----------------------------------------------------------


@pytest.fixture
def rooted(tmp_path) -> dict[str, Path]:
    allowed, outside = tmp_path / "allowed", tmp_path / "secret"
    allowed.mkdir()
    outside.mkdir()
    code_pdf(allowed / "a.pdf", "firstmemo")
    code_pdf(allowed / "b.pdf", "secondmemo")
    code_pdf(outside / "private.pdf", "privatememo")
    return {"allowed": allowed, "outside": outside}


def swap_for_link(path: Path, target: Path) -> None:
    path.unlink()
    os.symlink(target, path)


def parsing_with(parse) -> Callable[[Settings], Index]:
    """Opens the app's index with files parsed in-process by `parse`."""
    return lambda settings: open_index(settings, runner=InlineRunner(parse))


def test_a_file_swapped_for_a_link_out_of_the_roots_after_the_walk_is_not_read(
    tmp_path, rooted
):
    allowed, outside = rooted["allowed"], rooted["outside"]

    def swap_while_a_is_read(path, *args, **kwargs):  # the walk is over: a.pdf is open
        if path.name == "a.pdf":
            swap_for_link(allowed / "b.pdf", outside / "private.pdf")
        return parse_file(path, *args, **kwargs)

    settings = settings_for(tmp_path, allowed_roots=[allowed])
    with TestClient(create_app(settings, open_index=parsing_with(swap_while_a_is_read))) as client:
        job = client.post("/v1/ingest?wait=true", json={"path": "."}).json()["job"]
        assert job["report"]["added"] == 1
        (error,) = job["errors"]
        assert error["path"] == "b.pdf" and "outside the allowed folders" in error["error"]
        assert hits(client, "privatememo") == []
        assert hits(client, "firstmemo")


def test_a_file_swapped_after_its_check_is_not_parsed(tmp_path, rooted):
    allowed, outside = rooted["allowed"], rooted["outside"]

    def swap_then_parse(path, *args, **kwargs):
        if path.name == "b.pdf":  # checked and hashed inside the root; then replaced
            swap_for_link(path, outside / "private.pdf")
        return parse_file(path, *args, **kwargs)

    settings = settings_for(tmp_path, allowed_roots=[allowed])
    with TestClient(create_app(settings, open_index=parsing_with(swap_then_parse))) as client:
        job = client.post("/v1/ingest?wait=true", json={"path": "."}).json()["job"]
        (error,) = job["errors"]
        assert "b.pdf" in error["path"] and "replaced while being indexed" in error["error"]
        assert hits(client, "privatememo") == []


def test_a_fifo_named_for_ingest_fails_at_once_and_the_worker_goes_on(tmp_path, rooted):
    allowed = rooted["allowed"]
    os.mkfifo(allowed / "pipe.pdf")
    with TestClient(app_for(settings_for(tmp_path, allowed_roots=[allowed]))) as client:
        try:
            started = client.post("/v1/ingest", json={"path": "pipe.pdf"}).json()
            job = poll(client, started["job_id"], 30)
            assert job["status"] == "failed", job
            (error,) = job["errors"]
            assert "not a regular file" in error["error"]
            after = poll(client, client.post("/v1/ingest", json={"path": "a.pdf"}).json()["job_id"])
            assert after["status"] == "done" and after["report"]["added"] == 1
        finally:  # a worker blocked opening the FIFO for reading (the old way) is let go
            with contextlib.suppress(OSError):
                os.close(os.open(allowed / "pipe.pdf", os.O_WRONLY | os.O_NONBLOCK))


# --- 4. and 9. delete means delete ------------------------------------------------------------


def files_holding(folder: Path, text: str) -> list[Path]:
    """Files under `folder` (the vector store's own files aside) whose bytes hold `text`."""
    return [
        path
        for path in folder.rglob("*")
        if path.is_file() and "qdrant" not in path.parts and text.encode() in path.read_bytes()
    ]


def test_index_delete_removes_the_parse_the_page_images_and_uploads_but_not_user_files(
    tmp_path,
):
    docs = tmp_path / "docs"
    docs.mkdir()
    mine = code_pdf(docs / "mine.pdf", "usermemo")
    data = tmp_path / "data"
    with open_index(data_dir=data, parser="pdf-text") as index:
        index.ingest([docs])
        uploads = data / "uploads" / "0123456789abcdef"
        uploads.mkdir(parents=True)
        uploaded = code_pdf(uploads / "sent.pdf", "uploadmemo")
        index.ingest([uploaded])
        ids = {Path(d.source).name: d.doc_id for d in index.documents()}
        assert files_holding(data, "usermemo") and files_holding(data, "uploadmemo")
        assert (data / "pages" / ids["mine.pdf"]).exists()

        assert index.delete(ids["mine.pdf"]) and index.delete(ids["sent.pdf"])
        assert index.documents() == []
    assert files_holding(data, "usermemo") == [] and files_holding(data, "uploadmemo") == []
    assert not (data / "pages" / ids["mine.pdf"]).exists()
    assert not list((data / "cache").iterdir())
    assert not uploads.exists()  # the upload and its folder
    assert mine.exists()  # the user's own file is theirs


def test_deleting_a_document_keeps_a_queued_upload_of_the_same_content(tmp_path, gate):
    pdf = pdf_bytes(tmp_path, "twinmemo")
    with TestClient(gate.app(settings_for(tmp_path))) as client:
        gate.set()
        first = client.post("/v1/documents?wait=true", files={"files": ("first.pdf", pdf)})
        assert first.json()["job"]["report"]["added"] == 1
        (doc,) = client.get("/v1/documents").json()
        gate.clear()
        queued = client.post("/v1/documents", files={"files": ("second.pdf", pdf)}).json()
        assert client.delete(f"/v1/documents/{doc['doc_id']}").status_code == 204
        uploads = tmp_path / "data" / "uploads"
        assert [p.name for p in uploads.glob("*/*.pdf")] == ["second.pdf"]  # queued: kept
        gate.set()
        job = poll(client, queued["job_id"])
        assert job["status"] == "done" and job["report"]["added"] == 1, job
        (again,) = client.get("/v1/documents").json()
        assert again["doc_id"] == doc["doc_id"] and again["source"].endswith("second.pdf")


# --- 5. pixel budgets -------------------------------------------------------------------------


def test_highlights_and_crops_of_a_huge_page_are_read_within_the_pixel_budget(tmp_path):
    settings = settings_for(tmp_path, dpi=600)  # image_max_pixels: 16 million by default
    pdf = text_pdf([pdf_paragraph(72, 90, "Giant page gianttoken in small print.", 450)],
                   tmp_path / "giant.pdf")  # fmt: skip
    with TestClient(app_for(settings)) as client:
        client.post("/v1/documents?wait=true", files={"files": ("giant.pdf", pdf.read_bytes())})
        (doc,) = client.get("/v1/documents").json()
        page = client.get(f"/v1/documents/{doc['doc_id']}").json()["page_list"][0]
        assert page["width"] * page["height"] > 30_000_000  # 600 dpi A4
        region = client.get(f"/v1/documents/{doc['doc_id']}/json").json()["pages"][0]["regions"][0]
        box = region["bbox"]

        url = f"/v1/documents/{doc['doc_id']}/pages/1/image"
        drawn = Image.open(io.BytesIO(client.get(url, params={"highlight": region["id"]}).content))
        assert drawn.width * drawn.height <= 16_000_000
        assert drawn.size == (-(-page["width"] // 2), -(-page["height"] // 2))  # read at 1/2
        scale = page["width"] / drawn.width
        x0, y0, x1, y1 = (round(v / scale) for v in box)
        red, green, _ = drawn.convert("RGB").getpixel((x0 + 1, (y0 + y1) // 2))
        assert red > 180 and green < 120  # the outline, where the scaled box is

        crop = Image.open(io.BytesIO(client.get(f"/v1/regions/{region['id']}/crop").content))
        assert crop.size == (x1 - x0, y1 - y0)


def test_a_page_over_the_budget_even_at_one_eighth_is_a_clear_error(tmp_path):
    page = tmp_path / "page.png"  # not a JPEG: no reduced decoding
    Image.new("RGB", (2000, 1000), "white").save(page)
    assert read_page_image(page, 2_000_000)[0].size == (2000, 1000)
    with pytest.raises(LimitExceeded, match="raise SCANRAG_IMAGE_MAX_PIXELS"):
        read_page_image(page, 1_000_000)


# --- 6. no key: own host, own origin, one warning ---------------------------------------------


def test_without_a_key_a_foreign_host_or_a_cross_origin_write_is_refused(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    pdf = pdf_bytes(tmp_path, "originmemo")
    with TestClient(app_for(settings_for(tmp_path)), base_url="http://127.0.0.1:8000") as client:
        for host in ("127.0.0.1:8000", "localhost:8000", "[::1]:8000", "10.1.2.3", "LOCALHOST."):
            assert client.get("/v1/documents", headers={"Host": host}).status_code == 200
        rebound = client.get("/v1/documents", headers={"Host": "attacker.example:8000"})
        assert rebound.status_code == 400 and "SCANRAG_ALLOWED_HOSTS" in rebound.json()["detail"]
        assert client.get("/healthz", headers={"Host": "attacker.example"}).status_code == 200

        evil = {"Origin": "https://attacker.example"}
        upload = client.post("/v1/documents", files={"files": ("x.pdf", pdf)}, headers=evil)
        assert upload.status_code == 403 and "SCANRAG_API_KEY" in upload.json()["detail"]
        assert client.delete("/v1/documents/0123456789abcdef", headers=evil).status_code == 403
        assert client.get("/v1/documents", headers=evil).status_code == 200  # reads: CORS's job
        same = client.post(
            "/v1/search", json={"query": "x"}, headers={"Origin": "http://127.0.0.1:8000"}
        )
        assert same.status_code == 200  # the web page itself
        assert client.post("/v1/search", json={"query": "x"}).status_code == 200  # no browser
    warnings = [r for r in caplog.records if "no API key" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


def test_allowed_hosts_adds_names_the_keyless_server_answers_to(tmp_path):
    settings = settings_for(tmp_path, allowed_hosts=["Scans.Internal"])
    with TestClient(app_for(settings)) as client:
        assert client.get("/v1/documents", headers={"Host": "scans.internal:80"}).status_code == 200
        assert client.get("/v1/documents", headers={"Host": "other.internal"}).status_code == 400


def test_with_a_key_any_host_and_origin_may_call_with_it(tmp_path):
    settings = settings_for(tmp_path, api_key="k3y")
    headers = {
        "Host": "attacker.example",
        "Origin": "https://elsewhere.example",
        "X-API-Key": "k3y",
    }
    with TestClient(app_for(settings)) as client:
        assert client.post("/v1/search", json={"query": "x"}, headers=headers).status_code == 200


# --- 7. long names --------------------------------------------------------------------------


def test_an_upload_named_with_ninety_chinese_characters_is_stored_and_indexed_with_the_rest(
    tmp_path,
):
    long_name = "发票" * 45 + ".pdf"  # 274 bytes of UTF-8: over the 255 a file system allows
    files = [
        ("files", ("before.pdf", pdf_bytes(tmp_path, "beforememo"))),
        ("files", (long_name, pdf_bytes(tmp_path, "longnamememo"))),
    ]
    with TestClient(app_for(settings_for(tmp_path))) as client:
        response = client.post("/v1/documents?wait=true", files=files)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["job"]["report"]["added"] == 2
        stored = body["files"][1]
        assert stored.startswith("发票发票") and stored.endswith(".pdf")
        assert len(stored.encode()) <= 200
        assert hits(client, "longnamememo") and hits(client, "beforememo")
    assert not any((tmp_path / "data" / "uploads" / ".incoming").iterdir())


# --- 10. and 11. hostile fields: 4xx, never 500 ----------------------------------------------


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/search", b'{"query": "total \\ud800"}'),
        ("/v1/query", b'{"question": "\\udc00"}'),
        ("/v1/search", b'{"query": "total", "filters": {"source": "\\ud83d.pdf"}}'),
        ("/v1/extract", b'{"doc_id": "DOC", "fields": ["to\\udfff"]}'),
        ("/v1/search", b'{"query": "total", "top_k": NaN}'),
        ("/v1/search", b'{"query": "total", "top_k": 1e400}'),
        ("/v1/query", b'{"question": "total", "top_k": -Infinity}'),
        ("/v1/search", b'{"query": "total", "filters": {"doc_id": []}}'),
        ("/v1/search", b'{"query": "total", "filters": {"doc_id": ""}}'),
        ("/v1/extract", b'{"doc_id": "DOC", "fields": ["' + b"x" * 201 + b'"]}'),
        ("/v1/ingest", b'{"path": "' + b"n" * 4000 + b'"}'),
        ("/v1/ingest", b'{"path": "\\ud800"}'),
    ],
)
def test_hostile_request_fields_are_client_errors_with_a_message(tmp_path, route, body):
    settings = settings_for(tmp_path, allowed_roots=[tmp_path])
    with TestClient(app_for(settings), raise_server_exceptions=False) as client:
        if b"DOC" in body:  # a document that exists, so that only the field can be refused
            files = {"files": ("f.pdf", pdf_bytes(tmp_path, "fieldmemo"))}
            client.post("/v1/documents?wait=true", files=files)
            (doc,) = client.get("/v1/documents").json()
            body = body.replace(b"DOC", doc["doc_id"].encode())
        response = client.post(route, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    detail = response.json()["detail"]
    assert detail and "Traceback" not in response.text


def test_an_extract_field_of_a_hundred_thousand_characters_is_refused_unsearched(tmp_path):
    app = app_for(settings_for(tmp_path))
    with TestClient(app) as client:
        files = {"files": ("e.pdf", pdf_bytes(tmp_path, "extractmemo"))}
        client.post("/v1/documents?wait=true", files=files)
        (doc,) = client.get("/v1/documents").json()
        searched = []
        override_index(app, search=lambda *args, **kwargs: searched.append(args) or [])
        body = {"doc_id": doc["doc_id"], "fields": ["total", "y" * 100_000]}
        response = client.post("/v1/extract", json=body)
    assert response.status_code == 422 and searched == []


# --- 12. limits enforced while the body streams ----------------------------------------------


def test_a_file_over_the_limit_is_refused_before_the_rest_of_the_body_is_sent(tmp_path):
    settings = settings_for(tmp_path, max_upload_mb=1, max_upload_files=8)
    with live_server(app_for(settings)) as url:
        host, port = url.removeprefix("http://").split(":")
        part = (
            b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.pdf"\r\n'
            b"Content-Type: application/pdf\r\n\r\n"
        )
        claimed = 6 << 20  # under the request's limit (8 files of 1 MB): only the file is over
        head = (
            f"POST /v1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {claimed}\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n\r\n"
        ).encode()
        with socket.create_connection((host, int(port)), timeout=20) as sock:
            sock.sendall(head + part + b"%PDF-1.7\n" + bytes((1 << 20) + 4096))  # then stop
            answer = b""
            while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
                block = sock.recv(65536)
                if not block:
                    break
                answer += block
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"big.pdf: larger than the upload limit of 1 MB" in answer
    assert not any((tmp_path / "data" / "uploads" / ".incoming").iterdir())


# --- 13. paths, docs, caching, empty filters, keys --------------------------------------------


def test_answers_name_files_relative_to_the_data_dir_or_their_root(tmp_path, rooted):
    allowed = rooted["allowed"]
    (allowed / "broken.pdf").write_bytes(b"%PDF-1.7\nnot really")
    settings = settings_for(tmp_path, allowed_roots=[allowed])
    with TestClient(app_for(settings)) as client:
        ingest = client.post("/v1/ingest?wait=true", json={"path": str(allowed)})
        upload = client.post(
            "/v1/documents?wait=true", files={"files": ("up.pdf", pdf_bytes(tmp_path, "upmemo"))}
        )
        outside = client.post("/v1/ingest", json={"path": "/etc"})
        answers = [ingest, upload, outside, client.get("/v1/documents")]
        answers += [client.post("/v1/search", json={"query": "memo", "top_k": 20})]
        sources = {Path(d["source"]).name: d["source"] for d in answers[3].json()}
    for answer in answers:
        assert str(tmp_path) not in answer.text, answer.text
    assert outside.status_code == 403 and "SCANRAG_ALLOWED_ROOTS" in outside.json()["detail"]
    assert ingest.json()["path"] == "."
    assert sources["a.pdf"] == "a.pdf" and sources["up.pdf"].startswith("uploads/")
    errors = ingest.json()["job"]["errors"]
    assert errors[0]["path"] == "broken.pdf" and errors[0]["error"].startswith("broken.pdf: ")


def test_the_api_docs_load_nothing_from_other_origins(tmp_path):
    with TestClient(app_for(settings_for(tmp_path))) as client:
        for page in ("/docs", "/redoc"):
            response = client.get(page)
            assert response.status_code == 200
            assert "http" not in response.text  # every script, style and icon is ours
            assert "default-src 'self'" in response.headers["content-security-policy"]
            for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
                if asset in response.text:
                    assert client.get(f"/docs/static/{asset}").status_code == 200


def test_page_images_crops_and_answers_are_never_cached(tmp_path):
    with TestClient(app_for(settings_for(tmp_path))) as client:
        client.post(
            "/v1/documents?wait=true", files={"files": ("c.pdf", pdf_bytes(tmp_path, "cachememo"))}
        )
        (doc,) = client.get("/v1/documents").json()
        urls = [
            f"/v1/documents/{doc['doc_id']}/pages/1/image",
            f"/v1/regions/{doc['doc_id']}:p1:r0/crop",
            f"/v1/documents/{doc['doc_id']}/json",
            "/v1/documents",
        ]
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200 and response.headers["cache-control"] == "no-store"


def test_an_api_key_that_no_client_could_send_is_a_settings_error():
    for key in ("clé-secrète", "密钥", " padded "):
        with pytest.raises(ValidationError, match="printable ASCII"):
            Settings(api_key=key)
    assert Settings(api_key="plain-ASCII_key.42").api_key == "plain-ASCII_key.42"
