"""Loaders: types are sniffed from bytes, every format becomes an upright 8-bit RGB page,
PDF pages are rendered at the configured dpi with their text layer on the rendered pixels,
and folders are walked recursively in a fixed order."""

from __future__ import annotations

import io
import math
import os
import threading
from pathlib import Path

import numpy as np
import pymupdf
import pytest
from PIL import Image, ImageDraw

import scanrag
from scanrag import Settings, testing
from scanrag.ingest.loaders import PageImage, discover, iter_pages, open_source, sniff_mime
from scanrag.ingest.model import BBox

#: Where `marked_image` draws its black square.
SQUARE = BBox(120, 80, 220, 180)


def marked_image(width: int = 400, height: int = 300, square: BBox = SQUARE) -> Image.Image:
    """A white page with one black square at a known place."""
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).rectangle([square.x0, square.y0, square.x1 - 1, square.y1 - 1], "black")
    return image


def load(path: Path, render: bool = True, **options) -> list[PageImage]:
    """Every page of a file; PDF pages can only be rendered while the file is being read."""
    settings = Settings(**options)
    pages = []
    for page in iter_pages(open_source(path, settings), settings):
        if render and page.error is None:
            assert page.image.size == (page.width, page.height)
        pages.append(page)
    return pages


def near(a: BBox, b: BBox, pixels: int) -> bool:
    return all(abs(p - q) <= pixels for p, q in zip(a, b, strict=True))


# --- sniffing ---------------------------------------------------------------------------


def test_png_named_pdf_is_read_as_png(tmp_path):
    path = tmp_path / "scan.pdf"
    marked_image().save(path, format="PNG")

    source = open_source(path, Settings())
    (page,) = load(path)

    assert source.mime == "image/png"
    assert (page.width, page.height) == (400, 300)
    assert testing.ink_box(page.image) == SQUARE
    assert discover([path]).files == [(path, "image/png")]


def test_pdf_named_jpg_is_read_as_pdf(tmp_path):
    path = testing.text_pdf([[(72, 100, "A PDF wearing a JPEG name", 12)]], tmp_path / "x.jpg")
    source = open_source(path, Settings())
    (page,) = load(path)
    assert source.mime == "application/pdf"
    assert [line.text for line in page.text_lines] == ["A PDF wearing a JPEG name"]


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"%PDF-1.7\n", "application/pdf"),
        (b"\xef\xbb\xbf\r\n%PDF-1.4\n", "application/pdf"),  # junk before the header is legal
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"II*\x00\x08\x00\x00\x00", "image/tiff"),
        (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
        (b"BM" + bytes(12) + (40).to_bytes(4, "little") + bytes(8), "image/bmp"),
        (b"BMI of the staff, measured in 2024, is listed below.\n", None),
        (b'{"invoice": "INV-1001"}', None),
        (b"", None),
    ],
)
def test_type_is_sniffed_from_the_first_bytes(head, mime):
    assert sniff_mime(head) == mime


# --- image formats ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "mime", "tolerance"),
    [
        ("PNG", "image/png", 0),
        ("JPEG", "image/jpeg", 3),
        ("WEBP", "image/webp", 3),
        ("BMP", "image/bmp", 0),
        ("TIFF", "image/tiff", 0),
    ],
)
def test_each_image_format_becomes_one_rgb_page(tmp_path, fmt, mime, tolerance):
    path = tmp_path / "scan.data"  # the name says nothing; the bytes decide
    marked_image().save(path, format=fmt)

    source = open_source(path, Settings())
    (page,) = load(path)

    assert source.mime == mime
    assert source.page_count == 1
    assert page.error is None
    assert (page.number, page.width, page.height) == (1, 400, 300)
    assert page.image.mode == "RGB"
    assert near(testing.ink_box(page.image), SQUARE, tolerance)


def test_multi_page_tiff_yields_every_page_in_order(tmp_path):
    squares = [BBox(10, 10, 60, 60), BBox(100, 40, 150, 90), BBox(200, 100, 260, 160)]
    sizes = [(300, 200), (500, 400), (320, 240)]
    frames = [marked_image(w, h, square) for (w, h), square in zip(sizes, squares, strict=True)]
    path = tmp_path / "batch.tif"
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="tiff_deflate")

    pages = load(path)

    assert open_source(path, Settings()).page_count == 3
    assert [page.number for page in pages] == [1, 2, 3]
    assert [(page.width, page.height) for page in pages] == sizes
    assert [testing.ink_box(page.image) for page in pages] == squares


def test_bilevel_fax_tiff_is_normalised_to_rgb(tmp_path):
    path = tmp_path / "fax.tiff"
    marked_image().convert("1").save(path, compression="group4")
    (page,) = load(path)
    assert page.image.mode == "RGB"
    assert testing.ink_box(page.image) == SQUARE


def test_exif_orientation_is_applied_so_the_text_reads_upright(tmp_path):
    sheet = testing.Sheet(1000, 360)
    sheet.write(60, 140, "Upright after EXIF rotation", size=56)
    upright = sheet.image()
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # as a phone held sideways saves it
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    path = tmp_path / "photo.jpg"
    stored.save(path, quality=92, exif=exif.tobytes())
    assert Image.open(path).size == (360, 1000)

    (page,) = load(path)
    doc = scanrag.parse(path, parser="embedded")

    assert (page.width, page.height) == (1000, 360)
    assert near(testing.ink_box(page.image), testing.ink_box(upright), 2)
    assert (doc.pages[0].width, doc.pages[0].height) == (1000, 360)
    assert [region.text for region in doc.regions()] == ["Upright after EXIF rotation"]


def test_16_bit_greyscale_is_scaled_to_8_bit(tmp_path):
    grey = np.full((300, 400), 65535, dtype=np.uint16)
    grey[SQUARE.y0 : SQUARE.y1, SQUARE.x0 : SQUARE.x1] = 2000
    path = tmp_path / "deep.png"
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode.startswith("I")

    (page,) = load(path)
    pixels = np.asarray(page.image)

    assert page.image.mode == "RGB"
    assert pixels[0, 0].tolist() == [255, 255, 255]
    assert pixels[SQUARE.y0 + 5, SQUARE.x0 + 5].tolist() == [7, 7, 7]  # 2000 / 65535 × 255
    assert testing.ink_box(page.image) == SQUARE


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_scans_are_converted_to_rgb(tmp_path, fmt):
    path = tmp_path / f"print.{fmt.lower()}"
    marked_image().convert("CMYK").save(path, format=fmt)
    assert Image.open(path).mode == "CMYK"

    (page,) = load(path)
    pixels = np.asarray(page.image).astype(int)

    assert page.image.mode == "RGB"
    assert pixels[5, 5].min() >= 245  # paper stays white
    assert pixels[SQUARE.y0 + 50, SQUARE.x0 + 50].max() <= 10  # ink stays black
    assert near(testing.ink_box(page.image), SQUARE, 2)


def test_transparent_background_becomes_white(tmp_path):
    image = Image.new("RGBA", (400, 300), (0, 0, 0, 0))  # transparent black
    ImageDraw.Draw(image).rectangle([120, 80, 219, 179], (0, 0, 0, 255))
    path = tmp_path / "cutout.png"
    image.save(path)
    (page,) = load(path)
    assert np.asarray(page.image)[0, 0].tolist() == [255, 255, 255]
    assert testing.ink_box(page.image) == SQUARE


def test_image_dpi_comes_from_the_file_else_from_settings(tmp_path):
    marked_image().save(tmp_path / "300.png", dpi=(300, 300))
    marked_image().save(tmp_path / "plain.png")
    assert load(tmp_path / "300.png")[0].dpi == 300
    assert load(tmp_path / "plain.png")[0].dpi == 200
    assert load(tmp_path / "plain.png", dpi=150)[0].dpi == 150


# --- PDF pages --------------------------------------------------------------------------


def test_pdf_renders_at_200_dpi_by_default_with_its_text_layer(tmp_path):
    path = testing.text_pdf([[(72, 144, "Text layer line at one inch", 12)]], tmp_path / "a.pdf")

    (page,) = load(path)
    (line,) = page.text_lines

    assert Settings().dpi == 200
    assert (page.dpi, page.width_pt, page.height_pt) == (200, 595, 842)
    assert (page.width, page.height) == (1653, 2339)  # 595 × 842 pt at 200 dpi, rounded up
    assert page.image.size == (page.width, page.height)
    assert line.text == "Text layer line at one inch"
    assert abs(line.bbox.x0 - 200) <= 2  # 72 pt = 1 inch = 200 px
    assert line.bbox.y0 < 400 <= line.bbox.y1  # the baseline at 144 pt = 400 px
    assert line.bbox.coverage_of(testing.ink_box(page.image)) >= 0.98


@pytest.mark.parametrize("dpi", [72, 150, 300])
def test_pdf_dpi_setting_scales_page_and_text_boxes(tmp_path, dpi):
    path = testing.text_pdf([[(72, 144, "Scaled with the dpi", 12)]], tmp_path / "a.pdf")
    (page,) = load(path, dpi=dpi)
    (line,) = page.text_lines
    assert page.dpi == dpi
    # the pixmap covers the whole page: partial pixels round up
    assert (page.width, page.height) == (math.ceil(595 * dpi / 72), math.ceil(842 * dpi / 72))
    assert page.image.size == (page.width, page.height)
    assert abs(line.bbox.x0 - dpi) <= 2
    assert line.bbox.coverage_of(testing.ink_box(page.image)) >= 0.98


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_pdf_rotate_is_honoured_and_text_boxes_land_on_the_ink(tmp_path, rotation):
    pdf = pymupdf.open()
    pdf_page = pdf.new_page(width=595, height=842)
    pdf_page.insert_text((100, 200), "Rotated page text sample", fontsize=20)
    pdf_page.set_rotation(rotation)
    pdf.save(tmp_path / "rotated.pdf")
    pdf.close()

    (page,) = load(tmp_path / "rotated.pdf", dpi=100)
    (line,) = page.text_lines
    ink = testing.ink_box(page.image)

    turned = rotation in (90, 270)
    assert (page.width_pt, page.height_pt) == ((842, 595) if turned else (595, 842))
    assert (page.width, page.height) == ((1170, 827) if turned else (827, 1170))
    assert line.text == "Rotated page text sample"
    assert line.bbox.coverage_of(ink) >= 0.98
    assert line.bbox.iou(ink) >= 0.6
    # and the rendered text really is turned: tall and narrow on a quarter turn
    assert (ink.height > ink.width) == turned


def test_pdf_pages_are_rendered_only_when_asked(tmp_path):
    path = testing.text_pdf([[(72, 100, f"page {n}", 12)] for n in range(1, 4)], tmp_path / "a.pdf")
    pages = load(path, render=False)
    assert [page.text_lines[0].text for page in pages] == ["page 1", "page 2", "page 3"]
    assert not any(hasattr(page, "_image") for page in pages)


def test_image_only_pdf_has_pages_but_no_text_layer(tmp_path):
    path = testing.image_pdf(
        [marked_image(827, 1170, BBox(200, 300, 400, 500))], tmp_path / "s.pdf"
    )
    (page,) = load(path)
    assert page.text_lines == []
    assert (page.width_pt, page.height_pt) == (297.72, 421.2)  # 827 × 1170 px at 200 dpi
    assert (page.width, page.height) == (827, 1170)
    assert near(testing.ink_box(page.image), BBox(200, 300, 400, 500), 2)


# --- discovery --------------------------------------------------------------------------


def tree(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    marked_image(40, 30, BBox(5, 5, 10, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_discovery_is_recursive_and_in_a_fixed_order(tmp_path):
    png = png_bytes()
    names = ["b/2.png", "a.png", "b/c/1.png", "B.png", "b/10.png", "c.png"]
    tree(tmp_path, dict.fromkeys(reversed(names), png))

    found = discover([tmp_path])

    relative = [path.relative_to(tmp_path).as_posix() for path, _ in found.files]
    assert relative == ["B.png", "a.png", "b/10.png", "b/2.png", "b/c/1.png", "c.png"]
    assert discover([tmp_path]).files == found.files
    assert found.skipped == [] and found.errors == []


def test_hidden_files_and_folders_are_not_read(tmp_path):
    png = png_bytes()
    tree(tmp_path, {".thumb.png": png, ".git/objects/x.png": png, "scan.png": png})
    found = discover([tmp_path])
    assert [path.name for path, _ in found.files] == ["scan.png"]
    assert found.skipped == [] and found.errors == []


def test_other_files_beside_the_scans_are_skipped_and_counted(tmp_path):
    tree(
        tmp_path,
        {
            "scan.png": png_bytes(),
            "scan.json": b'{"pages": 1}',
            "notes.txt": b"BMI of the staff is listed below",
            "empty.txt": b"",
        },
    )
    found = discover([tmp_path])
    assert [path.name for path, _ in found.files] == ["scan.png"]
    assert sorted(path.name for path in found.skipped) == ["empty.txt", "notes.txt", "scan.json"]
    assert found.errors == []


def test_a_file_named_like_a_scan_that_is_not_one_is_a_failure(tmp_path):
    tree(tmp_path, {"empty.pdf": b"", "garbled.jpg": os.urandom(2048), "ok.png": png_bytes()})
    found = discover([tmp_path])
    messages = dict((path.name, message) for path, message in found.errors)
    assert [path.name for path, _ in found.files] == ["ok.png"]
    assert found.skipped == []
    assert messages["empty.pdf"] == (
        f"{tmp_path / 'empty.pdf'}: the file is empty (0 bytes); copy or scan it again"
    )
    assert messages["garbled.jpg"].startswith(f"{tmp_path / 'garbled.jpg'}: not a supported")


def test_an_explicitly_named_unsupported_file_is_a_failure(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a scan")
    found = discover([notes, tmp_path / "missing.pdf"])
    assert found.files == [] and found.skipped == []
    assert found.errors == [
        (
            notes,
            f"{notes}: not a supported document type "
            "(expected PDF, PNG, JPEG, WebP, BMP or TIFF, judged by content); "
            "convert it to one of these or leave it out",
        ),
        (tmp_path / "missing.pdf", f"{tmp_path / 'missing.pdf'}: no such file or folder"),
    ]


def test_a_symlink_loop_does_not_hang_discovery(tmp_path):
    tree(tmp_path, {"scans/a.png": png_bytes(), "scans/sub/b.png": png_bytes()})
    (tmp_path / "scans" / "sub" / "back").symlink_to(tmp_path / "scans")
    (tmp_path / "scans" / "self").symlink_to(tmp_path / "scans")

    result = {}
    worker = threading.Thread(target=lambda: result.update(found=discover([tmp_path / "scans"])))
    worker.start()
    worker.join(timeout=20)

    assert not worker.is_alive(), "discovery loops on symlinked folders"
    names = [path.relative_to(tmp_path).as_posix() for path, _ in result["found"].files]
    assert names == ["scans/a.png", "scans/sub/b.png"]
