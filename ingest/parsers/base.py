"""The parser protocol, the block type every backend returns, and parser options."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from ...config import Settings
from ..loaders import PageImage
from ..model import BBox, Label, Line

_Options = TypeVar("_Options", bound="ParserOptions")


class ParserOptions(BaseModel):
    """The settings one parser reads, and no others: a parser is built from its options,
    never from the whole `Settings`.

    Every option goes into the parse fingerprint (what parses are cached under) unless its
    field says `exclude=True` — it changes how fast or where a parser runs, never what it
    reads — so an option that changes the output cannot be left out by mistake. Field names
    are `Settings` fields; a `serialization_alias` keeps the fingerprint of earlier caches
    where the option was named otherwise in it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    @classmethod
    def of(cls: type[_Options], settings: Settings) -> _Options:
        return cls.model_validate({name: getattr(settings, name) for name in cls.model_fields})

    def fingerprint(self) -> dict[str, Any]:
        """What of these options decides the parser's output."""
        return self.model_dump(mode="json", by_alias=True)


class ServerOptions(ParserOptions):
    """A model server's address and how it is asked, for parsers that send it pages or
    regions: the same model reads the same wherever it runs, so none is fingerprinted."""

    ocr_url: str | None = Field(exclude=True)
    ocr_api_key: SecretStr | None = Field(exclude=True)
    ocr_timeout: float = Field(exclude=True)
    ocr_retries: int = Field(exclude=True)


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
    The registry builds a backend with its `from_settings(settings)`.
    """

    name: str
    version: str

    def config(self) -> dict[str, Any]:
        """What decides this parser's output (it goes into the fingerprint): its options'
        `fingerprint()`, and that of the parts it is made of (a layout step, sub-parsers)."""
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
