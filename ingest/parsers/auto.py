"""`auto`: per page, a usable PDF text layer → `pdf-text`, anything else → the scan parser."""

from __future__ import annotations

from typing import Any

from ...config import Settings
from ..loaders import PageImage
from .base import Block, Parser
from .pdf_text import PdfTextParser


class AutoParser:
    name = "auto"

    def __init__(self, settings: Settings) -> None:
        from . import get_parser

        self.min_chars = settings.min_text_layer_chars
        self.text = PdfTextParser(settings)
        self.scan: Parser = get_parser(settings, settings.scan_parser)
        self.version = f"{self.text.version}|{self.scan.name}-{self.scan.version}"

    def config(self) -> dict[str, Any]:
        return {
            "min_text_layer_chars": self.min_chars,
            "text": self.text.config(),
            self.scan.name: self.scan.config(),
        }

    def parse_page(self, page: PageImage) -> list[Block]:
        parser = self.text if has_text_layer(page, self.min_chars) else self.scan
        return parser.parse_page(page)


def has_text_layer(page: PageImage, min_chars: int) -> bool:
    """Enough real characters to trust the PDF's own text over OCR (`min_text_layer_chars`)."""
    text = "".join(line.text for line in page.text_lines)
    chars = sum(1 for char in text if not char.isspace())
    return chars >= min_chars and text.count("\ufffd") <= 0.1 * chars
