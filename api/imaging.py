"""Page images with boxes drawn on them, and region crops."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from ..ingest.model import BBox

OUTLINE = (230, 30, 30)
FILL = (255, 210, 0, 70)


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


def highlight(image: Image.Image, boxes: list[BBox]) -> Image.Image:
    """The page with each box filled translucent yellow and outlined in red."""
    page = image.convert("RGBA")
    overlay = Image.new("RGBA", page.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    width = max(3, page.width // 400)
    for box in boxes:
        clipped = box.clip(page.width, page.height)
        draw.rectangle(tuple(clipped), fill=FILL, outline=(*OUTLINE, 255), width=width)
    return Image.alpha_composite(page, overlay).convert("RGB")


def jpeg_bytes(image: Image.Image, quality: int = 88) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
