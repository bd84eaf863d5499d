"""Property-based: whatever bytes a mutated PDF, PNG, JPEG, TIFF, BMP or WebP ends up with,
loading it either works or fails with scanrag's own errors — a `ScanragError` for the file, or
a page that carries its error — never another exception."""

from __future__ import annotations

import io
import os
import tempfile
from functools import cache
from pathlib import Path

import pymupdf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from scanrag.config import Settings
from scanrag.errors import ScanragError
from scanrag.ingest.loaders import iter_pages, open_source
from scanrag.testing import pdf_paragraph, scan_image, text_pdf

LIMITS = Settings(dpi=72, max_pixels=2_000_000, max_pages=20)
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "60"))  # per kind of file


@cache
def seed(kind: str) -> bytes:
    """A small valid file of each kind."""
    image = scan_image("fuzzseed", size=(160, 48))
    buffer = io.BytesIO()
    if kind == "pdf":
        with tempfile.TemporaryDirectory() as folder:
            items = pdf_paragraph(20, 40, "Fuzz seed page with some text", 200)
            path = text_pdf([items, items], Path(folder) / "seed.pdf")
            return path.read_bytes()
    if kind == "tiff":
        frames = [image.convert("L"), image.convert("RGB"), image.convert("1")]
        frames[0].save(buffer, format="TIFF", save_all=True, append_images=frames[1:])
    elif kind == "png16":
        image.convert("I;16").save(buffer, format="PNG")
    elif kind == "cmyk":
        image.convert("CMYK").save(buffer, format="JPEG")
    else:
        image.save(
            buffer, format={"png": "PNG", "jpeg": "JPEG", "bmp": "BMP", "webp": "WEBP"}[kind]
        )
    return buffer.getvalue()


@st.composite
def mutated(draw, kind: str) -> bytes:
    data = bytearray(seed(kind))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "repeat", "zero"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 256))]
        elif op == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 256))]
        else:
            data[at : at + 16] = bytes(min(16, len(data) - at))
    return bytes(data)


def load_everything(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"mutant{suffix}"
        path.write_bytes(data)
        try:
            source = open_source(path, LIMITS)
        except ScanragError as exc:
            assert str(exc).startswith(str(path)), exc  # names the file
            return
        for page in iter_pages(source, LIMITS):
            if page.error is None:
                image = page.image
                assert image.mode == "RGB" and image.size == (page.width, page.height)
            else:
                assert str(path) in page.error


@pytest.mark.parametrize(
    ("kind", "suffix"),
    [
        ("pdf", ".pdf"),
        ("png", ".png"),
        ("png16", ".png"),
        ("jpeg", ".jpg"),
        ("cmyk", ".jpg"),
        ("tiff", ".tif"),
        ("bmp", ".bmp"),
        ("webp", ".webp"),
    ],
)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_mutated_file_loads_or_fails_with_a_scanrag_error(kind, suffix, data):
    load_everything(data.draw(mutated(kind)), suffix)


def test_the_seeds_themselves_load():
    for kind, suffix in [("pdf", ".pdf"), ("tiff", ".tif"), ("png16", ".png"), ("cmyk", ".jpg")]:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"seed{suffix}"
            path.write_bytes(seed(kind))
            modes = [
                (page.error, page.image.mode)
                for page in iter_pages(open_source(path, LIMITS), LIMITS)
            ]
            assert modes and all(mode == (None, "RGB") for mode in modes), kind
    assert pymupdf.open(stream=seed("pdf")).page_count == 2
    assert Image.open(io.BytesIO(seed("tiff"))).n_frames == 3
