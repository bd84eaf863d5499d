"""The document model: boxes in pixels and 0–1000, ids, JSON round-trip."""

from scanrag.ingest.model import BBox, Document, Line, Page, ParserInfo, Region, region_id_for


def test_box_converts_to_norm_and_back_within_a_pixel():
    box = BBox(126, 639, 1514, 933)
    norm = box.to_norm(1654, 2339)
    assert norm == BBox(76, 273, 915, 399)
    back = BBox.from_norm(norm, 1654, 2339)
    assert all(abs(a - b) <= 1 for a, b in zip(back, box, strict=True))


def test_box_to_pdf_points_scales_by_page_size():
    # A4 at 200 dpi: 1654 px ↔ 595.44 pt
    assert BBox(0, 0, 1654, 2339).to_points(1654, 2339, 595.44, 842.04) == (0, 0, 595.44, 842.04)
    x0, y0, _, _ = BBox(200, 400, 300, 500).to_points(1654, 2339, 595.44, 842.04)
    assert (x0, y0) == (72.0, 144.0)


def test_iou_and_coverage():
    a, b = BBox(0, 0, 10, 10), BBox(5, 0, 15, 10)
    assert a.iou(b) == 50 / 150
    assert a.coverage_of(b) == 0.5
    assert a.intersection(BBox(20, 20, 30, 30)).area == 0
    assert a.union(b) == BBox(0, 0, 15, 10)


def test_document_round_trips_through_json():
    region = Region(
        id=region_id_for("3f9c0a1b2c3d4e5f", 1, 0),
        page=1,
        index=0,
        label="title",
        bbox=BBox(132, 157, 980, 210),
        bbox_norm=BBox(80, 67, 593, 90),
        text="INVOICE",
        lines=[Line(text="INVOICE", bbox=BBox(132, 157, 980, 210), confidence=0.99)],
    )
    doc = Document(
        id="3f9c0a1b2c3d4e5f",
        source="invoice.png",
        sha256="3f9c0a1b2c3d4e5f" + "0" * 48,
        mime="image/png",
        pages=[Page(number=1, width=1654, height=2339, dpi=200, regions=[region])],
        parser=ParserInfo(name="embedded", version="x", fingerprint="f"),
    )
    again = Document.model_validate_json(doc.model_dump_json())
    assert again == doc
    assert again.region("3f9c0a1b2c3d4e5f:p1:r0").bbox == BBox(132, 157, 980, 210)
    assert '"bbox":[132,157,980,210]' in doc.model_dump_json()
