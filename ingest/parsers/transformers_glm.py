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
from pathlib import Path
from typing import Any

from PIL import Image

from ...config import Settings
from ...errors import ConfigError
from ...modelserver import one_line
from ..loaders import PageImage
from .base import Block
from .glm import (
    TASK_PROMPTS,
    Layout,
    Task,
    describe_layout,
    layout_detector,
    plan_regions,
    read_regions,
)

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'scanrag[transformers]'"


def torch_device(settings: Settings) -> str:
    import torch

    return settings.transformers_device or ("cuda" if torch.cuda.is_available() else "cpu")


def missing_weights(what: str, model_id: str, setting: str, exc: Exception) -> ConfigError:
    """One line for weights that could not be loaded: a broken folder or an uncached hub id."""
    if Path(model_id).is_dir():
        reason = one_line(str(exc).split(". ")[0], 120)
        return ConfigError(
            f"{what}: {model_id} is not a complete checkpoint ({reason}); fix {setting}"
        )
    return ConfigError(
        f"{what} weights {model_id!r} are not in the local Hugging Face cache (nor a folder "
        f"here); download them (huggingface-cli download {model_id}), point {setting} at a "
        "local folder, or set SCANRAG_MODEL_DOWNLOAD=true"
    )


def weights_path(model_id: str, what: str, setting: str) -> str:
    """A local folder as an absolute path; a hub id ("org/name") as it is.

    Something that looks like a path but is not there fails here, with the setting to fix,
    rather than as a hub-id validation error deep inside transformers.
    """
    path = Path(model_id).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if model_id.startswith(("/", ".", "~")) or model_id.count("/") != 1 or path.exists():
        raise ConfigError(
            f"{what} weights not found: no model folder at {model_id!r}; fix {setting}"
        )
    return model_id


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
    processor_class = AutoProcessor if is_torchvision_available() else image_only_processor()
    model_id = weights_path(model_id, "GLM-OCR", "SCANRAG_TRANSFORMERS_MODEL")
    try:
        processor = processor_class.from_pretrained(model_id, local_files_only=not download)
        model = AutoModelForImageTextToText.from_pretrained(
            model_id, dtype=dtype, local_files_only=not download
        )
    except (OSError, ValueError) as exc:
        raise missing_weights("GLM-OCR", model_id, "SCANRAG_TRANSFORMERS_MODEL", exc) from exc
    return processor, model.to(device).eval()


class TransformersParser:
    name = "transformers"

    def __init__(self, settings: Settings, layout: Layout | None = None) -> None:
        try:
            import torch  # noqa: F401
            import transformers
        except ImportError as exc:
            raise ConfigError(
                f"the transformers parser needs torch and transformers ({exc}); {INSTALL_HINT}"
            ) from exc
        self.settings = settings
        self.version = f"transformers-{transformers.__version__}"
        self.layout = layout or layout_detector(settings, self.name)
        self.generations = 0  # how many regions were read (tests and logs)
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any] | None = None

    def config(self) -> dict[str, Any]:
        return {
            "model": self.settings.transformers_model,
            "max_tokens": self.settings.ocr_max_tokens,
            "layout": describe_layout(self.layout),
        }

    def _model(self) -> tuple[Any, Any]:
        if self._loaded is None:
            self._loaded = load_glm_ocr(
                self.settings.transformers_model,
                torch_device(self.settings),
                self.settings.model_download,
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
            limit = self.settings.ocr_max_tokens
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
