"""The web page at `/`, driven in Debian's Chromium by Playwright against a real uvicorn server.

Needs /usr/bin/chromium (`apt-get install chromium`): Playwright's own browser download does
not work here, so the test fails, rather than skips, when the browser is missing.
Screenshots land in each test's tmp_path; the main one is also copied to
/tmp/scanrag-web-screenshot.png.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from seams import app_for

from scanrag.config import Settings
from scanrag.testing import invoice, text_pdf

pytestmark = pytest.mark.slow  # drives Chromium
playwright = pytest.importorskip("playwright.sync_api")
expect, sync_playwright = playwright.expect, playwright.sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",  # without these Chromium floods the closed network
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--no-first-run",
]
KEY = "web-test-key"
QUESTION = "What is the total due on invoice INV-1001?"
INDEXING_MS = 180_000  # OCR and model loading on a loaded 2-core box
SCREENSHOT = Path("/tmp/scanrag-web-screenshot.png")


class Server:
    """create_app() served by uvicorn on a free 127.0.0.1 port, on a background thread."""

    def __init__(self, settings: Settings) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(app_for(settings), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]})
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the scanrag server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


@contextmanager
def serving(settings: Settings) -> Iterator[Server]:
    server = Server(settings)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the web page test needs Debian's Chromium "
            "(apt-get install chromium)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh tab; a JavaScript exception on the page fails the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def message(page) -> str:
    box = page.locator("#message")
    expect(box).to_be_visible()
    return box.inner_text()


def highlight_geometry(page, region_id: str) -> dict:
    return page.evaluate(
        """(regionId) => {
            const img = document.getElementById("page-image");
            const box = document.querySelector(`.box[data-region="${regionId}"]`);
            const rect = (r) => ({x: r.x, y: r.y, width: r.width, height: r.height});
            return {
                image: rect(img.getBoundingClientRect()),
                box: rect(box.getBoundingClientRect()),
                natural: [img.naturalWidth, img.naturalHeight],
                active: box.matches(".active"),
            };
        }""",
        region_id,
    )


def assert_outlines(page, citation: dict, active: bool = True) -> dict:
    """The highlight covers exactly the cited bbox, scaled to the image as displayed."""
    geometry = highlight_geometry(page, citation["region_id"])
    image, box = geometry["image"], geometry["box"]
    assert geometry["natural"] == [citation["page_width"], citation["page_height"]]
    assert geometry["active"] == active
    sx = image["width"] / citation["page_width"]
    sy = image["height"] / citation["page_height"]
    assert abs(sx - sy) < 0.01, "the page image is displayed distorted"
    x0, y0, x1, y1 = citation["bbox"]
    expected = {
        "x": image["x"] + x0 * sx,
        "y": image["y"] + y0 * sy,
        "width": (x1 - x0) * sx,
        "height": (y1 - y0) * sy,
    }
    for side, value in expected.items():
        assert box[side] == pytest.approx(value, abs=2), (side, box, expected, image)
    return geometry


def assert_crop_shown(page, citation: dict) -> None:
    """The detail panel shows the region's crop (the crop of a bbox is the bbox's size)."""
    x0, y0, x1, y1 = citation["bbox"]
    page.wait_for_function(
        "([w, h]) => { const crop = document.getElementById('crop');"
        " return crop.naturalWidth === w && crop.naturalHeight === h; }",
        arg=[x1 - x0, y1 - y0],
    )


def another_region_cited(server: Server, first: dict) -> dict:
    """A citation of another region on the first citation's page, built from the Document."""
    headers = {"X-API-Key": KEY}
    doc = httpx.get(f"{server.url}/v1/documents/{first['doc_id']}/json", headers=headers).json()
    page = doc["pages"][first["page"] - 1]
    region = next(r for r in page["regions"] if r["id"] != first["region_id"])
    return {
        **first,
        "n": 2,
        "region_id": region["id"],
        "label": region["label"],
        "bbox": region["bbox"],
        "bbox_norm": region["bbox_norm"],
        "text": region["text"],
        "lines": [],
        "crop_url": f"/v1/regions/{region['id']}/crop",
        "highlight_url": f"{first['page_image_url']}?highlight={region['id']}",
    }


def add_citation(route, citation: dict) -> None:
    response = route.fetch()
    body = response.json()
    body["answer"] += f" [{citation['n']}]"
    body["citations"].append(citation)
    route.fulfill(response=response, json=body)


def test_upload_ask_and_click_a_citation_outlines_its_region_on_the_page(page, tmp_path):
    """With SCANRAG_API_KEY set: the key prompt, upload, progress, answer, citation viewer."""
    scan = tmp_path / "invoice.png"
    invoice().image(noise=3).save(scan)
    notes = text_pdf(
        [
            [(72, 100, "Meeting notes, page one: the warehouse move is planned.", 12)],
            [(72, 100, "Meeting notes, page two: inventory counts are due in May.", 12)],
        ],
        tmp_path / "notes.pdf",
    )
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    with serving(Settings(data_dir=tmp_path / "data", api_key=KEY)) as server:
        page.goto(server.url + "/")
        expect(page).to_have_title("scanrag")
        assert "needs an API key (401)" in message(page)

        page.get_by_label("API key").fill(KEY)
        page.get_by_role("button", name="Use key").click()
        expect(page.locator("#message")).to_be_hidden()

        page.set_input_files("#files", [str(scan), str(notes)])
        job = page.locator("#jobs .job").first
        expect(job).to_have_class("job done", timeout=INDEXING_MS)
        expect(job.locator(".job-status")).to_have_text("Indexed 2 of 2 file(s), 3 page(s) read")
        rows = page.locator("#docs tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.filter(has_text="invoice.png").locator("td").nth(1)).to_have_text("1")

        page.get_by_label("Question").fill(QUESTION)
        with page.expect_response("**/v1/query") as answered:
            page.get_by_label("Question").press("Enter")
        body = answered.value.json()
        assert "2,448.50" in body["answer"]
        expect(page.locator("#answer-text")).to_contain_text("2,448.50")
        first = body["citations"][0]

        page.locator("#citations button.cite").first.click()
        expect(page.locator(f'.box.active[data-region="{first["region_id"]}"]')).to_be_visible()
        page.wait_for_function(
            "() => document.getElementById('page-image').naturalWidth > 0"
            " && document.getElementById('crop').naturalWidth > 0"
        )
        assert_outlines(page, first)
        assert_crop_shown(page, first)
        expect(page.locator("#detail-label")).to_have_text(first["label"])
        expect(page.locator("#detail-text")).to_have_text(first["text"])
        expect(page.locator("#page-label")).to_have_text("Page 1 of 1")
        shot = tmp_path / "web-citation.png"
        page.screenshot(path=shot, full_page=True)
        shutil.copyfile(shot, SCREENSHOT)
        print(f"screenshot: {shot} (copied to {SCREENSHOT})")

        widths = [assert_outlines(page, first)["image"]["width"]]
        for width, height in [(900, 800), (1800, 1100)]:  # the outline follows the image
            page.set_viewport_size({"width": width, "height": height})
            page.wait_for_timeout(100)
            widths.append(assert_outlines(page, first)["image"]["width"])
        assert widths[1] != widths[0] != widths[2], "the displayed page should follow the window"
        page.screenshot(path=tmp_path / "web-citation-wide.png", full_page=True)

        # Two citations of one page: both outlined, the clicked one emphasised.
        second = another_region_cited(server, first)
        page.route("**/v1/query", lambda route: add_citation(route, second))
        page.get_by_role("button", name="Ask", exact=True).click()
        page.locator("#answer-text button.ref", has_text="[2]").click()
        expect(page.locator(".box")).to_have_count(2)
        assert_outlines(page, second)
        assert_outlines(page, first, active=False)
        expect(page.locator("#detail-label")).to_have_text(second["label"])
        assert_crop_shown(page, second)
        page.screenshot(path=tmp_path / "web-two-citations.png", full_page=True)

        page.locator("#docs button", has_text="notes.pdf").click()
        expect(page.locator("#page-label")).to_have_text("Page 1 of 2")
        expect(page.locator(".box")).to_have_count(0)
        page.get_by_role("button", name="Next page").click()
        expect(page.locator("#page-label")).to_have_text("Page 2 of 2")
        expect(page.get_by_role("button", name="Next page")).to_be_disabled()
        page.get_by_role("button", name="Previous page").click()
        expect(page.locator("#page-label")).to_have_text("Page 1 of 2")

    outside = [u for u in requested if not u.startswith((server.url, "blob:", "data:"))]
    assert not outside, f"the page loaded something from outside the app: {outside}"


def test_unsupported_file_and_failed_ingest_read_as_messages(page, tmp_path):
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.7\n" + b"this is not really a PDF\n" * 20)
    with serving(Settings(data_dir=tmp_path / "data")) as server:
        page.goto(server.url + "/")
        dropped = page.evaluate_handle(
            """() => {
                const files = new DataTransfer();
                files.items.add(new File(["just some text"], "notes.txt", {type: "text/plain"}));
                return files;
            }"""
        )
        page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})
        assert "notes.txt: not a supported document type" in message(page)
        expect(page.locator("#jobs .job.failed")).to_contain_text("not a supported document type")

        page.set_input_files("#files", str(broken))
        job = page.locator("#jobs .job").first
        expect(job).to_have_class("job failed", timeout=INDEXING_MS)
        expect(job.locator(".job-status")).to_have_text("Failed: nothing was indexed")
        expect(job.locator(".errors li")).to_contain_text("broken.pdf: not a readable PDF")
        # refused at upload (HTTP 422): never stored, so not listed among the documents
        expect(job.locator(".errors li")).to_contain_text("(HTTP 422)")
        expect(page.locator("#docs-empty")).to_be_visible()
        page.screenshot(path=tmp_path / "web-errors.png", full_page=True)


def test_server_down_reads_as_a_message(page, tmp_path):
    with serving(Settings(data_dir=tmp_path / "data")) as server:
        page.goto(server.url + "/")
        expect(page.locator("#docs-empty")).to_be_visible()
    page.get_by_label("Question").fill(QUESTION)
    page.get_by_role("button", name="Ask", exact=True).click()
    assert "Cannot reach the scanrag server" in message(page)
    assert "is it running?" in message(page)


def test_losing_the_job_after_an_accepted_upload_says_so_and_still_lists_the_document(
    page, tmp_path
):
    line = (72, 100, "Memo on the harbour crane inspection.", 12)
    memo = text_pdf([[line]], tmp_path / "memo.pdf")
    with serving(Settings(data_dir=tmp_path / "data")) as server:
        page.goto(server.url + "/")
        page.route("**/v1/jobs/*", lambda route: route.fulfill(status=503, body="down"))
        page.set_input_files("#files", str(memo))
        job = page.locator("#jobs .job").first
        expect(job).to_have_class("job failed", timeout=INDEXING_MS)
        expect(job.locator(".job-status")).to_have_text(
            "Uploaded; lost track of indexing (see Documents)"
        )
        assert "503" in message(page)
        # the upload itself was accepted: the document is listed once it is indexed
        deadline = time.monotonic() + INDEXING_MS / 1000
        while "memo.pdf" not in page.locator("#docs").inner_text():
            assert time.monotonic() < deadline, "the uploaded document never appeared"
            page.get_by_role("button", name="Refresh").click()
            page.wait_for_timeout(500)
