"""Synthetic scans with known ground truth, for tests, benchmarks and the bundled examples.

Text is drawn with the fonts that ship inside PyMuPDF (Helvetica-like "helv" and the CJK
"Droid Sans Fallback"), so nothing depends on the fonts installed on the machine. Every line
drawn is recorded with its ink box in page pixels, the same coordinates scanrag reports.
"""

from __future__ import annotations

import io
import random
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
        box = BBox(*self.draw.textbbox((x, y), text, font=face))
        self.lines.append(DrawnLine(text, box, label))
        return box

    def paragraph(
        self, x: int, y: int, text: str, width: int, size: int = 30, leading: float = 1.45
    ) -> BBox:
        """Draw `text` wrapped to `width` pixels; returns the box around it."""
        face = font(size, cjk=has_cjk(text))
        lines: list[str] = []
        for word in text.split():
            candidate = f"{lines[-1]} {word}" if lines else word
            if lines and self.draw.textlength(candidate, font=face) <= width:
                lines[-1] = candidate
            else:
                lines.append(word)
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
        pixels = pixels * 0.96 + 6 + rng.normal(0, noise, pixels.shape)
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


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


def pdf_paragraph(
    x: float, y: float, text: str, width: float, size: float = 10, leading: float = 1.4
) -> list[tuple[float, float, str, float]]:
    """Items for `text_pdf`: `text` wrapped to `width` points, the first baseline at `y`."""
    lines: list[str] = []
    for word in text.split():
        candidate = f"{lines[-1]} {word}" if lines else word
        if lines and pymupdf.get_text_length(candidate, "helv", size) <= width:
            lines[-1] = candidate
        else:
            lines.append(word)
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
