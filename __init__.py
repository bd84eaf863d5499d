"""scanrag: ask questions over folders of scanned documents, with answers that cite page regions.

import scanrag
doc = scanrag.parse("invoice.pdf")          # Document with pages, regions, boxes
print(scanrag.to_markdown(doc))              # layout-aware Markdown with region anchors
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import Settings
from .errors import (
    ConfigError,
    CorruptFile,
    EncryptedFile,
    LimitExceeded,
    ModelServerError,
    ModelServerUnreachable,
    ScanragError,
    UnsupportedFile,
)
from .ingest.markdown import document_markdown as to_markdown
from .ingest.model import BBox, Document, Line, Page, Region

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`scanrag.Index` imports the retrieval stack (and torch) only when first used."""
    if name == "Index":
        from .retrieval.index import Index

        return Index
    raise AttributeError(f"module 'scanrag' has no attribute {name!r}")


def parse(path: str | Path, settings: Settings | None = None, **options: Any) -> Document:
    """Parse one file into a `Document`; `options` override settings (parser="embedded", dpi=300).

    Raises a `ScanragError` subclass naming the file when it cannot be read.
    """
    from .ingest.pipeline import parse_file

    settings = Settings.resolve(settings, **options)
    return parse_file(Path(path), settings)


__all__ = [
    "BBox",
    "ConfigError",
    "CorruptFile",
    "Document",
    "EncryptedFile",
    "Index",
    "LimitExceeded",
    "Line",
    "ModelServerError",
    "ModelServerUnreachable",
    "Page",
    "Region",
    "ScanragError",
    "Settings",
    "UnsupportedFile",
    "__version__",
    "parse",
    "to_markdown",
]
