"""`auto`: per page, a usable PDF text layer → `pdf-text`, anything else → the scan parser."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ...config import Settings
from ..loaders import PageImage
from . import get_parser
from .base import Block, Parser, ParserOptions
from .pdf_text import PdfTextParser


class AutoOptions(ParserOptions):
    min_text_layer_chars: int
    scan_parser: str = Field(exclude=True)  # its own options go in, keyed by its name


class AutoParser:
    name = "auto"

    def __init__(self, options: AutoOptions, text: PdfTextParser, scan: Parser) -> None:
        self.options = options
        self.min_chars = options.min_text_layer_chars
        self.text = text
        self.scan = scan
        self.version = f"{self.text.version}|{self.scan.name}-{self.scan.version}"

    @classmethod
    def from_settings(cls, settings: Settings) -> AutoParser:
        return cls(
            AutoOptions.of(settings),
            PdfTextParser.from_settings(settings),
            get_parser(settings, settings.scan_parser),
        )

    def config(self) -> dict[str, Any]:
        return {
            **self.options.fingerprint(),
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
