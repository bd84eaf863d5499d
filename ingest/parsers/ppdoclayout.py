"""PP-DocLayoutV3 (GLM-OCR's own layout model) in-process, as a layout step.

transformers ships the model, but its image processor is torchvision-only. The model needs
nothing more than an 800×800 RGB image scaled to 0–1, so the resize is done with OpenCV
(already installed for RapidOCR; cubic without antialiasing, as the processor does) and the
few lines of post-processing (scores, boxes, reading order) are written out below.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from pydantic import Field

from ..blocks import LayoutBox
from ..loaders import PageImage
from ..model import BBox
from .base import ParserOptions
from .glm import map_label
from .hf import missing_weights, torch_device, weights_path

#: The input size the model was trained and exported at.
INPUT_SIZE = 800
#: Detection threshold used by the GLM-OCR SDK.
THRESHOLD = 0.3


def detections(
    logits: Any, pred_boxes: Any, order_logits: Any, width: int, height: int, threshold: float
) -> list[tuple[int, float, tuple[float, float, float, float]]]:
    """(class id, score, pixel box) for one image, in the model's reading order.

    Scores are per (query, class), the best `num_queries` of them kept, as in RT-DETR;
    a query's reading position is its rank by the pairwise "comes before" votes of the
    order head.
    """
    import torch

    num_queries, num_classes = logits.shape
    scores, index = torch.topk(logits.sigmoid().flatten(), num_queries)
    labels, queries = index % num_classes, index // num_classes
    order = order_logits.sigmoid()
    votes = order.triu(diagonal=1).sum(dim=0) + (1.0 - order.T).tril(diagonal=-1).sum(dim=0)
    rank = torch.empty_like(queries)
    rank[torch.argsort(votes)] = torch.arange(num_queries, device=rank.device)
    cx, cy, w, h = pred_boxes.unbind(-1)
    corners = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
    corners = corners * torch.tensor([width, height, width, height], dtype=corners.dtype)
    kept = [
        (int(rank[q]), int(label), float(score), tuple(float(v) for v in corners[q]))
        for q, label, score in zip(queries.tolist(), labels.tolist(), scores.tolist(), strict=True)
        if score >= threshold
    ]
    kept.sort(key=lambda item: item[0])
    return [(label, score, box) for _, label, score, box in kept]  # type: ignore[misc]


class PPDocLayoutOptions(ParserOptions):
    layout_model: str = Field(serialization_alias="model")
    # where it runs and whether weights may be fetched: not what it finds
    transformers_device: str | None = Field(exclude=True)
    model_download: bool = Field(exclude=True)


class PPDocLayout:
    """Layout boxes in reading order from PP-DocLayoutV3 (weights: `layout_model`)."""

    ordered = True

    def __init__(self, options: PPDocLayoutOptions, threshold: float = THRESHOLD) -> None:
        import torch  # noqa: F401  (fail early, with the install hint, in layout_detector)
        import transformers  # noqa: F401

        self.options = options
        self.threshold = threshold
        self._lock = threading.Lock()
        self._model: Any = None

    def describe(self) -> dict[str, Any]:
        threshold = self.threshold
        return {"name": "pp-doclayout-v3", **self.options.fingerprint(), "threshold": threshold}

    def _load(self) -> Any:
        if self._model is None:
            from transformers import AutoModelForObjectDetection

            model_id, setting = self.options.layout_model, "SCANRAG_LAYOUT_MODEL"
            try:
                model = AutoModelForObjectDetection.from_pretrained(
                    weights_path(model_id, "PP-DocLayoutV3", setting),
                    local_files_only=not self.options.model_download,
                )
            except (OSError, ValueError) as exc:
                raise missing_weights("PP-DocLayoutV3", model_id, setting, exc) from exc
            self._model = model.to(torch_device(self.options.transformers_device)).eval()
        return self._model

    def __call__(self, page: PageImage) -> list[LayoutBox]:
        import cv2
        import torch

        with self._lock:
            model = self._load()
            pixels = cv2.resize(
                np.asarray(page.image), (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_CUBIC
            )
            tensor = torch.from_numpy(pixels).permute(2, 0, 1)[None].float().div(255)
            with torch.inference_mode():
                out = model(pixel_values=tensor.to(model.device, model.dtype))
            found = detections(
                out.logits[0].float().cpu(),
                out.pred_boxes[0].float().cpu(),
                out.order_logits[0].float().cpu(),
                page.width,
                page.height,
                self.threshold,
            )
        names = model.config.id2label
        return [
            LayoutBox(
                map_label(names.get(label, "text")),
                BBox.enclosing(*box).clip(page.width, page.height),
                score,
                native=names.get(label, ""),
            )
            for label, score, box in found
        ]
