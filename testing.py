"""Synthetic scans with known ground truth, for tests, benchmarks and the bundled examples.

Text is drawn with the fonts that ship inside PyMuPDF (Helvetica-like "helv" and the CJK
"Droid Sans Fallback"), so nothing depends on the fonts installed on the machine. Every line
drawn is recorded with its ink box in page pixels, the same coordinates scanrag reports.
"""

from __future__ import annotations

import io
import os
import random
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pymupdf
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .ingest.model import BBox

A4_200DPI = (1654, 2339)


@cache
def _font_bytes(cjk: bool, bold: bool) -> bytes:
    name = "cjk" if cjk else ("hebo" if bold else "helv")
    return pymupdf.Font(name).buffer


def font(size: int, cjk: bool = False, bold: bool = False) -> ImageFont.FreeTypeFont:
    """A font of `size` pixels (at 200 dpi, 11 pt ≈ 31 px)."""
    return ImageFont.truetype(io.BytesIO(_font_bytes(cjk, bold)), size)


def has_cjk(text: str) -> bool:
    return any("\u3000" <= char <= "\u9fff" or "\uff00" <= char <= "\uffef" for char in text)


@dataclass
class DrawnLine:
    text: str
    bbox: BBox
    label: str = "text"


@dataclass
class Sheet:
    """A white page that records every line drawn on it."""

    width: int = A4_200DPI[0]
    height: int = A4_200DPI[1]
    lines: list[DrawnLine] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.canvas = Image.new("RGB", (self.width, self.height), "white")
        self.draw = ImageDraw.Draw(self.canvas)

    def write(
        self, x: int, y: int, text: str, size: int = 32, bold: bool = False, label: str = "text"
    ) -> BBox:
        """Draw one line with its top-left at (x, y); returns its ink box."""
        face = font(size, cjk=has_cjk(text), bold=bold)
        self.draw.text((x, y), text, fill=(20, 20, 20), font=face)
        box = BBox.enclosing(*self.draw.textbbox((x, y), text, font=face))
        self.lines.append(DrawnLine(text, box, label))
        return box

    def paragraph(
        self, x: int, y: int, text: str, width: int, size: int = 30, leading: float = 1.45
    ) -> BBox:
        """Draw `text` wrapped to `width` pixels; returns the box around it."""
        face = font(size, cjk=has_cjk(text))
        lines = _wrap(text, lambda line: self.draw.textlength(line, font=face) <= width)
        boxes = [
            self.write(x, y + round(i * size * leading), line, size) for i, line in enumerate(lines)
        ]
        return BBox(min(b.x0 for b in boxes), boxes[0].y0, max(b.x1 for b in boxes), boxes[-1].y1)

    def table(
        self,
        x: int,
        y: int,
        rows: list[list[str]],
        widths: list[int],
        size: int = 30,
        pitch: int = 60,
    ) -> BBox:
        """Draw a ruled table; returns its outer box."""
        boxes = []
        for r, row in enumerate(rows):
            left = x
            for cell, width in zip(row, widths, strict=False):  # short rows leave cells empty
                boxes.append(
                    self.write(
                        left + 12, y + r * pitch + 14, cell, size, bold=r == 0, label="table"
                    )
                )
                left += width
        right, bottom = x + sum(widths), y + len(rows) * pitch
        for r in range(len(rows) + 1):
            self.draw.line([(x, y + r * pitch), (right, y + r * pitch)], fill=(90, 90, 90), width=2)
        return BBox(x, y, right, bottom)

    def find(self, text: str) -> DrawnLine:
        """The drawn line whose text contains `text`."""
        return next(line for line in self.lines if text in line.text)

    def image(self, noise: float = 0.0, seed: int = 0) -> Image.Image:
        """The page, optionally with scanner-like grain and blur."""
        if not noise:
            return self.canvas.copy()
        rng = np.random.default_rng(seed)
        pixels = np.asarray(self.canvas.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float32)
        grainy = pixels * 0.96 + 6 + rng.normal(0, noise, pixels.shape)
        return Image.fromarray(np.clip(grainy, 0, 255).astype(np.uint8))


def image_pdf(images: list[Image.Image], path: Path, dpi: int = 200) -> Path:
    """An image-only PDF (what a scanner writes): one page per image, no text layer."""
    pdf = pymupdf.open()
    for image in images:
        page = pdf.new_page(width=image.width * 72 / dpi, height=image.height * 72 / dpi)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        page.insert_image(page.rect, stream=buffer.getvalue())
    pdf.save(path)
    pdf.close()
    return path


def ink_box(image: Image.Image, within: BBox | None = None, threshold: int = 128) -> BBox | None:
    """The box around the dark pixels of `image` (or of its part `within`); None when blank."""
    grey = np.asarray(image.convert("L"))
    x0, y0 = (within.x0, within.y0) if within else (0, 0)
    if within:
        grey = grey[within.y0 : within.y1, within.x0 : within.x1]
    ys, xs = np.nonzero(grey < threshold)
    if not len(xs):
        return None
    return BBox(
        x0 + int(xs.min()), y0 + int(ys.min()), x0 + int(xs.max()) + 1, y0 + int(ys.max()) + 1
    )


def _wrap(text: str, fits: Callable[[str], bool]) -> list[str]:
    """Greedy word wrap: each line takes words while `fits` says it still fits (a word too
    long for a line gets a line of its own)."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and fits(candidate):
            lines[-1] = candidate
        else:
            lines.append(word)
    return lines


def pdf_paragraph(
    x: float, y: float, text: str, width: float, size: float = 10, leading: float = 1.4
) -> list[tuple[float, float, str, float]]:
    """Items for `text_pdf`: `text` wrapped to `width` points, the first baseline at `y`."""
    lines = _wrap(text, lambda line: pymupdf.get_text_length(line, "helv", size) <= width)
    return [(x, y + i * size * leading, line, size) for i, line in enumerate(lines)]


def text_pdf(pages: list[list[tuple[float, float, str, float]]], path: Path) -> Path:
    """A born-digital A4 PDF: each page a list of (x_pt, baseline_y_pt, text, size_pt)."""
    pdf = pymupdf.open()
    for items in pages:
        page = pdf.new_page(width=595, height=842)
        for x, y, text, size in items:
            page.insert_text(
                (x, y), text, fontsize=size, fontname="china-s" if has_cjk(text) else "helv"
            )
    pdf.save(path)
    pdf.close()
    return path


# --- ready-made documents ---------------------------------------------------------------

WORDS = [
    "the",
    "quarterly",
    "budget",
    "review",
    "covers",
    "supplier",
    "contracts",
    "warehouse",
    "inventory",
    "audit",
    "deadline",
    "committee",
    "forecasts",
    "departments",
    "renewed",
    "agreed",
    "figures",
    "period",
    "terms",
]


def filler(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def invoice(
    number: str = "INV-1001",
    seller: str = "Orchid Logistics Ltd.",
    total: str = "$2,448.50",
    due: str = "25 July 2025",
    contact: str = "Tariq Tanaka",
) -> Sheet:
    """An English invoice: title, key–value block, a line-item table, totals, a note."""
    sheet = Sheet()
    sheet.write(150, 150, f"INVOICE {number}", size=56, bold=True, label="title")
    sheet.write(150, 300, f"Seller: {seller}")
    sheet.write(150, 360, "Bill to: Pioneer Ceramics Ltd.")
    sheet.write(150, 420, "Date of issue: 25 June 2025")
    sheet.write(150, 480, f"Payment due: {due}")
    sheet.table(
        140,
        580,
        [
            ["Item", "Qty", "Unit price", "Amount"],
            ["Drill bit 6mm", "25", "$28.60", "$715.00"],
            ["Fuse 10A", "120", "$4.55", "$546.00"],
            ["Cable reel 50m", "7", "$169.64", "$1,187.50"],
        ],
        widths=[560, 200, 280, 300],
    )
    sheet.write(900, 880, "Total due:", bold=True)
    sheet.write(1180, 880, total, bold=True)
    sheet.write(150, 1000, f"Questions about this invoice should be sent to {contact} in accounts.")
    return sheet


def receipt_zh(
    shop: str = "华联超市（天河店）", number: str = "044571", total: str = "¥165.04"
) -> Sheet:
    """A Chinese shop receipt: shop name, receipt number, items with prices, total."""
    sheet = Sheet(900, 1500)
    sheet.write(60, 70, shop, size=40, label="title")
    sheet.write(60, 160, f"小票号：{number}")
    for i, (item, price) in enumerate(
        [("双汇火腿肠", "¥36.36"), ("康师傅红烧牛肉面", "¥92.40"), ("清风抽纸3包", "¥36.28")]
    ):
        sheet.write(60, 240 + i * 60, item, label="table")
        sheet.write(640, 240 + i * 60, price, label="table")
    sheet.write(60, 450, "合计")
    sheet.write(640, 450, total)
    sheet.write(60, 540, "联系人：徐明  联系电话：13884707867")
    return sheet


def two_column_report(
    seed: int = 7, title: str = "Annual report 2024 of Crescent Traders Ltd."
) -> Sheet:
    """A title over two columns of running text; the left column holds a marker sentence."""
    rng = random.Random(seed)
    sheet = Sheet()
    sheet.write(150, 130, title, size=44, bold=True, label="title")
    left = f"{filler(rng, 12)} Our workforce grew to 4594 employees this year. {filler(rng, 60)}"
    right = f"{filler(rng, 60)} The letter to shareholders is signed by Nora Nakamura."
    sheet.paragraph(150, 240, left, width=640)
    sheet.paragraph(870, 240, right, width=640)
    return sheet


def form() -> Sheet:
    """A claim form: labels on the left, values on the right of the same rows."""
    sheet = Sheet()
    sheet.write(130, 145, "Insurance claim form APP-96452", size=56, bold=True, label="title")
    fields = [
        ("Claimant name:", "Ines Alvarez"),
        ("Date of birth:", "17 March 2019"),
        ("Policy number:", "P779344"),
        ("Claim amount:", "$5,512.69"),
    ]
    for i, (key, value) in enumerate(fields):
        sheet.write(135, 310 + i * 80, key)
        sheet.write(605, 305 + i * 80, value)
    return sheet


# --- malformed inputs -------------------------------------------------------------------


@dataclass
class BadInput:
    """One file of `malformed_corpus` and what scanrag must make of it.

    `expect` is "indexed" (searchable), "partial" (indexed, with a page error as a warning),
    "skipped" (not a document, not an error) or the name of the error type the file fails
    with; `says` are fragments the per-file message must contain (what is wrong, what to do).
    """

    name: str  # the file name as messages print it (non-UTF-8 bytes backslash-escaped)
    path: Path
    expect: str
    says: tuple[str, ...] = ()
    code: str | None = None  # a word only this file holds, to find it by search


def scan_image(code: str, size: tuple[int, int] = (640, 160)) -> Image.Image:
    """A small scan holding one line of text with `code` in it (OCR reads it in well under
    a second)."""
    sheet = Sheet(*size)
    sheet.write(24, 50, f"Reference {code}", size=44)
    return sheet.image()


def code_pdf(path: Path, code: str, pages: int = 1) -> Path:
    """A born-digital memo that names `code` (the pdf-text parser reads it without OCR)."""
    body = (
        f"Memo {code}. The committee reviewed supplier contracts, warehouse inventory and the "
        "audit deadline; figures were agreed after the quarterly budget review."
    )
    return text_pdf([pdf_paragraph(72, 90, body, 450) for _ in range(pages)], path)


def encrypted_pdf(path: Path, code: str, password: str) -> Path:
    source = code_pdf(path.with_suffix(".plain"), code)
    pdf = pymupdf.open(source)
    pdf.save(
        path,
        encryption=pymupdf.PDF_ENCRYPT_AES_256,  # type: ignore[attr-defined]  # made at import
        user_pw=password,
        owner_pw=password + "!",
    )
    pdf.close()
    source.unlink()
    return path


def empty_pdf(path: Path) -> Path:
    """A well-formed PDF whose page tree is empty (PyMuPDF refuses to write one)."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [] /Count 0 >>",
    ]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    path.write_bytes(bytes(out))
    return path


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims `width`×`height` pixels, with almost no data behind it."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b"\x00" * 64)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
    path.write_bytes(png + chunk(b"IEND", b""))
    return path


def tiff_with_broken_frame(path: Path, codes: list[str], broken: int) -> Path:
    """A multi-page TIFF (one frame per code) whose frame `broken` (0-based) points its
    image data past the end of the file."""
    frames = [scan_image(code).convert("L") for code in codes]
    frames[0].save(path, format="TIFF", save_all=True, append_images=frames[1:])
    with Image.open(path) as tiff:
        tiff.seek(broken)
        offsets_tag = 273  # StripOffsets
        offsets = tiff.tag_v2[offsets_tag]
        first = offsets[0] if isinstance(offsets, tuple) else offsets
    raw = bytearray(path.read_bytes())
    # The strip offset is stored as a little-endian long somewhere in the frame's IFD: find
    # that IFD entry (tag 273) and point it beyond the end of the file.
    needle = struct.pack("<I", first)
    entry = struct.pack("<H", offsets_tag)
    at = 0
    while True:
        at = raw.index(entry, at)
        value = at + 8  # tag (2), type (2), count (4), then the value or its offset
        if raw[value : value + 4] == needle:
            raw[value : value + 4] = struct.pack("<I", len(raw) + 10_000_000)
            break
        at += 2
    path.write_bytes(bytes(raw))
    return path


def random_bytes(rng: random.Random, size: int) -> bytes:
    """Bytes that no sniffer mistakes for a document."""
    data = bytearray(rng.randbytes(size))
    data[:4] = b"\x00JNK"
    return bytes(data)


def write_bytes_name(folder: Path, name: bytes, data: bytes) -> Path:
    """Write a file whose name is raw bytes (not necessarily UTF-8)."""
    path = os.path.join(os.fsencode(folder), name)
    with open(path, "wb") as handle:
        handle.write(data)
    return Path(os.fsdecode(path))


def malformed_corpus(folder: Path, seed: int = 9, pdf_password: str = "s3cret") -> list[BadInput]:
    """Write the malformed-input corpus of issue 9 into `folder` (plus good files beside it)
    and say what ingesting each must give. Everything is generated here; nothing is copied.

    The unreadable file is made with mode 000: a test running as root must also drop the
    capability to bypass permissions (see tests/corpus.py) for it to be unreadable.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cases: list[BadInput] = []

    def add(path: Path, expect: str, *says: str, code: str | None = None) -> None:
        name = os.fsencode(path.name).decode("utf-8", errors="backslashreplace")
        cases.append(BadInput(name, path, expect, tuple(says), code))

    # good files, which must be indexed whatever their neighbours are
    for code in ("goodalpha", "goodbravo"):
        add(code_pdf(folder / f"{code}.pdf", code), "indexed", code=code)
    add(encrypted_pdf(folder / "locked.pdf", "lockedmemo", pdf_password), "EncryptedFile",
        "encrypted", "--pdf-password")  # fmt: skip

    empty = folder / "empty.pdf"
    empty.write_bytes(b"")
    add(empty, "CorruptFile", "empty (0 bytes)")
    for suffix in ("pdf", "png", "jpg"):
        path = folder / f"noise.{suffix}"
        path.write_bytes(random_bytes(rng, 4096))
        add(path, "UnsupportedFile", "not a supported document type")

    whole = code_pdf(folder / "whole.tmp", "truncatedmemo").read_bytes()
    (folder / "whole.tmp").unlink()
    cut = folder / "truncated.pdf"
    cut.write_bytes(whole[: len(whole) // 3])
    add(cut, "CorruptFile", "truncated.pdf")
    buffer = io.BytesIO()
    scan_image("truncjpeg").save(buffer, format="JPEG", quality=90)
    (folder / "truncated.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    add(folder / "truncated.jpg", "CorruptFile", "cannot be decoded")
    buffer = io.BytesIO()
    scan_image("truncpng").save(buffer, format="PNG")
    (folder / "truncated.png").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    add(folder / "truncated.png", "CorruptFile", "cannot be decoded")

    add(empty_pdf(folder / "nopages.pdf"), "CorruptFile", "no pages")
    add(png_header(folder / "giant.png", 100_000, 100_000), "LimitExceeded",
        "100000×100000", "SCANRAG_MAX_PIXELS")  # fmt: skip

    deep = scan_image("sixteenbit").convert("L")
    deep16 = Image.fromarray((np.asarray(deep, dtype=np.uint16) * 257).astype(np.uint16))
    deep16.save(folder / "gray16.png")
    add(folder / "gray16.png", "indexed", code="sixteenbit")
    scan_image("cmykscan").convert("CMYK").save(folder / "cmyk.jpg", format="JPEG", quality=92)
    add(folder / "cmyk.jpg", "indexed", code="cmykscan")
    add(tiff_with_broken_frame(folder / "frames.tif", ["frameone", "frametwo"], 1),
        "partial", "page 2", code="frameone")  # fmt: skip

    big = pymupdf.open()
    for _ in range(2000):
        big.new_page(width=200, height=200)
    big.save(folder / "thousands.pdf")
    big.close()
    add(folder / "thousands.pdf", "LimitExceeded", "2000 pages", "SCANRAG_MAX_PAGES")

    sub = folder / "nested"
    sub.mkdir()
    os.symlink("..", sub / "loop")  # a folder that contains itself
    os.symlink("selfloop.pdf", folder / "selfloop.pdf")  # a link to itself
    add(folder / "selfloop.pdf", "CorruptFile", "link")
    unreadable = code_pdf(folder / "unreadable.pdf", "unreadablememo")
    unreadable.chmod(0)
    add(unreadable, "CorruptFile", "cannot read", "permission")

    pdf = code_pdf(folder / "odd.tmp", "oddname")  # MuPDF cannot write to a non-UTF-8 name
    add(write_bytes_name(folder, b"odd\xff-name.pdf", pdf.read_bytes()), "indexed", code="oddname")
    pdf.unlink()
    add(write_bytes_name(folder, b"bad\xfe.pdf", b"%PDF-1.4\n1 0 obj garbage\n%%EOF\n"),
        "CorruptFile", "PDF")  # fmt: skip
    (folder / "notes.txt").write_text("not a scan\n")
    add(folder / "notes.txt", "skipped")
    return cases
