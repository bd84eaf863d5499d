"""Page images with boxes drawn on them, and region crops."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from ..ingest.model import BBox

OUTLINE = (230, 30, 30)
FILL = (255, 210, 0)
ALPHA = 70 / 255


def parse_boxes(value: str) -> list[BBox]:
    """'x0,y0,x1,y1;x0,y0,x1,y1' → boxes; ValueError naming the bad part."""
    boxes = []
    for part in filter(None, (p.strip() for p in value.split(";"))):
        numbers = part.split(",")
        if len(numbers) != 4:
            raise ValueError(f"a box needs 4 numbers x0,y0,x1,y1, got {part!r}")
        try:
            x0, y0, x1, y1 = (int(float(n)) for n in numbers)
        except OverflowError:  # "1e400" parses as a float but is no pixel
            raise ValueError(f"a box needs finite numbers, got {part!r}") from None
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"empty box {part!r}: x1 must exceed x0 and y1 exceed y0")
        boxes.append(BBox(x0, y0, x1, y1))
    return boxes


def highlight(page: Image.Image, boxes: list[BBox]) -> Image.Image:
    """The RGB page, drawn on in place: each box filled translucent yellow, then outlined in
    red (no second full-size layer: memory stays that of the page)."""
    draw = ImageDraw.Draw(page)
    width = max(3, page.width // 400)
    shown = [box.clip(page.width, page.height) for box in boxes]
    shown = [box for box in shown if box.x1 > box.x0 and box.y1 > box.y0]  # off the page
    for box in shown:
        area = page.crop(box)
        yellow = Image.new("RGB", area.size, FILL)
        page.paste(Image.blend(area, yellow, ALPHA), box)
    for box in shown:
        draw.rectangle(box, outline=OUTLINE, width=width)
    return page


def jpeg_bytes(image: Image.Image, quality: int = 88) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
