"""`pdf-text`: born-digital PDFs read from their own text layer with PyMuPDF (no OCR)."""

from __future__ import annotations

from typing import Any

import pymupdf

from ...config import Settings
from ..blocks import build_blocks
from ..loaders import PageImage
from .base import Block, ParserOptions


class PdfTextOptions(ParserOptions):
    """None: a text layer is read as it is."""


class PdfTextParser:
    name = "pdf-text"
    version = f"pymupdf-{pymupdf.VersionBind}"

    def __init__(self, options: PdfTextOptions) -> None:
        self.options = options

    @classmethod
    def from_settings(cls, settings: Settings) -> PdfTextParser:
        return cls(PdfTextOptions.of(settings))

    def config(self) -> dict[str, Any]:
        return self.options.fingerprint()

    def parse_page(self, page: PageImage) -> list[Block]:
        # The text layer's lines go through the same geometry as OCR lines: paragraphs,
        # headings by line height, XY-cut reading order, key–value rows.
        return build_blocks(page.text_lines, [], page.width, page.height, self.name)
