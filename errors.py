"""Errors users meet, one type per kind of failure.

Each message names the file or URL and says what to do; the CLI prints it as one line and
the API returns it as one JSON error. Tracebacks only go to the log.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, ValidationError


def printable(text: str) -> str:
    """`text` with undecodable file-name bytes (surrogate escapes) spelled out as \\xNN, so
    it can be printed and written as UTF-8 JSON."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # lone surrogates that are not escaped bytes
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def problems(exc: ValidationError, whole: str, depth: int | None = None) -> list[str]:
    """What pydantic found wrong, one "field: message" each (`whole` when it is the whole
    object; the field's path cut to `depth` parts), never the value given: it may be a key."""
    return [
        f"{'.'.join(str(part) for part in error['loc'][:depth]) or whole}: {error['msg']}"
        for error in exc.errors(include_input=False)
    ]


def unicode_text(value: str) -> str:
    """A pydantic validator for text from outside: JSON can spell lone surrogates
    (\\ud800), which are no Unicode text and which nothing downstream can encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        message = "the text holds a lone surrogate (\\ud800-\\udfff); send valid Unicode"
        raise ValueError(message) from None
    return value


#: A `str` field of a request: valid Unicode only.
Text = Annotated[str, AfterValidator(unicode_text)]


class ScanragError(Exception):
    """Base class: a failure with a message meant for the user (always printable)."""

    #: HTTP status the API answers with when this error reaches it.
    http_status = 400

    def __init__(self, *args: object) -> None:
        super().__init__(*(printable(arg) if isinstance(arg, str) else arg for arg in args))


class UnsupportedFile(ScanragError):
    """The file is not a document type scanrag reads (sniffed from its bytes)."""

    http_status = 415


class CorruptFile(ScanragError):
    """The file claims a supported type but cannot be decoded."""

    http_status = 422


class EncryptedFile(CorruptFile):
    """A PDF that needs a password."""


class LimitExceeded(ScanragError):
    """A configured safety limit (pixels, pages, bytes) was exceeded."""

    http_status = 413


class ModelServerError(ScanragError):
    """A model server (GLM-OCR, a VLM, an LLM) is unreachable or answered unusably."""

    http_status = 502


class ModelServerUnreachable(ModelServerError):
    """No connection or no reply at all: the next page would fail the same way."""


class ConfigError(ScanragError):
    """A setting is missing or inconsistent."""
