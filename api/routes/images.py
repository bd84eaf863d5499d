"""Page images (optionally with regions or boxes highlighted) and region crops."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Response, status
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from ...ingest.model import BBox, parse_region_id
from ...retrieval.images import read_page_image
from ...retrieval.index import Index
from ..deps import DocId, RegionId, get_index
from ..imaging import highlight, jpeg_bytes, parse_boxes
from ..urls import PAGE_IMAGE, REGION_CROP

router = APIRouter(tags=["images"])
JPEG: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": {}}, "description": "A JPEG image."}
}


@router.get(PAGE_IMAGE, responses=JPEG, response_class=Response)
def page_image(
    doc_id: DocId,
    number: int = PathParam(ge=1),
    highlight_ids: str | None = Query(
        None,
        alias="highlight",
        description="Region ids to outline, comma-separated.",
        max_length=4000,
    ),
    boxes: str | None = Query(
        None, description="Pixel boxes to outline: x0,y0,x1,y1;x0,y0,x1,y1", max_length=4000
    ),
    index: Index = Depends(get_index),
) -> Response:
    """The stored page image; with `highlight` or `boxes`, those boxes drawn on it."""
    doc = index.document(doc_id)
    path = index.page_image(doc, number) if doc else None
    if doc is None or path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no page {number} of document {doc_id!r}")
    if not highlight_ids and not boxes:
        return FileResponse(path, media_type="image/jpeg")
    drawn: list[BBox] = []
    for region_id in filter(None, (part.strip() for part in (highlight_ids or "").split(","))):
        region = doc.region(region_id)
        if region is None or region.page != number:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"no region {region_id!r} on page {number}"
            )
        drawn.append(region.bbox)
    if boxes:
        try:
            drawn.extend(parse_boxes(boxes))
        except ValueError as exc:
            raise HTTPException(422, f"bad boxes: {exc}") from exc
    image, scale = read_page_image(path, index.settings.image_max_pixels)
    with image:
        scaled = [box.reduced(scale) for box in drawn]
        return Response(jpeg_bytes(highlight(image, scaled)), media_type="image/jpeg")


@router.get(REGION_CROP, responses=JPEG, response_class=Response)
def region_crop(
    region_id: RegionId,
    pad: int = Query(0, ge=0, le=500, description="Pixels of margin around the region."),
    index: Index = Depends(get_index),
) -> Response:
    """The region cut out of its page image."""
    try:
        parse_region_id(region_id)
    except ValueError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    crop = index.region_image(region_id, pad)
    if crop is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no region {region_id!r}")
    return Response(jpeg_bytes(crop), media_type="image/jpeg")
