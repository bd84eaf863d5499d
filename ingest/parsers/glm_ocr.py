"""`glm-ocr`: GLM-OCR behind an OpenAI-compatible server (vLLM, SGLang, Ollama).

Layout runs here (RapidLayout by default, PP-DocLayoutV3 when configured); each region's
crop then goes to the server as one chat-completions request with GLM-OCR's task prompt,
several at a time. With `ocr_api=maas` the same name selects Zhipu's hosted pipeline
(`glm_maas`), which does layout and OCR in one request per document.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image

from ...config import Settings
from ...errors import ConfigError
from ...modelserver import Endpoint, ModelServer, image_data_uri
from ..loaders import PageImage
from .base import Block
from .glm import OCR_ENDPOINT, TASK_PROMPTS, Task, plan_regions, read_regions
from .glm_maas import MaasParser
from .layout_models import Layout, describe_layout, layout_detector

#: Sampling the GLM-OCR SDK sends: greedy, with a mild repetition penalty. `top_k` and
#: `repetition_penalty` are vLLM / SGLang sampling extensions; Ollama ignores them.
SAMPLING: dict[str, Any] = {
    "temperature": 0.0,
    "top_p": 1e-05,
    "top_k": 1,
    "repetition_penalty": 1.1,
}


def ocr_server(settings: Settings) -> ModelServer:
    if not settings.ocr_url:
        raise ConfigError(
            "the glm-ocr parser needs its server's URL: pass --ocr-url "
            "(e.g. http://localhost:8080/v1) or set SCANRAG_OCR_URL"
        )
    key = settings.ocr_api_key.get_secret_value() if settings.ocr_api_key else None
    return ModelServer(
        Endpoint(settings.ocr_url, **OCR_ENDPOINT),
        api_key=key,
        timeout=settings.ocr_timeout,
        retries=settings.ocr_retries,
        pool=settings.ocr_workers,
    )


class GlmOcrParser:
    name = "glm-ocr"
    version = "openai-1"  # bump when the request or the reply mapping changes

    def __init__(self, settings: Settings, layout: Layout | None = None) -> None:
        self.settings = settings
        self.server = ocr_server(settings)
        self.layout = layout or layout_detector(settings, self.name)
        self._pool = ThreadPoolExecutor(settings.ocr_workers, thread_name_prefix="glm-ocr")

    def config(self) -> dict[str, Any]:
        return {
            "model": self.settings.ocr_model,
            "max_tokens": self.settings.ocr_max_tokens,
            "layout": describe_layout(self.layout),
        }

    def recognize(self, crop: Image.Image, task: Task) -> tuple[str, str | None]:
        """One region: the crop as a data URI, then the task prompt (the SDK's order)."""
        reply = self.server.chat(
            self.settings.ocr_model,
            [
                {"type": "image_url", "image_url": {"url": image_data_uri(crop)}},
                {"type": "text", "text": TASK_PROMPTS[task]},
            ],
            max_tokens=self.settings.ocr_max_tokens,
            **SAMPLING,
        )
        return reply.content, reply.finish_reason

    def parse_page(self, page: PageImage) -> list[Block]:
        plan = plan_regions(page, self.layout(page), getattr(self.layout, "ordered", False))
        return read_regions(page, plan, self.recognize, self.name, self._pool)


def glm_ocr_parser(settings: Settings) -> Any:
    """`glm-ocr`: a self-hosted server region by region, or Zhipu MaaS (ocr_api=maas)."""
    if settings.ocr_api == "maas":
        return MaasParser(settings)
    return GlmOcrParser(settings)
