"""Document → layout-aware Markdown: regions in reading order, each behind an anchor comment.

The anchors carry region ids and both box forms, so the Markdown still renders as a normal
document while every paragraph can be traced back to its place on the page image:

    <!-- page 1 width=1654 height=2339 -->
    <!-- region 3f9c0a1b2c3d4e5f:p1:r0 label=title bbox=132,157,980,210 norm=80,67,593,90 -->
    # INVOICE No. 2024-0315

A scanned page that was stood upright says how (`Page.rotation`), e.g.
`<!-- page 2 width=2339 height=1654 turn=90 skew=-2.4 -->`: turned 90° clockwise, then
rotated 2.4° counter-clockwise; its boxes are on the upright page.
"""

from __future__ import annotations

from .model import Document, Page, Region


def _comment(text: str) -> str:
    return "<!-- " + text.replace("--", "‐‐") + " -->"


def _box(box: tuple[int, int, int, int]) -> str:
    return ",".join(str(value) for value in box)


def region_anchor(region: Region) -> str:
    boxes = f"bbox={_box(region.bbox)} norm={_box(region.bbox_norm)}"
    return _comment(f"region {region.id} label={region.label} {boxes}")


def page_markdown(page: Page, anchors: bool = True) -> str:
    parts: list[str] = []
    if anchors:
        header = f"page {page.number} width={page.width} height={page.height}"
        if page.rotation and (page.rotation.turn or page.rotation.skew):
            header += f" turn={page.rotation.turn} skew={page.rotation.skew:g}"
        if page.error:
            header += f' error="{page.error}"'
        parts.append(_comment(header))
    for region in page.regions:
        body = region.markdown or region.text
        if anchors:
            parts.append(f"{region_anchor(region)}\n{body}" if body else region_anchor(region))
        elif body:
            parts.append(body)
    return "\n\n".join(parts) + "\n"


def region_spans(page: Page, text: str, anchors: bool) -> list[tuple[Region, int, int]]:
    """Where each region's body sits in `page_markdown(page, anchors)`, so a chunk of that text
    can be traced back to boxes: (region, start, end) for every region with a body."""
    spans = []
    cursor = 0
    for region in page.regions:
        body = region.markdown or region.text
        if not body:
            continue
        if anchors:  # a short body ("1") must not be found inside its own anchor
            anchor = region_anchor(region)
            cursor = text.index(anchor, cursor) + len(anchor)
        start = text.index(body, cursor)
        cursor = start + len(body)
        spans.append((region, start, cursor))
    return spans


def document_markdown(document: Document, anchors: bool = True) -> str:
    return "\n".join(page_markdown(page, anchors) for page in document.pages)
