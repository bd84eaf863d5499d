"""Layout-aware Markdown: regions in reading order, each behind an anchor comment carrying
its id and both box forms, so the file renders as a normal document."""

from __future__ import annotations

import re

import scanrag
from scanrag import testing
from scanrag.ingest.markdown import document_markdown, region_anchor
from scanrag.ingest.model import BBox, Document, Page, ParserInfo, Region

DOC_ID = "8b9c7782e362e03e"
ANCHOR = re.compile(
    r"<!-- region (?P<id>\S+) label=(?P<label>\w+) "
    r"bbox=(?P<bbox>\d+,\d+,\d+,\d+) norm=(?P<norm>\d+,\d+,\d+,\d+) -->"
)


def region(index: int, label: str, bbox: BBox, text: str, markdown: str = "") -> Region:
    return Region(
        id=f"{DOC_ID}:p1:r{index}",
        page=1,
        index=index,
        label=label,
        bbox=bbox,
        bbox_norm=bbox.to_norm(1654, 2339),
        text=text,
        markdown=markdown or text,
    )


def document(*pages: Page) -> Document:
    return Document(
        id=DOC_ID,
        source="invoice.png",
        sha256=DOC_ID + "0" * 48,
        mime="image/png",
        pages=list(pages),
        parser=ParserInfo(name="embedded", version="x", fingerprint="f"),
    )


def test_anchor_format_is_exactly_as_documented():
    title = region(0, "title", BBox(143, 159, 631, 217), "INVOICE INV-1001", "# INVOICE INV-1001")
    assert region_anchor(title) == (
        "<!-- region 8b9c7782e362e03e:p1:r0 label=title bbox=143,159,631,217 norm=86,68,381,93 -->"
    )


def a4_page(*regions: Region) -> Page:
    """Page 1 of an A4 scan at 200 dpi holding these regions."""
    return Page(number=1, width=1654, height=2339, dpi=200, regions=list(regions))


def test_document_renders_page_header_then_each_region_behind_its_anchor():
    table_md = "| Item | Qty |\n| --- | --- |\n| Drill bit 6mm | 25 |"
    page = a4_page(
        region(0, "title", BBox(143, 159, 631, 217), "INVOICE INV-1001", "# INVOICE INV-1001"),
        region(1, "table", BBox(143, 595, 1331, 817), "Item | Qty", table_md),
    )
    assert document_markdown(document(page)) == (
        "<!-- page 1 width=1654 height=2339 -->\n"
        "\n"
        "<!-- region 8b9c7782e362e03e:p1:r0 label=title bbox=143,159,631,217 "
        "norm=86,68,381,93 -->\n"
        "# INVOICE INV-1001\n"
        "\n"
        "<!-- region 8b9c7782e362e03e:p1:r1 label=table bbox=143,595,1331,817 "
        "norm=86,254,805,349 -->\n"
        "| Item | Qty |\n| --- | --- |\n| Drill bit 6mm | 25 |\n"
    )


def test_without_anchors_only_the_content_remains():
    page = a4_page(
        region(0, "title", BBox(143, 159, 631, 217), "Report", "# Report"),
        region(1, "figure", BBox(143, 300, 631, 600), ""),
        region(2, "text", BBox(143, 700, 631, 740), "Body text."),
    )
    assert document_markdown(document(page), anchors=False) == "# Report\n\nBody text.\n"


def test_region_without_text_keeps_its_anchor():
    page = a4_page(region(0, "figure", BBox(100, 100, 500, 400), ""))
    assert document_markdown(document(page)).splitlines()[-1] == region_anchor(page.regions[0])


def test_failed_page_is_a_comment_with_its_error_and_cannot_break_the_comment():
    good = a4_page()
    bad = Page(
        number=2,
        width=0,
        height=0,
        dpi=200,
        error="scan.tif: page 2 cannot be decoded (broken strip --> bytes)",
    )
    markdown = document_markdown(document(good, bad))
    assert markdown.splitlines()[-1] == (
        '<!-- page 2 width=0 height=0 error="scan.tif: page 2 cannot be decoded '
        '(broken strip ‐‐> bytes)" -->'
    )
    assert markdown.count("-->") == 2  # the error's own "-->" cannot close the comment early


def test_markdown_of_a_parsed_pdf_has_one_anchor_per_region_with_its_boxes(tmp_path):
    items = [(72, 90, "Delivery schedule", 20), (72, 140, "Deliveries arrive on Mondays.", 11)]
    path = testing.text_pdf(
        [items, [(72, 90, "Second page text of the schedule", 11)]], tmp_path / "s.pdf"
    )
    doc = scanrag.parse(path, parser="pdf-text")

    markdown = scanrag.to_markdown(doc)
    anchors = list(ANCHOR.finditer(markdown))

    assert [match["id"] for match in anchors] == [region.id for region in doc.regions()]
    for match, region in zip(anchors, doc.regions(), strict=True):
        assert match["label"] == region.label
        assert match["bbox"] == ",".join(map(str, region.bbox))
        assert match["norm"] == ",".join(map(str, region.bbox_norm))
    assert markdown.count("<!-- page ") == 2
    assert "\n# Delivery schedule\n" in markdown
    assert "<!-- page 2 width=1653 height=2339 -->" in markdown
