"""`transformers`: GLM-OCR loaded in-process with Hugging Face transformers (GPU when present).

Needs `pip install 'scanrag[transformers]'` and the weights: a local folder, or a hub id
already in the local cache (downloads only with `model_download=true`). Layout is
PP-DocLayoutV3 by default (`layout_backend`), read region by region with the same prompts and
reply handling as the `glm-ocr` server backend.

transformers' GLM-V processor imports a video processor that needs torchvision, and
torchvision from PyPI drags in a CUDA build of torch. GLM-OCR reads images only, so without
torchvision the processor is loaded without its video half (`image_only_processor`).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from PIL import Image
from pydantic import Field

from ...config import Settings
from ...errors import ConfigError
from ..loaders import PageImage
from .base import Block, ParserOptions
from .glm import TASK_PROMPTS, Task, plan_regions, read_regions
from .hf import missing_weights, torch_device, weights_path
from .layout_models import Layout, describe_layout, layout_detector

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'scanrag[transformers]'"


def image_only_processor() -> type:
    """Glm46VProcessor without the video processor it would build with torchvision.

    `ProcessorMixin` loads the sub-processors named in `__init__`'s signature, so leaving
    `video_processor` out makes `from_pretrained` load the image processor (its PIL
    backend) and the tokenizer only; the chat template and token ids stay the same.
    """
    from transformers import Glm46VProcessor
    from transformers.processing_utils import ProcessorMixin

    class GlmOcrImageProcessor(Glm46VProcessor):
        def __init__(
            self, image_processor: Any = None, tokenizer: Any = None, chat_template: Any = None
        ) -> None:
            self.image_token = getattr(tokenizer, "image_token", None) or "<|image|>"
            self.video_token = getattr(tokenizer, "video_token", None) or "<|video|>"
            self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
            self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)
            self.video_start_id = tokenizer.convert_tokens_to_ids("<|begin_of_video|>")
            self.video_end_id = tokenizer.convert_tokens_to_ids("<|end_of_video|>")

    return GlmOcrImageProcessor


def load_glm_ocr(model_id: str, device: str, download: bool) -> tuple[Any, Any]:
    """(processor, model) from a local folder or hub id, on `device`, half precision on GPU."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.utils import is_torchvision_available

    dtype = torch.float32
    if device.startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    processor_class: Any = AutoProcessor if is_torchvision_available() else image_only_processor()
    model_id = weights_path(model_id, "GLM-OCR", "SCANRAG_TRANSFORMERS_MODEL")
    try:
        processor = processor_class.from_pretrained(model_id, local_files_only=not download)
        model = AutoModelForImageTextToText.from_pretrained(
            model_id, dtype=dtype, local_files_only=not download
        )
    except (OSError, ValueError) as exc:
        raise missing_weights("GLM-OCR", model_id, "SCANRAG_TRANSFORMERS_MODEL", exc) from exc
    # transformers types PreTrainedModel.to through a decorator that takes the model itself
    return processor, model.to(device).eval()  # type: ignore[arg-type]


class TransformersOptions(ParserOptions):
    transformers_model: str = Field(serialization_alias="model")
    ocr_max_tokens: int = Field(serialization_alias="max_tokens")
    # where it runs and whether weights may be fetched (GPUs run it in bf16 / fp16; left out
    # of the fingerprint, as it always was)
    transformers_device: str | None = Field(exclude=True)
    model_download: bool = Field(exclude=True)


def _require_torch() -> str:
    """transformers' version; a one-line install hint when torch or transformers is missing."""
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:
        raise ConfigError(
            f"the transformers parser needs torch and transformers ({exc}); {INSTALL_HINT}"
        ) from exc
    return str(transformers.__version__)


class TransformersParser:
    name = "transformers"

    def __init__(self, options: TransformersOptions, layout: Layout) -> None:
        self.options = options
        self.version = f"transformers-{_require_torch()}"
        self.layout = layout
        self.generations = 0  # how many regions were read (tests and logs)
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TransformersParser:
        _require_torch()  # before the layout step, which needs them too
        return cls(TransformersOptions.of(settings), layout_detector(settings, cls.name))

    def config(self) -> dict[str, Any]:
        return {**self.options.fingerprint(), "layout": describe_layout(self.layout)}

    def _model(self) -> tuple[Any, Any]:
        if self._loaded is None:
            self._loaded = load_glm_ocr(
                self.options.transformers_model,
                torch_device(self.options.transformers_device),
                self.options.model_download,
            )
        return self._loaded

    def recognize(self, crop: Image.Image, task: Task) -> tuple[str, str | None]:
        """One greedy generation for one region crop (one at a time: one model, one device)."""
        import torch

        with self._lock:
            processor, model = self._model()
            messages = [
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "image": crop},
                        {"type": "text", "text": TASK_PROMPTS[task]},
                    ],
                }
            ]
            inputs = processor.apply_chat_template(
                messages,
                tokenize=True,
                add_generation_prompt=True,
                return_dict=True,
                return_tensors="pt",
            )
            inputs.pop("token_type_ids", None)
            inputs = inputs.to(model.device)
            if "pixel_values" in inputs:
                inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
            limit = self.options.ocr_max_tokens
            with torch.inference_mode():
                output = model.generate(
                    **inputs, max_new_tokens=limit, do_sample=False, repetition_penalty=1.1
                )
            self.generations += 1
            new = output[0, inputs["input_ids"].shape[1] :]
            text = processor.decode(new, skip_special_tokens=True)
        return text, "length" if len(new) >= limit else "stop"

    def parse_page(self, page: PageImage) -> list[Block]:
        plan = plan_regions(page, self.layout(page), getattr(self.layout, "ordered", False))
        return read_regions(page, plan, self.recognize, self.name)
