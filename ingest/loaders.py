"""Find document files and turn them into page images (plus the PDF text layer).

Types are sniffed from the bytes, never from the extension. Pages are produced lazily so a
long PDF never sits in memory at once; a page that cannot be decoded becomes a page with an
error instead of failing the whole file.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import socket
import stat
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pymupdf
from PIL import Image, ImageOps

from ..config import Settings
from ..errors import CorruptFile, EncryptedFile, LimitExceeded, ScanragError, UnsupportedFile
from .model import BBox, Line

pymupdf.TOOLS.mupdf_display_errors(False)
pymupdf.TOOLS.mupdf_display_warnings(False)

PDF = "application/pdf"
SNIFF_BYTES = 1024
BMP_HEADER_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)
#: Names that claim a document. Inside a folder, such a file that is not one (a zero-byte or
#: garbled scan) is a failure, while other files (a .json beside the scans) are only skipped.
DOCUMENT_SUFFIXES = frozenset(
    {".pdf", ".png", ".jpg", ".jpeg", ".jpe", ".webp", ".bmp", ".dib", ".tif", ".tiff"}
)
_PIL_LIMIT = threading.Lock()  # Image.MAX_IMAGE_PIXELS is global: lift it one thread at a time


def sniff_mime(head: bytes) -> str | None:
    """The document type from a file's first bytes, or None when scanrag cannot read it."""
    if b"%PDF-" in head[:SNIFF_BYTES]:
        return PDF
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"BM") and int.from_bytes(head[14:18], "little") in BMP_HEADER_SIZES:
        return "image/bmp"  # "BM" alone starts many text files: check the DIB header size
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image/tiff"
    return None


def show(path: Path | str) -> str:
    """A path printable on any terminal, even when its name is not valid UTF-8."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def failure_message(path: Path | str, exc: BaseException) -> str:
    """A file's error line: scanrag's own message (it names the file), else the file and what
    happened, so every path that fails a file reports it the same way."""
    if isinstance(exc, ScanragError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{show(path)}: {exc}"
    return f"{show(path)}: unexpected error ({type(exc).__name__}: {exc})"


# --- discovery --------------------------------------------------------------------------


@dataclass
class Discovery:
    """What a set of paths holds: readable documents, skipped files and failures."""

    files: list[tuple[Path, str]] = field(default_factory=list)  # (path, mime)
    skipped: list[Path] = field(default_factory=list)
    errors: list[tuple[Path, str]] = field(default_factory=list)
    known: list[Path] = field(default_factory=list)  # `is_known` said unchanged: not read


def discover(
    paths: list[Path],
    is_known: Callable[[Path, os.stat_result], bool] | None = None,
    within: list[Path] | None = None,
    skip: list[Path] | None = None,
) -> Discovery:
    """Walk files and folders: recursive, hidden entries skipped, deterministic order.

    Inside folders, files of other types are skipped; a file named explicitly, or named like a
    document (.pdf, .jpg, ...), that is not a readable document is an error. Symlinked
    folders are followed once (loops are cut).
    Files for which `is_known(path, stat)` is true are listed in `known` without being opened.
    With `within`, nothing whose real path lies outside those folders is read: a link out of
    them is an error, not followed. A walk passes over the folders in `skip` (scanrag's data
    directory: page images, every tenant's uploads); files named explicitly are read.
    """
    found = Discovery()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[Path] = set()
    fences = [Path(os.path.realpath(root)) for root in within or []]
    kept_out = [Path(os.path.realpath(folder)) for folder in skip or []]

    def held(path: Path) -> bool:
        real = Path(os.path.realpath(path))
        return any(real.is_relative_to(folder) for folder in kept_out)

    def outside(path: Path) -> bool:
        if within is None:
            return False
        real = Path(os.path.realpath(path))
        if any(real.is_relative_to(fence) for fence in fences):
            return False
        found.errors.append((path, outside_message(path)))
        return True

    def add(path: Path, explicit: bool) -> None:
        key = Path(os.path.abspath(path))
        if key in seen_files:
            return
        seen_files.add(key)
        try:
            if is_known is not None and is_known(path, path.stat()):
                found.known.append(path)
                return
            with open_regular(path, within) as handle:
                mime = sniff_mime(handle.read(SNIFF_BYTES))
        except OSError as exc:
            found.errors.append((path, cannot_read_message(path, exc)))
            return
        except ScanragError as exc:  # not a regular file, or a link out of `within`
            found.errors.append((path, str(exc)))
            return
        if mime is not None:
            found.files.append((path, mime))
        elif explicit or path.suffix.lower() in DOCUMENT_SUFFIXES:
            found.errors.append((path, unreadable_message(path)))
        else:
            found.skipped.append(path)

    def walk(folder: Path) -> None:
        try:
            info = folder.stat()
            entries = sorted(os.scandir(folder), key=lambda e: os.fsencode(e.name))
        except OSError as exc:
            message = f"{show(folder)}: cannot open the folder ({exc.strerror})"
            found.errors.append((folder, f"{message}; check its permissions"))
            return
        if (info.st_dev, info.st_ino) in seen_dirs:
            return
        seen_dirs.add((info.st_dev, info.st_ino))
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_symlink() and outside(path):
                continue
            if kept_out and (entry.is_symlink() or entry.is_dir()) and held(path):
                continue
            try:
                mode = entry.stat().st_mode  # follows symlinks
            except OSError as exc:
                found.errors.append((path, broken_entry_message(path, exc)))
                continue
            if stat.S_ISDIR(mode):
                walk(path)
            elif stat.S_ISREG(mode):
                add(path, explicit=False)

    for path in paths:
        if outside(path):
            continue
        if path.is_dir():
            walk(path)
        elif path.exists():
            add(path, explicit=True)
        else:
            found.errors.append((path, f"{show(path)}: no such file or folder"))
    return found


def outside_message(path: Path) -> str:
    return (
        f"{show(path)}: links outside the allowed folders (SCANRAG_ALLOWED_ROOTS); not "
        "followed: copy the file into an allowed folder instead"
    )


def unreadable_message(path: Path) -> str:
    """Why a file that should be a document is not one: empty, or not a supported type."""
    try:
        empty = path.stat().st_size == 0
    except OSError:
        empty = False
    return empty_message(path) if empty else unsupported_message(path)


def empty_message(path: Path | str) -> str:
    return f"{show(path)}: the file is empty (0 bytes); copy or scan it again"


def unsupported_message(path: Path | str) -> str:
    kinds = "PDF, PNG, JPEG, WebP, BMP or TIFF"
    return (
        f"{show(path)}: not a supported document type (expected {kinds}, judged by content); "
        "convert it to one of these or leave it out"
    )


def cannot_read_message(path: Path, exc: OSError) -> str:
    return f"{show(path)}: cannot read the file ({exc.strerror}); check its permissions"


def broken_entry_message(path: Path, exc: OSError) -> str:
    what = "a link loop" if exc.errno == errno.ELOOP else "a broken link or unreadable entry"
    return f"{show(path)}: {what} ({exc.strerror}); fix the link or remove it"


# --- pages ------------------------------------------------------------------------------


@dataclass
class PageImage:
    """One page ready for a parser: its pixel size, a way to get the image, its text layer."""

    number: int
    width: int
    height: int
    dpi: int
    render: Callable[[], Image.Image]
    width_pt: float | None = None
    height_pt: float | None = None
    text_lines: list[Line] = field(default_factory=list)  # the PDF's own text, in pixels
    error: str | None = None

    @property
    def image(self) -> Image.Image:
        """The RGB page image (rendered on first use for PDFs)."""
        if not hasattr(self, "_image"):
            self._image = self.render()
        return self._image


@dataclass
class SourceFile:
    """A document file that passed the checks: type, size, password and limits.

    `data` holds the file's bytes when the parse runs where `path` cannot be read (a Ray
    worker on another machine); `path` still names the file in the Document and in messages.
    """

    path: Path
    mime: str
    sha256: str
    page_count: int
    data: bytes | None = field(default=None, repr=False)
    #: (host, device, inode) of the file that was checked and hashed: every later open of
    #: `path` on that host must find that same file, or it was swapped meanwhile (a link put
    #: in its place). Another host (a Ray node on a shared file system) cannot tell.
    identity: tuple[str, int, int] | None = None

    def open(self) -> BinaryIO:
        """The checked file, opened again (for parsing): refused when `path` now leads to
        another file than the one checked."""
        handle = open_regular(self.path)
        info = os.fstat(handle.fileno())
        here = (socket.gethostname(), info.st_dev, info.st_ino)
        if self.identity is not None and self.identity[0] == here[0] and here != self.identity:
            handle.close()
            raise CorruptFile(
                f"{show(self.path)}: the file was replaced while being indexed; ingest it again"
            )
        return handle

    def content(self) -> AbstractContextManager[bytes | BinaryIO]:
        """The bytes when they were sent along, else the file opened again (checked)."""
        return nullcontext(self.data) if self.data is not None else self.open()

    def read_bytes(self) -> bytes:
        with self.content() as data:
            return data if isinstance(data, bytes) else data.read()

    @property
    def size(self) -> int:
        return len(self.data) if self.data is not None else self.path.stat().st_size


def open_source(path: Path, settings: Settings, within: list[Path] | None = None) -> SourceFile:
    """Check a file and hash it, from one open of it (see `open_regular`); raise a
    `ScanragError` that names the file when it is unusable."""
    with open_regular(path, within) as handle:
        mime, count = check_source(path, settings, handle)
        handle.seek(0)
        info = os.fstat(handle.fileno())
        sha256 = file_sha256(handle)
    identity = (socket.gethostname(), info.st_dev, info.st_ino)
    return SourceFile(path, mime, sha256, count, identity=identity)


def source_from_bytes(path: Path, data: bytes, settings: Settings) -> SourceFile:
    """A file read elsewhere (through an fsspec file system), checked like `open_source` and
    parsed from `data` as a Ray worker's copy is; `path` names it in the Document and in
    messages."""
    mime, count = check_source(path, settings, io.BytesIO(data))
    return SourceFile(path, mime, hashlib.sha256(data).hexdigest(), count, data=data)


def check_source(path: Path, settings: Settings, handle: BinaryIO | None = None) -> tuple[str, int]:
    """A file's type and page count, from its header only (no decoding, no hashing); raise a
    `ScanragError` naming the file when it is empty, of another type, broken, encrypted, or
    over the page or pixel limit. Reads `handle` when given, else opens `path`."""
    if handle is None:
        with open_regular(path) as opened:
            return check_source(path, settings, opened)
    try:
        size = handle.seek(0, os.SEEK_END)  # a file or its bytes in memory
        handle.seek(0)
        head = handle.read(SNIFF_BYTES)
    except OSError as exc:
        raise CorruptFile(cannot_read_message(path, exc)) from exc
    if size == 0:
        raise CorruptFile(empty_message(path))
    mime = sniff_mime(head)
    if mime is None:
        raise UnsupportedFile(unsupported_message(path))
    if mime == PDF:
        with open_pdf(path, settings, handle) as pdf:
            count = pdf.page_count
    else:
        handle.seek(0)
        with open_image(path, handle) as image:
            count = _frame_count(path, image) if mime == "image/tiff" else 1
            check_pixels(path, image.size, settings)
    if count > settings.max_pages:
        raise LimitExceeded(
            f"{show(path)}: {count} pages, more than the limit of {settings.max_pages}; "
            "split the file or raise SCANRAG_MAX_PAGES"
        )
    return mime, count


def file_sha256(handle: BinaryIO) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: handle.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def open_regular(path: Path, within: list[Path] | None = None) -> BinaryIO:
    """Open a file for reading and check what was opened, not what a name led to earlier:
    only a regular file (a FIFO or a device is refused at once instead of blocking), and
    with `within`, only one whose real path lies below those folders, so that a file swapped
    for a link after the folder was walked is not read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise CorruptFile(cannot_read_message(path, exc)) from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnsupportedFile(
                f"{show(path)}: not a regular file (a FIFO, socket or device); leave it out"
            )
        if within is not None:
            real = _opened_path(fd, path, info)
            if not any(real.is_relative_to(os.path.realpath(root)) for root in within):
                raise UnsupportedFile(outside_message(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _opened_path(fd: int, path: Path, info: os.stat_result) -> Path:
    """Where an open file really is: Linux names it in /proc; elsewhere the resolved name must
    still lead to the same file."""
    with suppress(OSError):
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    real = Path(os.path.realpath(path))
    try:
        again = real.stat()
    except OSError as exc:
        raise CorruptFile(cannot_read_message(path, exc)) from exc
    if (again.st_dev, again.st_ino) != (info.st_dev, info.st_ino):
        raise CorruptFile(f"{show(path)}: the file changed while being opened; ingest it again")
    return real


def iter_pages(
    source: SourceFile, settings: Settings, pages: tuple[int, int] | None = None
) -> Iterator[PageImage]:
    """The file's pages in order (only `pages`, first and last inclusive, when given); a page
    that fails to decode carries `error` instead."""
    first, last = pages or (1, source.page_count)
    numbers = range(max(first, 1) - 1, min(last, source.page_count))
    if source.mime == PDF:
        yield from _pdf_pages(source, settings, numbers)
    else:
        yield from _image_pages(source, settings, numbers)


def open_pdf(path: Path, settings: Settings, data: bytes | BinaryIO) -> pymupdf.Document:
    """A PDF from its bytes or an open file (`path` names it in messages)."""
    if isinstance(data, io.BytesIO):  # bytes in memory: no descriptor to open lazily
        data = data.getvalue()
    try:
        if isinstance(data, bytes):
            pdf = pymupdf.open(stream=data, filetype="pdf")
        elif os.path.exists(f"/proc/self/fd/{data.fileno()}"):  # the open file, read lazily
            pdf = pymupdf.open(f"/proc/self/fd/{data.fileno()}", filetype="pdf")
        else:
            data.seek(0)
            pdf = pymupdf.open(stream=data.read(), filetype="pdf")
    except Exception as exc:  # PyMuPDF raises several types for broken files
        raise CorruptFile(
            f"{show(path)}: not a readable PDF ({exc}); re-export or re-scan it"
        ) from exc
    try:
        if pdf.needs_pass and not (
            settings.pdf_password and pdf.authenticate(settings.pdf_password)
        ):
            hint = "the password given is wrong" if settings.pdf_password else "pass --pdf-password"
            raise EncryptedFile(
                f"{show(path)}: the PDF is encrypted; {hint} (or SCANRAG_PDF_PASSWORD)"
            )
        if pdf.page_count == 0:
            raise CorruptFile(f"{show(path)}: the PDF has no pages; re-export it")
    except ScanragError:
        pdf.close()
        raise
    except Exception as exc:  # a page tree MuPDF cannot count
        pdf.close()
        raise CorruptFile(
            f"{show(path)}: not a readable PDF ({exc}); re-export or re-scan it"
        ) from exc
    return pdf


def _pdf_pages(source: SourceFile, settings: Settings, indexes: range) -> Iterator[PageImage]:
    with source.content() as data, open_pdf(source.path, settings, data) as pdf:
        for index in indexes:
            number = index + 1
            try:
                yield _pdf_page(pdf, index, settings)
            except ScanragError as exc:
                yield _failed_page(number, settings.dpi, str(exc))
            except Exception as exc:
                message = (
                    f"{show(source.path)}: page {number} cannot be read ({exc}); "
                    "re-export or re-scan it"
                )
                yield _failed_page(number, settings.dpi, message)


def _pdf_page(pdf: pymupdf.Document, index: int, settings: Settings) -> PageImage:
    page = pdf.load_page(index)
    dpi = settings.dpi
    zoom = dpi / 72
    rect = page.rect  # already rotated by /Rotate
    pixels = rect.width * zoom * rect.height * zoom
    if pixels > settings.max_pixels:  # huge page: render coarser rather than exhaust memory
        dpi = int(dpi * (settings.max_pixels / pixels) ** 0.5)
        zoom = dpi / 72
    matrix = pymupdf.Matrix(zoom, zoom)
    size = (rect * matrix).irect
    to_pixels = page.rotation_matrix * matrix

    def render() -> Image.Image:
        pix = page.get_pixmap(matrix=matrix, alpha=False, colorspace=pymupdf.csRGB)
        return Image.frombytes("RGB", (pix.width, pix.height), pix.samples)

    return PageImage(
        number=index + 1,
        width=size.width,
        height=size.height,
        dpi=dpi,
        render=render,
        width_pt=round(rect.width, 2),
        height_pt=round(rect.height, 2),
        text_lines=_text_layer(page, to_pixels),
    )


def _text_layer(page: pymupdf.Page, to_pixels: pymupdf.Matrix) -> list[Line]:
    lines: list[Line] = []
    flags = pymupdf.TEXT_PRESERVE_WHITESPACE | pymupdf.TEXT_MEDIABOX_CLIP
    for block in page.get_text("dict", flags=flags)["blocks"]:
        for line in block.get("lines", []):
            text = "".join(span["text"] for span in line["spans"]).strip()
            if text:
                box = pymupdf.Rect(line["bbox"]) * to_pixels
                lines.append(Line(text=text, bbox=BBox.enclosing(*box)))
    return lines


def open_image(path: Path, data: bytes | BinaryIO) -> Image.Image:
    """Open an image lazily (header only); decoding errors surface later, per page.

    Pillow's own decompression-bomb limit is lifted while the header is read: the caller
    checks the size against `max_pixels` (`check_pixels`), which may be set higher or lower.
    """
    try:
        with _PIL_LIMIT, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                return Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except Exception as exc:  # Pillow's decoders raise many types for broken files
        raise CorruptFile(
            f"{show(path)}: the image cannot be decoded ({exc}); re-export or re-scan it"
        ) from exc


def _ready(image: Image.Image) -> Callable[[], Image.Image]:
    """A page's `render` for an image decoded already."""
    return lambda: image


def _frame_count(path: Path, image: Image.Image) -> int:
    """Pages of a TIFF; counting walks every frame header, which can be broken too."""
    try:
        return int(getattr(image, "n_frames", 1))  # a TIFF counts them; one image is one
    except Exception as exc:
        raise CorruptFile(
            f"{show(path)}: the TIFF's page list cannot be read ({type(exc).__name__}: {exc}); "
            "re-export or re-scan it"
        ) from exc


def check_pixels(path: Path, size: tuple[int, int], settings: Settings) -> None:
    width, height = size
    if width * height > settings.max_pixels:
        raise LimitExceeded(
            f"{show(path)}: the image is {width}×{height} pixels, above the limit of "
            f"{settings.max_pixels:,}; downscale it or raise SCANRAG_MAX_PIXELS"
        )


def _image_pages(source: SourceFile, settings: Settings, indexes: range) -> Iterator[PageImage]:
    with source.content() as data, open_image(source.path, data) as image:
        for index in indexes:
            number = index + 1
            try:
                image.seek(index)
                check_pixels(source.path, image.size, settings)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    rgb = to_rgb(ImageOps.exif_transpose(image))
            except ScanragError as exc:
                yield _failed_page(number, settings.dpi, str(exc))
                continue
            except Exception as exc:  # any decoder failure: this page is unreadable
                what = "the image" if source.page_count == 1 else f"page {number}"
                message = (
                    f"{show(source.path)}: {what} cannot be decoded ({exc}); "
                    "re-export or re-scan it"
                )
                yield _failed_page(number, settings.dpi, message)
                continue
            dpi = _image_dpi(image, settings.dpi)
            yield PageImage(
                number=number,
                width=rgb.width,
                height=rgb.height,
                dpi=dpi,
                render=_ready(rgb),
            )


def _image_dpi(image: Image.Image, default: int) -> int:
    dpi = image.info.get("dpi")
    try:
        value = round(float(dpi[0])) if dpi else 0
    except (TypeError, ValueError):
        value = 0
    return value if 36 <= value <= 2400 else default


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB on white: 16-bit, CMYK, palette and transparent images normalised."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = values.max() if values.size else 0
        scale = 255 / top if top > 255 else 1
        return Image.fromarray(np.clip(values * scale, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _failed_page(number: int, dpi: int, message: str) -> PageImage:
    def missing() -> Image.Image:
        raise CorruptFile(message)

    return PageImage(number=number, width=0, height=0, dpi=dpi, render=missing, error=message)
