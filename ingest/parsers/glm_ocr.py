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
from pydantic import Field

from ...config import Settings
from ...errors import ConfigError
from ...modelserver import Endpoint, ModelServer, image_data_uri
from ..loaders import PageImage
from .base import Block, ServerOptions
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


class GlmOcrOptions(ServerOptions):
    ocr_model: str = Field(serialization_alias="model")
    ocr_max_tokens: int = Field(serialization_alias="max_tokens")
    ocr_workers: int = Field(exclude=True)  # requests in flight: speed


def ocr_server(options: GlmOcrOptions) -> ModelServer:
    if not options.ocr_url:
        raise ConfigError(
            "the glm-ocr parser needs its server's URL: pass --ocr-url "
            "(e.g. http://localhost:8080/v1) or set SCANRAG_OCR_URL"
        )
    key = options.ocr_api_key.get_secret_value() if options.ocr_api_key else None
    return ModelServer(
        Endpoint(options.ocr_url, **OCR_ENDPOINT),
        api_key=key,
        timeout=options.ocr_timeout,
        retries=options.ocr_retries,
        pool=options.ocr_workers,
    )


class GlmOcrParser:
    name = "glm-ocr"
    version = "openai-1"  # bump when the request or the reply mapping changes

    def __init__(self, options: GlmOcrOptions, layout: Layout) -> None:
        self.options = options
        self.server = ocr_server(options)
        self.layout = layout
        self._pool = ThreadPoolExecutor(options.ocr_workers, thread_name_prefix="glm-ocr")

    @classmethod
    def from_settings(cls, settings: Settings) -> GlmOcrParser:
        return cls(GlmOcrOptions.of(settings), layout_detector(settings, cls.name))

    def config(self) -> dict[str, Any]:
        return {**self.options.fingerprint(), "layout": describe_layout(self.layout)}

    def recognize(self, crop: Image.Image, task: Task) -> tuple[str, str | None]:
        """One region: the crop as a data URI, then the task prompt (the SDK's order)."""
        reply = self.server.chat(
            self.options.ocr_model,
            [
                {"type": "image_url", "image_url": {"url": image_data_uri(crop)}},
                {"type": "text", "text": TASK_PROMPTS[task]},
            ],
            max_tokens=self.options.ocr_max_tokens,
            **SAMPLING,
        )
        return reply.content, reply.finish_reason

    def parse_page(self, page: PageImage) -> list[Block]:
        plan = plan_regions(page, self.layout(page), getattr(self.layout, "ordered", False))
        return read_regions(page, plan, self.recognize, self.name, self._pool)


def glm_ocr_parser(settings: Settings) -> Any:
    """`glm-ocr`: a self-hosted server region by region, or Zhipu MaaS (ocr_api=maas)."""
    if settings.ocr_api == "maas":
        return MaasParser.from_settings(settings)
    return GlmOcrParser.from_settings(settings)
