"""File → Document: load pages, run the parser on each, give every region its id and boxes."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from ..config import Settings
from ..errors import (
    ConfigError,
    CorruptFile,
    ModelServerError,
    ModelServerUnreachable,
    ScanragError,
)
from .loaders import PageImage, SourceFile, iter_pages, open_source, show
from .model import (
    Document,
    Line,
    Page,
    PageRotation,
    ParserInfo,
    Region,
    doc_id_for,
    region_id_for,
)
from .orientation import Straightener, get_straightener
from .parsers import Block, Parser, fingerprint, get_parser
from .parsers.auto import has_text_layer

log = logging.getLogger(__name__)

#: Called with (doc_id, page number, image); returns where the image was stored.
SaveImage = Callable[[str, int, Image.Image], str]
#: Called after each page with (pages done, pages in the file).
OnPage = Callable[[int, int], None]
#: Reads one page into blocks: a parser's `parse_page`, or a whole-document result's.
ReadPage = Callable[[PageImage], list[Block]]


def parse_file(
    path: Path,
    settings: Settings,
    parser: Parser | None = None,
    *,
    source: SourceFile | None = None,
    save_image: SaveImage | None = None,
    on_page: OnPage | None = None,
    pages: tuple[int, int] | None = None,
) -> Document:
    """Parse one file. A page that fails is kept with its error; a file whose every page
    fails raises `CorruptFile`. Model-server and configuration errors fail the file at once,
    unless `settings.fallback` is on: then those pages go to `settings.fallback_parser`.

    With `pages` (first, last), only those pages are read: the result is one part of the
    Document, for `join_parts` to put together (a batch of a long PDF parsed elsewhere)."""
    parser = parser or get_parser(settings)
    source = source or open_source(path, settings)
    doc_id = doc_id_for(source.sha256, settings.tenant)
    warnings: list[str] = []
    fallback = None
    if settings.fallback and settings.fallback_parser != parser.name:
        fallback = Fallback(get_parser(settings, settings.fallback_parser))
    read: ReadPage = parser.parse_page
    if hasattr(parser, "parse_document"):  # whole-document backends (Zhipu MaaS)
        try:
            read = parser.parse_document(source)
        except ModelServerError as exc:
            if fallback is None:
                raise type(exc)(f"{show(path)}: {exc}") from exc
            fallback.down = exc
    if fallback is not None:
        read = fallback.wrap(read)
    before = pages[0] - 1 if pages else 0
    parsed: list[Page] = []
    straightener = straightener_for(settings, parser)
    for page_image in iter_pages(source, settings, pages):
        rotation = None
        if straightener is not None and _is_scan(page_image, settings):
            page_image, rotation = _straighten(straightener, page_image, path)
            if rotation is not None and rotation.turn:
                warnings.append(
                    f"{show(path)}: page {page_image.number} was turned {rotation.turn}° "
                    "clockwise to read it upright"
                )
        page = _parse_page(doc_id, page_image, read, parser.name, path)
        page.rotation = rotation
        if page.error:
            warnings.append(page.error)
        elif save_image is not None:
            page.image = save_image(doc_id, page.number, page_image.image)
        parsed.append(page)
        if on_page:
            on_page(before + len(parsed), source.page_count)
    if fallback is not None:
        warnings.extend(fallback.warnings(path, parser.name))
    if pages is None or pages == (1, source.page_count):
        check_some_page_parsed(path, parsed)
    return Document(
        id=doc_id,
        source=show(path),  # printable: a non-UTF-8 name cannot go into JSON as it is
        sha256=source.sha256,
        mime=source.mime,
        pages=parsed,
        parser=ParserInfo(
            name=parser.name, version=parser.version, fingerprint=fingerprint(parser)
        ),
        warnings=warnings,
    )


def parse_fingerprint(parser: Parser, settings: Settings) -> str:
    """What determines a parsed Document: the parser, its settings, the page dpi and how
    scanned pages are straightened."""
    straightener = straightener_for(settings, parser)
    turning = straightener.config() if straightener is not None else None
    payload = json.dumps([fingerprint(parser), settings.dpi, turning], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def straightener_for(settings: Settings, parser: Parser) -> Straightener | None:
    """The straightener scanned pages go through, or None: `straighten` off, or a backend
    that reads the file itself (Zhipu MaaS answers in the frame of the file as it is)."""
    if not settings.straighten or hasattr(parser, "parse_document"):
        return None
    return get_straightener(settings.ocr_threads)


def _is_scan(page: PageImage, settings: Settings) -> bool:
    """A page read from its pixels: an image, or a PDF page without a usable text layer
    (a text layer keeps its own geometry)."""
    return page.error is None and not has_text_layer(page, settings.min_text_layer_chars)


def _straighten(
    straightener: Straightener, page: PageImage, path: Path
) -> tuple[PageImage, PageRotation | None]:
    """The page stood upright; a page that cannot be examined is parsed as it is (a page
    that cannot be decoded fails in the parser, with its own message)."""
    try:
        return straightener.straighten(page)
    except ScanragError:
        return page, None
    except Exception as exc:  # a bug here must not cost the page: it is read as it lies
        log.debug("straightening %s page %d failed", show(path), page.number, exc_info=True)
        log.warning(
            "%s page %d: not straightened (%s: %s)",
            show(path),
            page.number,
            type(exc).__name__,
            exc,
        )
        return page, None


def check_some_page_parsed(path: Path, pages: list[Page]) -> None:
    """A file whose every page failed is a failed file (the first page's error says why)."""
    if not any(page.error is None for page in pages):
        raise CorruptFile(pages[0].error if pages else f"{show(path)}: no pages")


def join_parts(path: Path, parts: list[Document]) -> Document:
    """The Document of a file parsed in page batches (`parse_file(..., pages=...)`), equal to
    parsing it in one go. Batches are not used with `fallback`, whose warnings span the file."""
    parts = sorted(parts, key=lambda part: part.pages[0].number if part.pages else 0)
    pages = [page for part in parts for page in part.pages]
    check_some_page_parsed(path, pages)
    return parts[0].model_copy(
        update={"pages": pages, "warnings": [w for part in parts for w in part.warnings]}
    )


class Fallback:
    """Reads pages with a model backend; a page it fails on goes to the fallback parser.

    Once the server is unreachable, the file's remaining pages skip it rather than each
    waiting through the retries again.
    """

    def __init__(self, parser: Parser) -> None:
        self.parser = parser
        self.down: ModelServerError | None = None
        self.pages: dict[str, list[int]] = {}  # error message → pages read by the fallback

    def wrap(self, read: ReadPage) -> ReadPage:
        def read_or_fall_back(page_image: PageImage) -> list[Block]:
            error = self.down
            if error is None:
                try:
                    return read(page_image)
                except ModelServerError as exc:
                    error = exc
                    if isinstance(exc, ModelServerUnreachable):
                        self.down = exc
            self.pages.setdefault(str(error), []).append(page_image.number)
            blocks = self.parser.parse_page(page_image)
            for block in blocks:
                block.flags.append("fallback")
            return blocks

        return read_or_fall_back

    def warnings(self, path: Path, primary: str) -> list[str]:
        return [
            f"{show(path)}: {'page' if len(numbers) == 1 else 'pages'} "
            f"{', '.join(map(str, numbers))} parsed with {self.parser.name} instead of "
            f"{primary}: {message}"
            for message, numbers in self.pages.items()
        ]


def _parse_page(
    doc_id: str, page_image: PageImage, read: ReadPage, parser: str, path: Path
) -> Page:
    page = Page(
        number=page_image.number,
        width=page_image.width,
        height=page_image.height,
        dpi=page_image.dpi,
        width_pt=page_image.width_pt,
        height_pt=page_image.height_pt,
        error=page_image.error,
    )
    if page.error:
        return page
    try:
        blocks = read(page_image)
    except ModelServerError as exc:  # about the setup, not the page: fail the file
        raise type(exc)(f"{show(path)}: page {page.number}: {exc}") from exc
    except ConfigError:
        raise
    except ScanragError as exc:
        page.error = str(exc)
        return page
    except Exception as exc:  # one bad page must not fail the file
        log.exception("parser %s failed on %s page %d", parser, show(path), page.number)
        page.error = (
            f"{show(path)}: page {page.number} could not be parsed ({type(exc).__name__}: {exc})"
        )
        return page
    page.regions = [_region(doc_id, page, index, block) for index, block in enumerate(blocks)]
    page.text_layer = any(block.source == "pdf-text" for block in blocks)
    return page


def _region(doc_id: str, page: Page, index: int, block: Block) -> Region:
    bbox = block.bbox.clip(page.width, page.height)
    return Region(
        id=region_id_for(doc_id, page.number, index),
        page=page.number,
        index=index,
        label=block.label,
        bbox=bbox,
        bbox_norm=bbox.to_norm(page.width, page.height),
        text=block.text,
        markdown=block.markdown or block.text,
        confidence=block.confidence,
        lines=[
            Line(
                text=line.text,
                bbox=line.bbox.clip(page.width, page.height),
                confidence=line.confidence,
            )
            for line in block.lines
        ],
        source=block.source,
        flags=block.flags,
    )
