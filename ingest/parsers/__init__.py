"""Parser backends, chosen by name in `Settings.parser`.

The registry maps a name to "module:factory" (a parser's `from_settings`); backends import
lazily, so optional ones cost nothing until used. Adding a backend is one new module (a
parser and its `ParserOptions`) and one line here.
"""

from __future__ import annotations

import pkgutil
import threading

from pydantic import SecretStr

from ...config import Settings
from ...errors import ConfigError
from .base import Block, Parser, ParserOptions, fingerprint

REGISTRY: dict[str, str] = {
    "auto": "scanrag.ingest.parsers.auto:AutoParser.from_settings",
    "embedded": "scanrag.ingest.parsers.embedded:EmbeddedParser.from_settings",
    "pdf-text": "scanrag.ingest.parsers.pdf_text:PdfTextParser.from_settings",
    "glm-ocr": "scanrag.ingest.parsers.glm_ocr:glm_ocr_parser",
    "vlm": "scanrag.ingest.parsers.vlm:VlmParser.from_settings",
    "transformers": "scanrag.ingest.parsers.transformers_glm:TransformersParser.from_settings",
    "tesseract": "scanrag.ingest.parsers.tesseract:TesseractParser.from_settings",
}

_cache: dict[tuple[str, str, tuple[str, ...]], Parser] = {}
_lock = threading.RLock()  # `auto` builds its scan parser through get_parser


def get_parser(settings: Settings, name: str | None = None) -> Parser:
    """The parser named `name` (default: `settings.parser`), built once per process."""
    name = name or settings.parser
    if name not in REGISTRY:
        choices = ", ".join(sorted(REGISTRY))
        raise ConfigError(f"unknown parser {name!r}; choose one of: {choices}")
    secrets = tuple(  # JSON shows them as "**********"; two keys are two parsers
        value.get_secret_value()
        for value in settings.__dict__.values()
        if isinstance(value, SecretStr)
    )
    key = (name, settings.model_dump_json(), secrets)
    with _lock:
        if key not in _cache:
            _cache[key] = pkgutil.resolve_name(REGISTRY[name])(settings)
        return _cache[key]


__all__ = ["REGISTRY", "Block", "Parser", "ParserOptions", "fingerprint", "get_parser"]
