"""Stored page images read within a pixel budget (crops, highlights)."""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import Image

from ..errors import LimitExceeded


def read_page_image(path: Path, max_pixels: int) -> tuple[Image.Image, float]:
    """A stored page image in RGB, decoded within `max_pixels`, and how much smaller than the
    page it is (divide page pixels by it). A larger page is read at 1/2, 1/4 or 1/8 scale by
    the JPEG decoder itself, so time and memory follow the budget, not the page (a 144 MP page
    would take 430 MB in RGB, and several times that to draw on). LimitExceeded when even 1/8
    is over the budget."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the budget decides
        image = Image.open(path)
    width, height = image.size
    reduce = 1
    while width * height > max_pixels * reduce * reduce and reduce < 8:
        reduce *= 2
    if width * height > max_pixels * reduce * reduce or (reduce > 1 and image.format != "JPEG"):
        image.close()
        raise LimitExceeded(
            f"{path.name}: a {width}×{height} page is too large to read within "
            f"{max_pixels:,} pixels; raise SCANRAG_IMAGE_MAX_PIXELS"
        )
    if reduce > 1:
        image.draft("RGB", (width // reduce, height // reduce))  # picks 1/reduce
    with image:
        rgb = image.convert("RGB")
    return rgb, width / rgb.width
