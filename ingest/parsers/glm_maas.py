"""`glm-ocr` with `ocr_api=maas`: Zhipu's hosted GLM-OCR pipeline (`layout_parsing`).

One request per document: the service renders the file itself, lays it out, reads every
region and answers with `layout_details`, a list per page of regions whose `bbox_2d` is in
pixels of the page size it reports in `data_info.pages[i]` (its own rendering, not ours).
Boxes are scaled onto scanrag's page images here.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from ...config import Settings
from ...errors import ConfigError
from ...modelserver import Endpoint, ModelServer, one_line
from ..loaders import PDF, PageImage, SourceFile
from ..model import BBox
from .base import Block, ServerOptions
from .glm import OCR_ENDPOINT, content_block, map_label

log = logging.getLogger(__name__)

DEFAULT_URL = "https://open.bigmodel.cn/api/paas/v4"
#: The service's limits: PDFs up to 50 MB and 100 pages per request, images up to 10 MB.
MAX_PDF_BYTES = 50 * 1024 * 1024
MAX_PDF_PAGES = 100
MAX_IMAGE_BYTES = 10 * 1024 * 1024


class MaasOptions(ServerOptions):
    ocr_api: Literal["openai", "maas"] = Field(serialization_alias="api")
    ocr_model: str = Field(serialization_alias="model")


class MaasParser:
    name = "glm-ocr"
    version = "maas-1"

    def __init__(self, options: MaasOptions) -> None:
        if not options.ocr_api_key:
            raise ConfigError(
                "Zhipu MaaS (ocr_api=maas) needs an API key: pass --ocr-api-key "
                "or set SCANRAG_OCR_API_KEY"
            )
        self.options = options
        self.max_pdf_pages = MAX_PDF_PAGES
        self.server = ModelServer(
            Endpoint(options.ocr_url or DEFAULT_URL, **OCR_ENDPOINT),
            api_key=options.ocr_api_key.get_secret_value(),
            timeout=options.ocr_timeout,
            retries=options.ocr_retries,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> MaasParser:
        return cls(MaasOptions.of(settings))

    def config(self) -> dict[str, Any]:
        return self.options.fingerprint()

    def _request(self, file: str, **extra: Any) -> dict[str, Any]:
        return self.server.post(
            "/layout_parsing", {"model": self.options.ocr_model, "file": file, **extra}
        )

    def parse_document(self, source: SourceFile) -> Callable[[PageImage], list[Block]]:
        """One request per PDF (per 100 pages); images go page by page, as they are decoded."""
        if source.mime != PDF or source.size > MAX_PDF_BYTES:
            return self.parse_page
        data = base64.b64encode(source.read_bytes()).decode("ascii")
        pages: list[tuple[list[dict[str, Any]], tuple[float, float] | None]] = []
        for start in range(1, source.page_count + 1, self.max_pdf_pages):
            end = min(start + self.max_pdf_pages - 1, source.page_count)
            reply = self._request(
                f"data:application/pdf;base64,{data}", start_page_id=start, end_page_id=end
            )
            batch = self._pages(reply)
            if len(batch) != end - start + 1:  # joined as they are, later pages would shift
                asked = f"page {start}" if start == end else f"pages {start} to {end}"
                raise self.server.error(
                    f"layout_parsing returned {len(batch)} pages for {asked} of a "
                    f"{source.page_count}-page PDF",
                    "check the service's status",
                )
            pages.extend(batch)

        def page_blocks(page: PageImage) -> list[Block]:
            regions, size = pages[page.number - 1]
            return self._blocks(regions, size, page)

        return page_blocks

    def parse_page(self, page: PageImage) -> list[Block]:
        """One page image as its own document (images, `auto`, PDFs over the size limit)."""
        buffer = io.BytesIO()
        page.image.save(buffer, format="PNG")
        mime = "image/png"
        if buffer.tell() > MAX_IMAGE_BYTES:
            buffer = io.BytesIO()
            page.image.save(buffer, format="JPEG", quality=92)
            mime = "image/jpeg"
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        pages = self._pages(self._request(f"data:{mime};base64,{data}"))
        if not pages:
            return []
        regions, size = pages[0]
        return self._blocks(regions, size or (page.width, page.height), page)

    def _pages(
        self, reply: dict[str, Any]
    ) -> list[tuple[list[dict[str, Any]], tuple[float, float] | None]]:
        """Each page's regions with the pixel size their boxes are in."""
        details = reply.get("layout_details")
        if isinstance(details, str):  # some deployments send it as a JSON string
            try:
                details = json.loads(details)
            except ValueError:
                details = None
        if not isinstance(details, list) or not all(isinstance(p, list) for p in details):
            raise self.server.error(
                "layout_parsing answered without a layout_details list of pages "
                f"({one_line(json.dumps(reply, ensure_ascii=False), 120)})",
                "check --ocr-url (the API base, e.g. https://open.bigmodel.cn/api/paas/v4)",
            )
        infos = (reply.get("data_info") or {}).get("pages") or []
        out = []
        for index, regions in enumerate(details):
            info = infos[index] if index < len(infos) and isinstance(infos[index], dict) else {}
            size = _size(info)
            out.append(([r for r in regions if isinstance(r, dict)], size))
        return out

    def _blocks(
        self,
        regions: list[dict[str, Any]],
        size: tuple[float, float] | None,
        page: PageImage,
    ) -> list[Block]:
        blocks = []
        for region in sorted(regions, key=lambda r: _number(r.get("index"), 0)):
            space = _size(region) or size
            box = _box(region.get("bbox_2d"), space, page)
            if box is None:
                continue
            native = str(region.get("native_label") or "")
            label = map_label(native or str(region.get("label") or "text"))
            content = region.get("content")
            heading = "##" if native == "paragraph_title" else "#"
            if isinstance(content, str) and content.startswith("## "):
                heading = "##"
            block = content_block(
                label,
                box,
                content if isinstance(content, str) else None,
                self.name,
                heading=heading,
            )
            if block is not None:
                blocks.append(block)
        return blocks


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _size(info: dict[str, Any]) -> tuple[float, float] | None:
    width, height = _number(info.get("width"), 0), _number(info.get("height"), 0)
    return (width, height) if width > 0 and height > 0 else None


def _box(raw: Any, space: tuple[float, float] | None, page: PageImage) -> BBox | None:
    """A MaaS box (pixels of the service's page of size `space`) in our page's pixels."""
    if not isinstance(raw, list) or len(raw) != 4:
        return None
    try:
        x0, y0, x1, y1 = (float(v) for v in raw)
    except (TypeError, ValueError):
        return None
    if space is None:  # no size given: assume the service saw our page as it is
        log.warning("layout_parsing gave no page size; taking boxes as page pixels")
        space = (page.width, page.height)
    sx, sy = page.width / space[0], page.height / space[1]
    box = BBox.enclosing(
        min(x0, x1) * sx, min(y0, y1) * sy, max(x0, x1) * sx, max(y0, y1) * sy
    ).clip(page.width, page.height)
    return box if box.area > 0 else None
