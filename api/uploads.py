"""Receiving an upload while it streams in: each file is written to the data dir's incoming
folder (`DataDir.incoming`) and hashed on the way, under the per-file and per-request limits,
so that a file over the limit is refused as soon as its bytes pass it (nothing is buffered
first). A refused or broken request leaves nothing behind; a file is moved to its place
(`DataDir.upload`) only once the whole request has arrived.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from ..datadir import TenantFiles

FIELD = "files"  # the multipart field that carries the documents
KEPT = ("metadata",)  # form fields read (a JSON object for every file of the upload)
MAX_NAME_BYTES = 200  # file systems allow 255 bytes per name; leave room for suffixes
MAX_FIELDS = 20  # other form fields, ignored, but counted and bounded
MAX_FIELD_BYTES = 64 << 10
MAX_HEADER_BYTES = 16 << 10  # the headers of one part
FLUSH_BYTES = 1 << 20  # received bytes are written to disk in batches of about this size

#: The request body of an upload, for the OpenAPI schema (the route reads the stream itself).
UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [FIELD],
                "properties": {
                    FIELD: {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "PDF, PNG, JPEG, WebP, BMP or TIFF files.",
                    },
                    "metadata": {
                        "type": "string",
                        "description": 'A JSON object for every file of the upload, e.g. '
                        '{"dept": "finance", "year": 2019}: string, number or boolean values.',
                    },
                },
            }
        }
    },
}


class UploadRefused(Exception):
    """The request as a whole is refused (nothing of it is kept): an HTTP status and why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass
class Incoming:
    """One uploaded file as it arrives."""

    name: str
    tmp: Path
    handle: BinaryIO
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)


def safe_name(name: str | None) -> str:
    """A file name without directories or control characters, never empty, and short enough
    for any file system (at most MAX_NAME_BYTES of UTF-8, the extension kept)."""
    base = os.path.basename((name or "").replace("\\", "/"))
    base = re.sub(r"[\x00-\x1f\x7f]", "_", base)
    base = base.lstrip(".") or "upload"
    if len(base.encode()) <= MAX_NAME_BYTES:
        return base
    stem, dot, suffix = base.rpartition(".")
    suffix = f".{suffix}" if dot and stem and len(suffix) <= 10 else ""
    room = MAX_NAME_BYTES - len(suffix.encode())
    return base[: len(base) - len(suffix)].encode()[:room].decode("utf-8", "ignore") + suffix


class _Parts:
    """python-multipart's callbacks: they track the part being read and refuse at once what
    goes over a limit; the bytes to write are queued for the caller to write off the loop."""

    def __init__(
        self, incoming: Path, max_bytes: int, max_files: int, too_large: Callable[[str], str]
    ) -> None:
        self.incoming = incoming
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.too_large = too_large
        self.files: list[Incoming] = []
        self.pending: list[tuple[Incoming, bytes]] = []
        self.pending_bytes = 0
        self.current: Incoming | None = None
        self.kept: dict[str, bytearray] = {}  # the KEPT fields' values
        self.field: bytearray | None = None  # the kept field being read
        self.fields = 0
        self.field_bytes = 0
        self.header = [bytearray(), bytearray()]
        self.headers: dict[bytes, bytes] = {}
        self.header_bytes = 0

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": lambda data, start, end: self._header(0, data[start:end]),
            "on_header_value": lambda data, start, end: self._header(1, data[start:end]),
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self.current, self.headers, self.header_bytes, self.field_bytes = None, {}, 0, 0
        self.field = None

    def _header(self, which: int, data: bytes) -> None:
        self.header_bytes += len(data)
        if self.header_bytes > MAX_HEADER_BYTES:
            raise UploadRefused(413, f"headers of a part over {MAX_HEADER_BYTES >> 10} KB")
        self.header[which] += data

    def on_header_end(self) -> None:
        name, value = (bytes(part) for part in self.header)
        self.headers[name.lower()] = value
        self.header = [bytearray(), bytearray()]

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        if options.get(b"name") == FIELD.encode() and b"filename" in options:
            if len(self.files) >= self.max_files:
                raise UploadRefused(
                    413,
                    f"more than {self.max_files} files in one upload; send them in several "
                    "requests or raise SCANRAG_MAX_UPLOAD_FILES",
                )
            name = safe_name(options[b"filename"].decode("utf-8", "replace"))
            fd, tmp = tempfile.mkstemp(dir=self.incoming)
            self.current = Incoming(name, Path(tmp), os.fdopen(fd, "wb"))
            self.files.append(self.current)
            return
        self.fields += 1
        if self.fields > MAX_FIELDS:
            raise UploadRefused(413, f"more than {MAX_FIELDS} other form fields")
        name = options.get(b"name", b"").decode("latin-1")
        if name in KEPT:
            self.field = self.kept[name] = bytearray()  # a repeated field: the last one

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        block = data[start:end]
        if self.current is None:  # a form field: bounded; kept when scanrag reads it
            self.field_bytes += len(block)
            if self.field_bytes > MAX_FIELD_BYTES:
                raise UploadRefused(413, f"a form field is larger than {MAX_FIELD_BYTES >> 10} KB")
            if self.field is not None:
                self.field += block
            return
        self.current.size += len(block)
        if self.current.size > self.max_bytes:
            raise UploadRefused(413, self.too_large(self.current.name))
        self.pending.append((self.current, block))
        self.pending_bytes += len(block)

    def on_part_end(self) -> None:
        self.current = None

    def take(self) -> list[tuple[Incoming, bytes]]:
        pending, self.pending, self.pending_bytes = self.pending, [], 0
        return pending


def _write(blocks: list[tuple[Incoming, bytes]]) -> None:
    for file, block in blocks:
        file.digest.update(block)
        file.handle.write(block)


def discard(files: list[Incoming]) -> None:
    for file in files:
        file.handle.close()
        file.tmp.unlink(missing_ok=True)


async def receive_files(
    request: Request,
    incoming: Path,
    max_bytes: int,
    max_files: int,
    too_large: Callable[[str], str],
) -> tuple[list[Incoming], dict[str, bytes]]:
    """The uploaded files, each complete in its temporary file (closed), and the values of
    the KEPT form fields sent. Raises UploadRefused (its files deleted) for a body that is
    not multipart, has no file, or goes over a limit; `too_large(name)` says why a file is
    refused for its size."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise UploadRefused(
            415, f"send the files as multipart/form-data, each in a field named {FIELD!r}"
        )
    incoming.mkdir(parents=True, exist_ok=True)
    parts = _Parts(incoming, max_bytes, max_files, too_large)
    try:
        parser = MultipartParser(options[b"boundary"], parts.callbacks())  # type: ignore[arg-type]
        async for chunk in request.stream():
            parser.write(chunk)
            if parts.pending_bytes >= FLUSH_BYTES:
                await run_in_threadpool(_write, parts.take())
        parser.finalize()
        await run_in_threadpool(_write, parts.take())
        for file in parts.files:
            file.handle.close()
    except FormParserError as exc:
        discard(parts.files)
        raise UploadRefused(400, f"the body is not valid multipart/form-data ({exc})") from exc
    except ClientDisconnect as exc:
        discard(parts.files)
        raise UploadRefused(400, "the client went away before the upload was complete") from exc
    except BaseException:
        discard(parts.files)
        raise
    if not parts.files:
        raise UploadRefused(422, f"no file in the upload: send each one in a field named {FIELD!r}")
    return parts.files, {name: bytes(value) for name, value in parts.kept.items()}


def store(file: Incoming, files: TenantFiles) -> Path:
    """Move a received file to its place among the tenant's uploads."""
    target = files.upload(file.digest.hexdigest(), file.name)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(file.tmp, target)
    return target


async def drain(request: Request) -> None:
    """Read the rest of a refused body without keeping it, so that a client still sending
    reads the answer instead of a reset connection; its length is bounded by the Guard."""
    try:
        async for _ in request.stream():
            pass
    except (ClientDisconnect, RuntimeError):  # gone, or nothing left to read
        pass
