"""The document model: Document → Page → Region → Line, and the one box type.

Coordinates inside scanrag are page-image pixels with the origin at the top-left corner.
Every box that leaves the system also carries its 0–1000 form (the GLM-OCR / GLM-V
convention: x and y scaled by the page width and height to integers 0–1000). PDF points are
computed on demand with `BBox.to_points`.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import datetime, timezone
from typing import Literal, NamedTuple

from pydantic import BaseModel, Field

from ..tenants import DEFAULT

Label = Literal[
    "title",
    "text",
    "list",
    "table",
    "figure",
    "caption",
    "formula",
    "header",
    "footer",
    "seal",
    "handwriting",
    "code",
    "other",
]
LABELS: tuple[str, ...] = Label.__args__  # type: ignore[attr-defined]

#: Labels kept in the model but left out of chunks by default.
MARGINAL_LABELS = frozenset({"header", "footer"})


class BBox(NamedTuple):
    """An axis-aligned box [x0, y0, x1, y1]; serialises as a JSON array."""

    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def enclosing(cls, x0: float, y0: float, x1: float, y1: float) -> BBox:
        """The smallest integer box that contains the given float box."""
        return cls(math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1))

    @classmethod
    def around(cls, points: list[tuple[float, float]] | list[list[float]]) -> BBox:
        """The box around a polygon (OCR engines return quadrilaterals)."""
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        return cls.enclosing(min(xs), min(ys), max(xs), max(ys))

    @classmethod
    def from_norm(cls, norm: tuple[float, float, float, float], width: int, height: int) -> BBox:
        """Pixels from a 0–1000 box on a page of `width` × `height` pixels."""
        x0, y0, x1, y1 = norm
        return cls(
            round(x0 * width / 1000),
            round(y0 * height / 1000),
            round(x1 * width / 1000),
            round(y1 * height / 1000),
        )

    @property
    def width(self) -> int:
        return max(0, self.x1 - self.x0)

    @property
    def height(self) -> int:
        return max(0, self.y1 - self.y0)

    @property
    def area(self) -> int:
        return self.width * self.height

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2)

    def intersection(self, other: BBox) -> BBox:
        """The overlap of two boxes; an empty box (area 0) when they do not meet."""
        x0, y0 = max(self.x0, other.x0), max(self.y0, other.y0)
        x1, y1 = min(self.x1, other.x1), min(self.y1, other.y1)
        return BBox(x0, y0, max(x0, x1), max(y0, y1))

    def union(self, other: BBox) -> BBox:
        return BBox(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
        )

    def iou(self, other: BBox) -> float:
        inter = self.intersection(other).area
        total = self.area + other.area - inter
        return inter / total if total else 0.0

    def coverage_of(self, other: BBox) -> float:
        """Share of `other`'s area that lies inside this box (1.0 = fully covered)."""
        return self.intersection(other).area / other.area if other.area else 0.0

    def clip(self, width: int, height: int) -> BBox:
        """The box clipped to a page of `width` × `height` pixels."""
        return BBox(
            min(max(self.x0, 0), width),
            min(max(self.y0, 0), height),
            min(max(self.x1, 0), width),
            min(max(self.y1, 0), height),
        )

    def pad(self, pixels: int) -> BBox:
        return BBox(self.x0 - pixels, self.y0 - pixels, self.x1 + pixels, self.y1 + pixels)

    def reduced(self, scale: float) -> BBox:
        """The box on a copy of its page read `scale` times smaller (`read_page_image`)."""
        return BBox(*(round(value / scale) for value in self))

    def to_norm(self, width: int, height: int) -> BBox:
        """The 0–1000 form on a page of `width` × `height` pixels."""
        return BBox(
            min(1000, max(0, round(self.x0 * 1000 / width))),
            min(1000, max(0, round(self.y0 * 1000 / height))),
            min(1000, max(0, round(self.x1 * 1000 / width))),
            min(1000, max(0, round(self.y1 * 1000 / height))),
        )

    def to_points(
        self, width: int, height: int, width_pt: float, height_pt: float
    ) -> tuple[float, float, float, float]:
        """PDF points, origin top-left (PyMuPDF and pdf.js viewport convention).

        For PDF user space (origin bottom-left) use (x0, height_pt - y1, x1, height_pt - y0).
        """
        sx, sy = width_pt / width, height_pt / height
        return (
            round(self.x0 * sx, 2),
            round(self.y0 * sy, 2),
            round(self.x1 * sx, 2),
            round(self.y1 * sy, 2),
        )


def union_all(boxes: list[BBox]) -> BBox:
    """The box around all `boxes` (there must be at least one)."""
    out = boxes[0]
    for box in boxes[1:]:
        out = out.union(box)
    return out


def unrotate(
    x: float, y: float, degrees: float, size: tuple[int, int], before: tuple[int, int]
) -> tuple[float, float]:
    """A point of a frame of `size` made by rotating a frame of size `before` `degrees`
    clockwise about its centre, back in the frame before."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    dx, dy = x - size[0] / 2, y - size[1] / 2
    return before[0] / 2 + dx * cos + dy * sin, before[1] / 2 - dx * sin + dy * cos


def unturn(x: float, y: float, turn: int, width: int, height: int) -> tuple[float, float]:
    """A point of a page turned `turn` degrees clockwise, back on the page of `width` ×
    `height` before the turn."""
    if turn == 90:
        return y, height - x
    if turn == 180:
        return width - x, height - y
    if turn == 270:
        return width - y, x
    return x, y


def doc_id_for(sha256: str, tenant: str) -> str:
    """A document's id: 16 hex digits of its file's sha256 — the first 16 for the default
    tenant (as before tenants existed), else of the sha256 of tenant and content, so the same
    file held by two tenants is two documents whose ids never meet."""
    if tenant == DEFAULT:
        return sha256[:16]
    return hashlib.sha256(f"{tenant}:{sha256}".encode()).hexdigest()[:16]


def region_id_for(doc_id: str, page: int, index: int) -> str:
    return f"{doc_id}:p{page}:r{index}"


def parse_region_id(region_id: str) -> tuple[str, int, int]:
    """'3f9c0a1b2c3d4e5f:p1:r7' → (doc id, page, index); ValueError when malformed."""
    match = re.fullmatch(r"([0-9a-f]{16}):p(\d+):r(\d+)", region_id)
    if not match:
        raise ValueError(f"not a region id: {region_id!r}")
    return match.group(1), int(match.group(2)), int(match.group(3))


class Line(BaseModel):
    """One recognised text line with its box in page pixels."""

    text: str
    bbox: BBox
    confidence: float | None = None


class Region(BaseModel):
    """A layout block of a page (a paragraph, a table, a title...) in reading order."""

    id: str
    page: int
    index: int = Field(description="Reading-order position on the page, from 0.")
    label: Label
    bbox: BBox = Field(description="[x0, y0, x1, y1] in page-image pixels, origin top-left.")
    bbox_norm: BBox = Field(description="[x0, y0, x1, y1] as integers 0–1000, origin top-left.")
    text: str = ""
    markdown: str = ""
    confidence: float | None = None
    lines: list[Line] = Field(default_factory=list)
    source: str = Field("", description="Name of the parser that produced this region.")
    flags: list[str] = Field(
        default_factory=list, description="Warnings about this region, e.g. 'repetition'."
    )


class PageRotation(BaseModel):
    """How the stored page image was made from the page as loaded (an image file with its
    EXIF orientation applied, or a PDF page rendered at `Page.dpi`): turned `turn` degrees
    clockwise, then rotated `skew` degrees clockwise about its centre, on a frame that grows
    evenly on both sides only where ink would otherwise fall outside it."""

    turn: Literal[0, 90, 180, 270] = Field(0, description="Quarter turn applied, clockwise.")
    skew: float = Field(0.0, description="Deskew applied after the turn, degrees clockwise.")
    source_width: int = Field(description="Width of the page as loaded, in pixels.")
    source_height: int = Field(description="Height of the page as loaded, in pixels.")


class Page(BaseModel):
    number: int = Field(description="1-based page number.")
    width: int = Field(description="Width of the stored page image in pixels.")
    height: int = Field(description="Height of the stored page image in pixels.")
    dpi: int
    width_pt: float | None = Field(None, description="PDF page width in points (PDFs only).")
    height_pt: float | None = Field(None, description="PDF page height in points (PDFs only).")
    image: str | None = Field(None, description="Path of the stored page image, if stored.")
    text_layer: bool = Field(False, description="True when the text came from the PDF itself.")
    rotation: PageRotation | None = Field(
        None,
        description="How the scanned page was stood upright (turn and skew); null when it was "
        "not examined (a PDF text layer, or straightening off). Boxes refer to the upright "
        "image; `Page.source_box` maps them back to the page as loaded.",
    )
    regions: list[Region] = Field(default_factory=list)
    error: str | None = Field(None, description="Why this page could not be parsed, if it failed.")

    def source_box(self, box: BBox) -> BBox:
        """`box` (pixels of the stored, upright page image) in pixels of the page as loaded:
        the image file (EXIF orientation applied), or the PDF page rendered at `dpi` (then
        `BBox.to_points(rotation.source_width, rotation.source_height, width_pt, height_pt)`
        gives PDF points). A skewed box comes back as the box around its four corners."""
        if self.rotation is None:
            return box
        turned = self.rotation.turn in (90, 270)
        width, height = self.rotation.source_width, self.rotation.source_height
        tw, th = (height, width) if turned else (width, height)  # after the turn
        corners = [
            unrotate(x, y, self.rotation.skew, (self.width, self.height), (tw, th))
            for x, y in ((box.x0, box.y0), (box.x1, box.y0), (box.x0, box.y1), (box.x1, box.y1))
        ]
        points = [unturn(x, y, self.rotation.turn, width, height) for x, y in corners]
        return BBox.around(points).clip(width, height)


class ParserInfo(BaseModel):
    name: str
    version: str
    fingerprint: str = Field(description="Hash of the parser's name, version and settings.")


class Document(BaseModel):
    id: str
    source: str
    sha256: str
    mime: str
    pages: list[Page] = Field(default_factory=list)
    parser: ParserInfo
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    warnings: list[str] = Field(default_factory=list)

    def regions(self) -> list[Region]:
        """Every region of the document in reading order, page by page."""
        return [region for page in self.pages for region in page.regions]

    def region(self, region_id: str) -> Region | None:
        for page in self.pages:
            for region in page.regions:
                if region.id == region_id:
                    return region
        return None

    def page(self, number: int) -> Page | None:
        return self.pages[number - 1] if 1 <= number <= len(self.pages) else None
