"""The HTTP API end to end: a real uvicorn on 127.0.0.1 serving scanrag over two scans it
OCRs (an English invoice as PNG, a Chinese receipt as JPEG), driven with httpx the way a
client would — upload, poll the job, read the documents, search with filters, ask, follow
the citation's image links, extract fields, stream, delete — plus the API key, upload
limits, JSON 404s and metrics.

Uploading (OCR) is the slow part, so it happens once for the module.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import live_server, streamed_query
from seams import app_for

from scanrag.config import Settings
from scanrag.ingest.model import BBox
from scanrag.retrieval.answer import NOT_FOUND
from scanrag.testing import invoice, pdf_paragraph, receipt_zh, text_pdf

KEY = "test-key-7f3a"
TOTAL_QUESTION = "What is the total due on invoice INV-1001?"
INVOICE_SHEET = invoice()
RECEIPT_SHEET = receipt_zh()


def image_bytes(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def decode(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    return Image.open(io.BytesIO(response.content)).convert("RGB")


def iou(a: BBox | list[int], b: BBox) -> float:
    return BBox(*a).iou(b)


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("api-data"), api_key=KEY, max_upload_mb=1)


@pytest.fixture(scope="module")
def app(settings):
    return app_for(settings)


@pytest.fixture(scope="module")
def base_url(app):
    with live_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def api(base_url):
    """An httpx client that sends the API key (as X-API-Key)."""
    with httpx.Client(base_url=base_url, headers={"X-API-Key": KEY}, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def upload(api):
    """The two scans and a text file, uploaded once; the job polled until it finishes."""
    files = [
        ("files", ("invoice.png", image_bytes(INVOICE_SHEET.image(), "PNG"), "image/png")),
        ("files", ("receipt.jpg", image_bytes(RECEIPT_SHEET.image(), "JPEG"), "image/jpeg")),
        ("files", ("notes.txt", b"just some notes\n", "text/plain")),
    ]
    response = api.post("/v1/documents", files=files)
    assert response.status_code == 202, response.text
    body = response.json()
    seen = []
    deadline = time.monotonic() + 600
    while True:
        job = api.get(body["status_url"])
        assert job.status_code == 200
        seen.append(job.json())
        if job.json()["status"] in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    docs = {Path(d["source"]).name: d for d in api.get("/v1/documents").json()}
    return {"response": body, "polls": seen, "docs": docs}


@pytest.fixture(scope="module")
def invoice_id(upload) -> str:
    return upload["docs"]["invoice.png"]["doc_id"]


@pytest.fixture(scope="module")
def receipt_id(upload) -> str:
    return upload["docs"]["receipt.jpg"]["doc_id"]


# --- upload, jobs, documents ----------------------------------------------------------------


def test_an_upload_is_a_job_that_reports_progress_until_the_scans_are_indexed(upload):
    body = upload["response"]
    assert body["files"] == ["invoice.png", "receipt.jpg"]
    assert [e["path"] for e in body["rejected"]] == ["notes.txt"]
    assert body["status_url"] == f"/v1/jobs/{body['job_id']}"

    polls = upload["polls"]
    assert {p["status"] for p in polls} <= {"queued", "running", "done"}
    assert [p["pages_done"] for p in polls] == sorted(p["pages_done"] for p in polls)
    job = polls[-1]
    assert job["id"] == body["job_id"]
    assert job["status"] == "done", job
    assert (job["files_total"], job["files_done"], job["pages_done"]) == (3, 3, 2)
    assert job["report"]["added"] == 2 and job["report"]["failed"] == 0
    assert [e["path"] for e in job["errors"]] == ["notes.txt"]
    assert job["finished_at"] is not None


def test_documents_are_listed_and_read_as_detail_markdown_and_json(api, upload, invoice_id):
    docs = upload["docs"]
    assert set(docs) == {"invoice.png", "receipt.jpg"}
    assert all(d["status"] == "done" and d["pages"] == 1 for d in docs.values())

    detail = api.get(f"/v1/documents/{invoice_id}").json()
    assert detail["doc_id"] == invoice_id and detail["mime"] == "image/png"
    (page,) = detail["page_list"]
    assert (page["number"], page["width"], page["height"]) == (1, 1654, 2339)
    assert page["regions"] >= 4
    assert page["image_url"] == f"/v1/documents/{invoice_id}/pages/1/image"

    markdown = api.get(f"/v1/documents/{invoice_id}/markdown")
    assert markdown.status_code == 200
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "<!-- page 1 width=1654 height=2339 -->" in markdown.text
    assert f"<!-- region {invoice_id}:p1:r0 " in markdown.text
    assert "INV-1001" in markdown.text and "$2,448.50" in markdown.text
    plain = api.get(f"/v1/documents/{invoice_id}/markdown", params={"anchors": "false"}).text
    assert "<!--" not in plain and "$2,448.50" in plain

    document = api.get(f"/v1/documents/{invoice_id}/json").json()
    assert document["id"] == invoice_id
    regions = document["pages"][0]["regions"]
    total = next(r for r in regions if "$2,448.50" in r["text"])
    assert total["id"].startswith(f"{invoice_id}:p1:r")
    drawn = INVOICE_SHEET.find("$2,448.50").bbox
    line = next(ln for ln in total["lines"] if "2,448.50" in ln["text"])
    assert iou(line["bbox"], drawn) > 0.5  # the OCR box is where the text was drawn


# --- search ---------------------------------------------------------------------------------


def search(api, query: str, **body) -> list[dict]:
    response = api.post("/v1/search", json={"query": query, **body})
    assert response.status_code == 200, response.text
    return response.json()["hits"]


def test_search_filters_by_document_source_page_and_label(api, invoice_id, receipt_id):
    everything = search(api, "total", top_k=20)
    assert {h["doc_id"] for h in everything} == {invoice_id, receipt_id}

    assert {
        h["doc_id"] for h in search(api, "total", top_k=20, filters={"doc_id": receipt_id})
    } == {receipt_id}
    both = search(api, "total", top_k=20, filters={"doc_id": [invoice_id, receipt_id]})
    assert {h["doc_id"] for h in both} == {invoice_id, receipt_id}
    by_name = search(api, "total", top_k=20, filters={"source": "invoice.png"})
    assert by_name and {h["doc_id"] for h in by_name} == {invoice_id}
    by_path = search(api, "total", filters={"source": by_name[0]["source"]})
    assert by_path and {h["source"] for h in by_path} == {by_name[0]["source"]}
    assert search(api, "total", filters={"source": "elsewhere.png"}) == []

    assert all(1 in h["pages"] for h in search(api, "total", top_k=20, filters={"page": 1}))
    assert search(api, "total", filters={"page": 2}) == []
    assert search(api, "total", filters={"page_from": 2, "page_to": 5}) == []

    tables = search(api, "Fuse 10A", top_k=20, filters={"label": "table"})
    assert tables and all(any(r["label"] == "table" for r in h["regions"]) for h in tables)
    assert "Fuse 10A" in tables[0]["text"]

    for mode in ("dense", "sparse"):
        (top,) = search(api, "Drill bit 6mm", top_k=1, mode=mode)
        assert "Drill bit 6mm" in top["text"]
        region = top["regions"][0]
        assert region["page_width"] == 1654 and len(region["bbox_norm"]) == 4


# --- query and the images a citation links to -----------------------------------------------


@pytest.fixture(scope="module")
def total_answer(api) -> dict:
    response = api.post("/v1/query", json={"question": TOTAL_QUESTION, "top_k": 5})
    assert response.status_code == 200, response.text
    return response.json()


def test_the_total_is_answered_and_cited_at_line_level(total_answer, invoice_id):
    assert "$2,448.50" in total_answer["answer"]
    citations = total_answer["citations"]
    assert citations and all(c["doc_id"] == invoice_id for c in citations)
    assert [c["n"] for c in citations] == list(range(1, len(citations) + 1))
    assert all(f"[{c['n']}]" in total_answer["answer"] for c in citations)
    lines = {ln["text"]: ln["bbox"] for c in citations for ln in c["lines"]}
    assert iou(lines["$2,448.50"], INVOICE_SHEET.find("$2,448.50").bbox) > 0.5
    assert "Total due:" not in lines  # the value is cited, not its key
    for c in citations:
        assert (c["page_width"], c["page_height"]) == (1654, 2339)
        assert all(BBox(*c["bbox"]).coverage_of(BBox(*ln["bbox"])) > 0.9 for ln in c["lines"])
        x0, y0, x1, y1 = c["bbox"]
        assert c["bbox_norm"] == [
            round(x0 * 1000 / 1654),
            round(y0 * 1000 / 2339),
            round(x1 * 1000 / 1654),
            round(y1 * 1000 / 2339),
        ]


def test_a_crop_is_the_cited_box_of_the_page_with_the_padding_asked_for(api, total_answer):
    citation = total_answer["citations"][-1]
    x0, y0, x1, y1 = citation["bbox"]
    page = decode(api.get(citation["page_image_url"]))

    crop = decode(api.get(citation["crop_url"]))
    assert crop.size == (x1 - x0, y1 - y0)
    padded = decode(api.get(citation["crop_url"], params={"pad": 12}))
    assert padded.size == (x1 - x0 + 24, y1 - y0 + 24)
    same = np.asarray(page.crop((x0 - 12, y0 - 12, x1 + 12, y1 + 12)), dtype=int)
    assert np.abs(np.asarray(padded, dtype=int) - same).mean() < 4  # that part of the page
    assert np.asarray(crop.convert("L")).min() < 80  # with the text's ink in it


def test_the_page_image_has_the_size_the_boxes_are_measured_in(api, total_answer, receipt_id):
    citation = total_answer["citations"][0]
    page = decode(api.get(citation["page_image_url"]))
    assert page.size == (citation["page_width"], citation["page_height"])
    receipt = decode(api.get(f"/v1/documents/{receipt_id}/pages/1/image"))
    assert receipt.size == (900, 1500)


def red_mask(image: Image.Image) -> np.ndarray:
    rgb = np.asarray(image, dtype=int)
    return (rgb[..., 0] > 170) & (rgb[..., 1] < 110) & (rgb[..., 2] < 110)


def assert_outlined(plain: Image.Image, marked: Image.Image, boxes: list[BBox]) -> None:
    """Red outlines lie on the boxes' edges and nowhere else; nothing else changed."""
    assert marked.size == plain.size
    red = red_mask(marked)
    assert not red_mask(plain).any()
    near = np.zeros(red.shape, dtype=bool)  # each box's edges, give or take JPEG blur
    inside = np.zeros(red.shape, dtype=bool)
    for box in boxes:
        near[max(0, box.y0 - 4) : box.y1 + 4, max(0, box.x0 - 4) : box.x1 + 4] = True
        near[box.y0 + 10 : box.y1 - 10, box.x0 + 10 : box.x1 - 10] = False
        inside[max(0, box.y0 - 8) : box.y1 + 8, max(0, box.x0 - 8) : box.x1 + 8] = True
        for edge in (
            red[box.y0 : box.y0 + 4, box.x0 : box.x1],  # top
            red[box.y1 - 4 : box.y1, box.x0 : box.x1],  # bottom
            red[box.y0 : box.y1, box.x0 : box.x0 + 4].T,  # left
            red[box.y0 : box.y1, box.x1 - 4 : box.x1].T,  # right
        ):
            assert edge.any(axis=0).mean() > 0.9  # red along the whole edge
    assert red.sum() > 0 and not (red & ~near).any()
    changed = np.abs(np.asarray(marked, dtype=int) - np.asarray(plain, dtype=int)).max(axis=2)
    assert not ((changed > 48) & ~inside).any()  # outside the boxes only JPEG noise
    for box in boxes:  # the inside is tinted yellow: blue drops, red stays
        inner = (slice(box.y0 + 8, box.y1 - 8), slice(box.x0 + 8, box.x1 - 8))
        before = np.asarray(plain, dtype=int)[inner]
        after = np.asarray(marked, dtype=int)[inner]
        white = before.min(axis=2) > 230
        assert white.mean() > 0.3
        assert (before[..., 2][white] - after[..., 2][white]).mean() > 40
        assert abs((before[..., 0][white] - after[..., 0][white]).mean()) < 10


def test_the_highlight_outlines_exactly_the_cited_region(api, total_answer):
    for citation in total_answer["citations"]:
        plain = decode(api.get(citation["page_image_url"]))
        marked = decode(api.get(citation["highlight_url"]))
        assert_outlined(plain, marked, [BBox(*citation["bbox"])])


def test_highlight_draws_several_regions_and_explicit_boxes(api, invoice_id):
    regions = api.get(f"/v1/documents/{invoice_id}/json").json()["pages"][0]["regions"]
    ids = [r["id"] for r in regions[:2]]
    url = f"/v1/documents/{invoice_id}/pages/1/image"
    plain = decode(api.get(url))
    marked = decode(api.get(url, params={"highlight": ",".join(ids)}))
    assert_outlined(plain, marked, [BBox(*r["bbox"]) for r in regions[:2]])

    boxes = [BBox(100, 1500, 700, 1800), BBox(900, 1900, 1500, 2200)]  # blank paper
    spec = ";".join(",".join(map(str, box)) for box in boxes)
    assert_outlined(plain, decode(api.get(f"{url}?{urlencode({'boxes': spec})}")), boxes)


def test_chinese_questions_are_answered_from_the_receipt(api, receipt_id):
    for question, expected in [
        ("华联超市小票号044571的合计金额是多少？", "¥165.04"),
        ("联系人是谁？", "徐明"),
    ]:
        body = api.post("/v1/query", json={"question": question}).json()
        assert expected in body["answer"], body
        assert body["citations"] and {c["doc_id"] for c in body["citations"]} == {receipt_id}


def test_query_filters_restrict_the_evidence(api, receipt_id):
    body = api.post(
        "/v1/query", json={"question": TOTAL_QUESTION, "filters": {"doc_id": receipt_id}}
    ).json()
    assert "$2,448.50" not in body["answer"]
    assert {c["doc_id"] for c in body["citations"]} <= {receipt_id}


def test_an_unrelated_question_is_not_answered(api, upload):
    for question in ("What is the capital of Mongolia?", "Who won the 1998 World Cup?"):
        body = api.post("/v1/query", json={"question": question, "top_k": 5}).json()
        assert body == {"answer": NOT_FOUND["en"], "citations": []}
    body = api.post("/v1/query", json={"question": "蒙古的首都是哪里？"}).json()
    assert body == {"answer": NOT_FOUND["zh"], "citations": []}


def test_the_streamed_answer_is_citations_then_tokens_then_done(api, total_answer):
    events = streamed_query(api, {"question": TOTAL_QUESTION, "top_k": 5})

    names = [name for name, _ in events]
    assert names[0] == "citations" and names[-1] == "done"
    assert names.count("citations") == names.count("done") == 1
    assert set(names[1:-1]) == {"token"} and len(names) > 3
    done = events[-1][1]
    assert "".join(token for _, token in events[1:-1]) == done["answer"]
    assert events[0][1] == done["citations"]
    assert done == total_answer  # the same answer as without streaming


def test_extract_returns_each_field_with_its_citations(api, invoice_id):
    response = api.post(
        "/v1/extract",
        json={"doc_id": invoice_id, "fields": ["total", "due date", "seller", "shoe size"]},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["doc_id"] == invoice_id
    fields = {f["name"]: f for f in body["fields"]}
    assert list(fields) == ["total", "due date", "seller", "shoe size"]
    assert fields["total"]["value"] == "$2,448.50"
    assert "$2,448.50" in [ln["text"] for c in fields["total"]["citations"] for ln in c["lines"]]
    assert fields["due date"]["value"].replace(" ", "") == "25July2025"
    assert "Orchid Logistics" in fields["seller"]["value"]
    assert all(c["doc_id"] == invoice_id for f in body["fields"] for c in f["citations"])
    assert fields["shoe size"] == {"name": "shoe size", "value": None, "citations": []}


# --- errors ---------------------------------------------------------------------------------


def assert_json_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert isinstance(response.json()["detail"], str) and response.json()["detail"]


def test_missing_documents_pages_regions_and_jobs_are_json_404s(api, invoice_id):
    missing = "0123456789abcdef"
    for method, url in [
        ("GET", f"/v1/documents/{missing}"),
        ("DELETE", f"/v1/documents/{missing}"),
        ("GET", f"/v1/documents/{missing}/markdown"),
        ("GET", f"/v1/documents/{missing}/json"),
        ("GET", f"/v1/documents/{missing}/pages/1/image"),
        ("GET", f"/v1/documents/{invoice_id}/pages/7/image"),
        ("GET", f"/v1/documents/{invoice_id}/pages/1/image?highlight={invoice_id}:p1:r999"),
        ("GET", f"/v1/documents/{invoice_id}/pages/1/image?highlight={invoice_id}:p2:r0"),
        ("GET", f"/v1/documents/{invoice_id}/pages/1/image?highlight=nonsense"),
        ("GET", f"/v1/regions/{invoice_id}:p1:r999/crop"),
        ("GET", f"/v1/regions/{invoice_id}:p9:r0/crop"),
        ("GET", f"/v1/regions/{missing}:p1:r0/crop"),
        ("GET", "/v1/regions/not-a-region-id/crop"),
        ("GET", "/v1/jobs/000000000000"),
    ]:
        assert_json_error(api.request(method, url), 404)
    assert_json_error(api.post("/v1/extract", json={"doc_id": missing, "fields": ["x"]}), 404)
    for boxes in ("1,2,3", "10,10,5,5", "a,b,c,d", "nan,0,10,10", "1e400,0,10,10"):
        bad = api.get(f"/v1/documents/{invoice_id}/pages/1/image", params={"boxes": boxes})
        assert_json_error(bad, 422)
    assert api.get(f"/v1/documents/{invoice_id}/pages/0/image").status_code == 422


def test_uploads_over_the_size_limit_are_413_and_other_types_415(api, settings):
    big = b"\x89PNG\r\n\x1a\n" + bytes(2 * (1 << 20))  # 2 MB against max_upload_mb=1
    response = api.post("/v1/documents", files={"files": ("huge.png", big, "image/png")})
    assert_json_error(response, 413)
    assert "huge.png" in response.json()["detail"] and "1 MB" in response.json()["detail"]
    incoming = Path(settings.data_dir) / "uploads" / ".incoming"
    assert not any(incoming.iterdir())  # nothing left half-written

    text = api.post("/v1/documents", files={"files": ("notes.txt", b"hello\n", "text/plain")})
    assert_json_error(text, 415)
    assert "notes.txt" in text.json()["detail"]
    disguised = api.post(
        "/v1/documents", files={"files": ("scan.png", b"%!PS-Adobe-3.0\n" * 10, "image/png")}
    )
    assert_json_error(disguised, 415)  # the type comes from the bytes, not the name
    empty = api.post("/v1/documents", files={"files": ("empty.png", b"", "image/png")})
    assert_json_error(empty, 415)
    assert "empty" in empty.json()["detail"]


# --- the API key ----------------------------------------------------------------------------


def secured_requests(app, doc_id: str) -> list[tuple[str, str]]:
    """Every /v1 route of the app's OpenAPI schema (and /metrics), path parameters filled in."""
    values = {
        "doc_id": doc_id,
        "number": "1",
        "region_id": f"{doc_id}:p1:r0",
        "job_id": "000000000000",
    }
    return [
        (method.upper(), path.format(**values))
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/v1/") or path == "/metrics"
        for method in operations
    ]


def test_every_route_but_healthz_needs_the_api_key(app, base_url, api, invoice_id):
    requests = secured_requests(app, invoice_id)
    assert len(requests) >= 13
    assert ("GET", f"/v1/regions/{invoice_id}:p1:r0/crop") in requests
    with httpx.Client(base_url=base_url, timeout=60) as anonymous:
        for method, url in requests:
            for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": "Bearer wrong"}):
                response = anonymous.request(method, url, headers=headers, json={})
                assert_json_error(response, 401)
                assert response.headers["www-authenticate"] == "Bearer"
        health = anonymous.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}

        for headers in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}):
            assert anonymous.get("/v1/documents", headers=headers).status_code == 200
            assert anonymous.get("/metrics", headers=headers).status_code == 200
            crop = anonymous.get(f"/v1/regions/{invoice_id}:p1:r0/crop", headers=headers)
            assert crop.status_code == 200
            query = anonymous.post("/v1/query", headers=headers, json={"question": "total"})
            assert query.status_code == 200


def test_without_a_configured_key_the_api_is_open(tmp_path):
    from fastapi.testclient import TestClient

    with TestClient(app_for(Settings(data_dir=tmp_path))) as client:
        assert client.get("/v1/documents").json() == []
        assert client.get("/metrics").status_code == 200


# --- metrics, delete --------------------------------------------------------------------------


def test_metrics_count_requests_by_route_and_ingested_files(api, total_answer):
    text = api.get("/metrics").text
    assert 'scanrag_http_requests_total{method="POST",route="/v1/query",status="200"}' in text
    assert (
        'scanrag_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="200"}' in text
    )
    assert 'status="401"' in text and 'status="404"' in text
    assert 'scanrag_http_request_seconds_bucket{le="0.15",method="POST",route="/v1/query"}' in text
    assert 'scanrag_ingest_files_total{status="added"} 2.0' in text
    assert "scanrag_ingest_pages_total 2.0" in text


def test_a_deleted_document_is_gone_from_every_route(api, invoice_id, tmp_path):
    items = pdf_paragraph(72, 100, "Delivery note DN-4471: forty crates of amberline tiles.", 450)
    pdf = text_pdf([items], tmp_path / "dn.pdf")
    upload = api.post(
        "/v1/documents?wait=true",
        files={"files": ("dn-4471.pdf", pdf.read_bytes(), "application/pdf")},
    )
    assert upload.status_code == 200, upload.text  # with wait=true: answered when indexed
    job = upload.json()["job"]
    assert job["status"] == "done" and job["report"]["added"] == 1
    doc_id = next(
        d["doc_id"] for d in api.get("/v1/documents").json() if d["source"].endswith("dn-4471.pdf")
    )
    assert search(api, "amberline crates", filters={"doc_id": doc_id})

    assert api.delete(f"/v1/documents/{doc_id}").status_code == 204

    for url in (
        f"/v1/documents/{doc_id}",
        f"/v1/documents/{doc_id}/markdown",
        f"/v1/documents/{doc_id}/json",
        f"/v1/documents/{doc_id}/pages/1/image",
        f"/v1/regions/{doc_id}:p1:r0/crop",
    ):
        assert_json_error(api.get(url), 404)
    assert_json_error(api.delete(f"/v1/documents/{doc_id}"), 404)
    assert doc_id not in {d["doc_id"] for d in api.get("/v1/documents").json()}
    assert search(api, "amberline crates", filters={"doc_id": doc_id}) == []
    assert all(h["doc_id"] != doc_id for h in search(api, "amberline crates", top_k=20))
    assert invoice_id in {d["doc_id"] for d in api.get("/v1/documents").json()}  # others stay
