"""`embedded`: RapidLayout (CDLA) regions + RapidOCR (PP-OCR) lines, offline on CPU.

Both wheels ship their ONNX models, so this works with nothing but `pip install`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import numpy as np

from ...config import Settings
from ..blocks import LayoutBox, build_blocks
from ..loaders import PageImage
from ..model import BBox, Label, Line
from .base import Block

#: CDLA class names → scanrag labels.
CDLA_LABELS: dict[str, Label] = {
    "text": "text",
    "title": "title",
    "figure": "figure",
    "figure_caption": "caption",
    "table": "table",
    "table_caption": "caption",
    "header": "header",
    "footer": "footer",
    "reference": "text",
    "equation": "formula",
}


def quiet_model_logs() -> None:
    """RapidOCR and RapidLayout log every model load at INFO; keep stdout for results."""
    for name in ("RapidOCR", "rapid_layout"):
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(("RapidOCR", "rapid_layout")):
            logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def _loading_quietly() -> Iterator[None]:
    """Their loggers are created, at INFO, while the models load: silence INFO meanwhile."""
    quiet_model_logs()
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
        quiet_model_logs()


def load_rapid_layout(min_score: float, threads: int | None) -> Any:
    """RapidLayout (CDLA) with `threads` onnxruntime threads (None: all cores): several OCR
    processes on one machine share the cores. -1 (onnxruntime's default) is passed
    explicitly, as rapid-layout keeps the last value class-wide."""
    from rapid_layout import RapidLayout

    engine = {"intra_op_num_threads": threads or -1}
    with _loading_quietly():
        return RapidLayout(conf_thresh=min_score, engine_cfg=engine)


def rapid_layout_boxes(model: Any, bgr: np.ndarray) -> list[LayoutBox]:
    """RapidLayout's regions on a BGR page, with scanrag labels."""
    result = model(bgr)
    if result.boxes is None:
        return []
    found = zip(result.boxes, result.class_names, result.scores, strict=True)
    return [
        LayoutBox(CDLA_LABELS.get(name, "other"), BBox.enclosing(*box), float(score))
        for box, name, score in found
    ]


class EmbeddedParser:
    name = "embedded"

    def __init__(self, settings: Settings) -> None:
        self.use_cls = settings.ocr_use_cls
        self.layout_min_score = settings.layout_min_score
        self.threads = settings.ocr_threads  # not in config(): it changes speed, not output
        self.version = f"rapidocr-{version('rapidocr')}+rapid-layout-{version('rapid-layout')}"
        self._lock = threading.Lock()
        self._ocr: Any = None
        self._layout: Any = None

    def config(self) -> dict[str, Any]:
        return {"use_cls": self.use_cls, "layout_min_score": self.layout_min_score}

    def _models(self) -> tuple[Any, Any]:
        if self._ocr is None:
            from rapidocr import RapidOCR

            params = {
                "Global.use_cls": self.use_cls,
                "Global.log_level": "warning",
                "EngineConfig.onnxruntime.intra_op_num_threads": self.threads or -1,
            }
            with _loading_quietly():
                self._ocr = RapidOCR(params=params)
            self._layout = load_rapid_layout(self.layout_min_score, self.threads)
        return self._ocr, self._layout

    def read_lines(self, bgr: np.ndarray) -> list[Line]:
        """RapidOCR's lines as axis-aligned boxes with confidences."""
        ocr, _ = self._models()
        result = ocr(bgr)
        if result.boxes is None:
            return []
        return [
            Line(text=text, bbox=BBox.around(quad.tolist()), confidence=round(float(score), 4))
            for quad, text, score in zip(result.boxes, result.txts, result.scores, strict=True)
            if text.strip()
        ]

    def detect_layout(self, bgr: np.ndarray) -> list[LayoutBox]:
        _, layout = self._models()
        return rapid_layout_boxes(layout, bgr)

    def parse_page(self, page: PageImage) -> list[Block]:
        bgr = np.ascontiguousarray(np.asarray(page.image)[:, :, ::-1])
        with self._lock:  # the ONNX sessions are shared; one page at a time per process
            lines = self.read_lines(bgr)
            layout = self.detect_layout(bgr)
        return build_blocks(lines, layout, page.width, page.height, self.name)
