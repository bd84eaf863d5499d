"""The parser protocol and the block type every backend returns."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..loaders import PageImage
from ..model import BBox, Label, Line


@dataclass
class Block:
    """A region before it gets its id: what a parser found on a page, in reading order."""

    label: Label
    bbox: BBox
    lines: list[Line] = field(default_factory=list)
    text: str = ""
    markdown: str = ""
    confidence: float | None = None
    source: str = ""
    flags: list[str] = field(default_factory=list)


class Parser(Protocol):
    """Anything that turns one page into blocks in reading order.

    A parser that reads a whole file in one request (Zhipu MaaS) also has
    `parse_document(source) -> Callable[[PageImage], list[Block]]`; the pipeline prefers it.
    """

    name: str
    version: str

    def config(self) -> dict[str, Any]:
        """The settings that change this parser's output (they go into the fingerprint)."""
        ...

    def parse_page(self, page: PageImage) -> list[Block]: ...


def fingerprint(parser: Parser) -> str:
    """A short hash of what determines a parser's output: cached Documents are keyed by it."""
    payload = json.dumps(
        {"name": parser.name, "version": parser.version, "config": parser.config()},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
