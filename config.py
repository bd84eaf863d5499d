"""One `Settings` object for the whole pipeline, passed down explicitly.

Values come from (highest first): keyword arguments, `SCANRAG_*` environment variables, a
`scanrag.toml` file in the working directory, then the defaults below.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from . import tenants
from .errors import ConfigError


class TenantLimits(BaseModel):
    """What one tenant may hold and ask; None: no limit."""

    documents: int | None = Field(None, ge=0, description="Most documents it may hold.")
    pages: int | None = Field(None, ge=0, description="Most pages, over all its documents.")
    requests_per_minute: int | None = Field(
        None, ge=1, description="Most API requests in any 60 seconds (then 429, Retry-After)."
    )

    def over(self, documents: int, pages: int) -> str | None:
        """What holding `documents` documents of `pages` pages in all would break, as
        'N documents, over its limit of M', or None when both are within the limits."""
        for kind, count, limit in (
            ("documents", documents, self.documents),
            ("pages", pages, self.pages),
        ):
            if limit is not None and count > limit:
                return f"{count} {kind}, over its limit of {limit}"
        return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(  # errors never echo a value: it may be a key
        env_prefix="SCANRAG_", toml_file="scanrag.toml", extra="forbid", hide_input_in_errors=True
    )

    data_dir: Path = Field(
        Path("scanrag-data"), description="Where the index, cache and page images live."
    )

    # --- loading -------------------------------------------------------------------------
    dpi: int = Field(200, ge=36, le=600, description="Resolution PDF pages are rendered at.")
    max_pixels: int = Field(
        150_000_000, description="Largest page image accepted (width × height); guards memory."
    )
    max_pages: int = Field(1000, ge=1, description="Most pages read from one file.")
    pdf_password: str | None = Field(None, description="Password for encrypted PDFs.")

    # --- parsing -------------------------------------------------------------------------
    parser: str = Field(
        "auto",
        description="auto | embedded | pdf-text | glm-ocr | vlm | transformers | tesseract.",
    )
    scan_parser: str = Field(
        "embedded", description="What `auto` uses for pages without a usable text layer."
    )
    min_text_layer_chars: int = Field(
        20, description="A PDF page needs this many characters of text to skip OCR (auto)."
    )
    straighten: bool = Field(
        True,
        description="Stand scanned pages upright before parsing: quarter turns (0/90/180/270°) "
        "and skews up to 15°; pages with a PDF text layer are left as they are.",
    )
    ocr_use_cls: bool = Field(
        False, description="Run RapidOCR's text-angle classifier (it flips upright crops)."
    )
    layout_min_score: float = Field(0.5, ge=0, le=1, description="RapidLayout score threshold.")
    ocr_profile: Literal["accurate", "fast"] = Field(
        "accurate",
        description="embedded OCR: accurate = the PP-OCRv6 small models exactly as shipped; "
        "fast = the text detector quantised to int8 on this machine (once, into "
        "model_cache_dir) and run on the page scaled to 1280 px, text still read from the full "
        "page: ~1.4× faster on A4 scans, looser line boxes (docs/benchmarks.md). Both offline.",
    )
    model_cache_dir: Path | None = Field(
        None,
        description="Where models made on this machine (the int8 OCR detector) are kept; "
        "default $XDG_CACHE_HOME/scanrag/models, else ~/.cache/scanrag/models.",
    )
    layout_backend: Literal["auto", "rapid", "pp-doclayout"] = Field(
        "auto",
        description="Layout model for glm-ocr and transformers: rapid (RapidLayout, ships in "
        "the wheel) or pp-doclayout (PP-DocLayoutV3, needs scanrag[transformers] and weights); "
        "auto = pp-doclayout for the transformers parser, rapid otherwise.",
    )
    layout_model: str = Field(
        "PaddlePaddle/PP-DocLayoutV3_safetensors",
        description="Local folder or Hugging Face id of the PP-DocLayoutV3 weights.",
    )

    # --- model servers (glm-ocr, vlm) ------------------------------------------------------
    ocr_url: str | None = Field(
        None,
        description="Base URL of the GLM-OCR server, e.g. http://localhost:8080/v1 "
        "(vLLM / SGLang / Ollama), or https://open.bigmodel.cn/api/paas/v4 with ocr_api=maas. "
        "Several servers (a fleet): comma-separated, or a list; requests go to the least busy.",
    )
    ocr_model: str = Field("glm-ocr", description="Model name sent to the GLM-OCR server.")
    ocr_api_key: SecretStr | None = Field(
        None, description="Bearer token for the GLM-OCR server (required by Zhipu MaaS)."
    )
    ocr_api: Literal["openai", "maas"] = Field(
        "openai",
        description="openai: layout here, then one chat-completions request per region; "
        "maas: Zhipu's layout_parsing, one request per document.",
    )
    ocr_workers: int = Field(8, ge=1, le=128, description="Concurrent region requests.")
    ocr_timeout: float = Field(
        120, gt=0, description="Seconds to wait for one model-server reply (glm-ocr and vlm)."
    )
    ocr_retries: int = Field(
        2, ge=0, le=10, description="Retries on 429, 5xx, timeouts and connection errors."
    )
    ocr_max_tokens: int = Field(
        8192, ge=16, description="Most tokens a model may write for one region or page."
    )
    vlm_url: str | None = Field(
        None, description="Base URL of the vision model server for `vlm` (default: ocr_url)."
    )
    vlm_model: str = Field("glm-4.6v-flash", description="Model name sent to the VLM server.")
    vlm_api_key: SecretStr | None = Field(
        None, description="Bearer token for the VLM server (default: ocr_api_key)."
    )
    vlm_extra: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra request fields for the VLM, e.g. "
        '{"chat_template_kwargs": {"enable_thinking": false}} for GLM-4.6V on vLLM.',
    )

    # --- scale-out ---------------------------------------------------------------------
    workers: int | None = Field(
        None,
        ge=1,
        le=512,
        description="Processes that parse files during ingest (OCR is CPU-bound); "
        "default max(1, cores // 2), so 1 on a 2-core machine.",
    )
    ocr_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="onnxruntime threads per OCR process (embedded parser); default: all cores "
        "in one process, cores // workers with several, 1 per Ray task.",
    )
    batch_pages: int = Field(
        32, ge=1, description="Files with more pages are parsed in batches of this many pages."
    )
    ray_address: str | None = Field(
        None,
        description="Parse on Ray: 'auto' (RAY_ADDRESS, else a cluster started on this machine, "
        "else a new local instance), or an address such as ray://head:10001.",
    )
    ray_send_files: bool = Field(
        True,
        description="Send each file's bytes to its Ray task; turn off when every node reads "
        "the same paths (a shared file system).",
    )

    # --- in-process models ----------------------------------------------------------------
    transformers_model: str = Field(
        "zai-org/GLM-OCR", description="Local folder or Hugging Face id of the GLM-OCR weights."
    )
    transformers_device: str | None = Field(
        None, description="Torch device for in-process models (default: cuda when available)."
    )
    model_download: bool = Field(
        False, description="Let in-process backends download missing weights from the hub."
    )
    tesseract_lang: str = Field(
        "eng+chi_sim", description="Tesseract languages, e.g. eng, chi_sim, eng+chi_sim."
    )

    # --- failures -------------------------------------------------------------------------
    fallback: bool = Field(
        False,
        description="Parse a page with fallback_parser when the model backend fails on it "
        "(server down, unusable reply) instead of failing the file.",
    )
    fallback_parser: str = Field("embedded", description="The parser `fallback` uses.")

    # --- index ---------------------------------------------------------------------------
    chunk_tokens: int = Field(
        200, ge=32, le=2048, description="Token budget of a chunk (MiniLM reads 256 tokens)."
    )
    embed_model: str = Field(
        "all-MiniLM-L6-v2",
        description="sentence-transformers model: packaged MiniLM, local path or cached hub id.",
    )
    embed_batch_size: int = Field(32, ge=1, description="Chunks embedded per batch.")
    search_mode: Literal["hybrid", "dense", "sparse"] = Field(
        "hybrid", description="Dense, sparse (BM25) or both fused with reciprocal-rank fusion."
    )
    fusion: Literal["rrf", "dbsf"] = Field(
        "rrf",
        description="How hybrid search merges dense and sparse lists: reciprocal-rank fusion, or "
        "distribution-based score fusion (hit@1 0.95 vs 0.72 on dev-eval; see docs/benchmarks.md).",
    )
    page_image_quality: int = Field(90, ge=30, le=100, description="JPEG quality of stored pages.")
    qdrant_url: str | None = Field(
        None, description="A Qdrant server or cluster; unset = embedded engine in the data dir."
    )
    qdrant_api_key: str | None = Field(None, description="API key for the Qdrant server.")
    qdrant_path: str | None = Field(
        None, description="qdrant-client local mode: a folder, or ':memory:'."
    )
    qdrant_collection: str = Field("scanrag", description="Collection name on a Qdrant server.")
    qdrant_shards: int | None = Field(
        None, ge=1, description="Shards of a new collection on a Qdrant cluster (server default 1)."
    )
    qdrant_replicas: int | None = Field(
        None, ge=1, description="Replication factor of a new collection (server default 1)."
    )
    qdrant_write_consistency: int | None = Field(
        None,
        ge=1,
        description="Replicas that must confirm a write (write_consistency_factor of a new "
        "collection; server default 1).",
    )
    qdrant_write_ordering: Literal["weak", "medium", "strong"] | None = Field(
        None,
        description="Ordering of writes across replicas: weak (server default), medium (via "
        "the shard leader when it is up) or strong (always via the leader).",
    )

    # --- answers -------------------------------------------------------------------------
    answerer: Literal["extractive", "openai"] = Field(
        "extractive", description="extractive (offline) or openai (any OpenAI-compatible LLM/VLM)."
    )
    top_k: int = Field(5, ge=1, le=50, description="Chunks retrieved to answer a question.")
    min_answer_score: float = Field(
        0.35, description="Extractive: below this the answer is 'the documents do not say'."
    )
    llm_url: str | None = Field(None, description="OpenAI-compatible base URL, e.g. .../v1.")
    llm_model: str = Field("glm-4.6v-flash", description="Model name sent to the LLM endpoint.")
    llm_api_key: str | None = Field(None, description="API key for the LLM endpoint.")
    llm_images: bool = Field(False, description="Attach the evidence region crops (vision models).")
    llm_timeout: float = Field(60.0, gt=0, description="Seconds per LLM request.")
    llm_retries: int = Field(2, ge=0, description="Retries on 429/5xx and connection errors.")

    # --- service -------------------------------------------------------------------------
    api_key: str | None = Field(
        None,
        description="When set, every route but /healthz needs a key (Bearer or X-API-Key); "
        "this one is a key of the tenant `default`.",
    )
    # --- tenants -------------------------------------------------------------------------
    tenant: str = Field(
        tenants.DEFAULT,
        description="The tenant the CLI, the library and the connectors act as, and the "
        "tenant of requests to a server that has no API keys.",
    )
    api_keys: Annotated[dict[str, list[str]], NoDecode] = Field(
        default_factory=dict,
        description="API keys by tenant: 'acme:KEY1,globex:KEY2,acme:KEY3' in SCANRAG_API_KEYS, "
        "or an [api_keys] table in scanrag.toml (acme = ['KEY1', 'KEY3']).",
    )
    api_keys_file: Path | None = Field(
        None, description="A file of API keys, one 'tenant:key' per line (# comments)."
    )
    tenant_max_documents: int | None = Field(
        None, ge=0, description="Most documents one tenant may hold (None: no limit)."
    )
    tenant_max_pages: int | None = Field(
        None, ge=0, description="Most pages one tenant may hold, over all its documents."
    )
    tenant_requests_per_minute: int | None = Field(
        None, ge=1, description="Most API requests one tenant may send in any 60 seconds."
    )
    tenant_limits: dict[str, TenantLimits] = Field(
        default_factory=dict,
        description="Limits of named tenants, over the tenant_max_* defaults (JSON, or "
        "[tenant_limits.acme] tables in scanrag.toml).",
    )
    max_upload_mb: int = Field(100, ge=1, description="Largest file accepted by an upload.")
    max_upload_files: int = Field(20, ge=1, description="Most files in one upload request.")
    allowed_roots: list[Path] = Field(
        default_factory=list,
        description="Folders POST /v1/ingest may read (JSON list in SCANRAG_ALLOWED_ROOTS); "
        "empty = server-side folder ingest is off.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins a browser may call the API from (JSON list); empty = none.",
    )
    access_log: str = Field(
        "stderr",
        description="Where the access log (one line per request) goes: stderr, off, or a "
        "file path. Errors go to the 'scanrag' logger, not here.",
    )
    mask_pii: bool = Field(
        False,
        description="Mask Chinese resident ID numbers, bank card numbers and phone numbers "
        "in answers, citations, search results and extracted values.",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Without an API key, host names the API answers to besides localhost and "
        'IP addresses (JSON list; ["*"] = any): a guard against DNS rebinding.',
    )
    wait_timeout: float = Field(
        60, gt=0, le=3600, description="Longest a ?wait=true request waits (then 202 + the job)."
    )
    shutdown_timeout: float = Field(
        10,
        gt=0,
        le=600,
        description="Seconds `serve` gives open requests, then the running ingest, to stop; "
        "an unfinished job resumes at the next start.",
    )
    image_max_pixels: int = Field(
        16_000_000,
        ge=1_000_000,
        description="Most pixels one API image operation (highlighted page, crop) decodes: "
        "larger pages are read at 1/2, 1/4 or 1/8 scale.",
    )

    @field_validator("api_key")
    @classmethod
    def _ascii_key(cls, value: str | None) -> str | None:
        return tenants.check_key(value) if value else value

    @field_validator("tenant")
    @classmethod
    def _tenant_name(cls, value: str) -> str:
        return tenants.check_name(value)

    @field_validator("tenant_limits")
    @classmethod
    def _limited_names(cls, value: dict[str, TenantLimits]) -> dict[str, TenantLimits]:
        for name in value:
            tenants.check_name(name)
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _keys_by_tenant(cls, value: Any) -> Any:
        """The env's `tenant:key,...`, or a table whose values are one key or a list."""
        if isinstance(value, str):
            return tenants.parse_keys(value)
        if isinstance(value, dict):
            return {
                tenants.check_name(name): [
                    tenants.check_key(key) for key in ([keys] if isinstance(keys, str) else keys)
                ]
                for name, keys in value.items()
            }
        return value

    def tenant_keys(self) -> dict[str, list[str]]:
        """Every API key by tenant: `api_key` (the default tenant's), `api_keys` and the keys
        file. Raises ConfigError for an unreadable file."""
        keys: dict[str, list[str]] = {name: list(held) for name, held in self.api_keys.items()}
        if self.api_key:
            keys.setdefault(tenants.DEFAULT, []).insert(0, self.api_key)
        if self.api_keys_file is not None:
            try:
                found = tenants.read_keys_file(self.api_keys_file)
            except ValueError as exc:
                raise ConfigError(f"{exc} (SCANRAG_API_KEYS_FILE)") from None
            for name, held in found.items():
                keys.setdefault(name, []).extend(held)
        return keys

    def key_ring(self) -> tenants.KeyRing:
        """Every API key and its tenant; ConfigError for an unreadable keys file or a key
        given to two tenants."""
        try:
            return tenants.KeyRing(self.tenant_keys())
        except ValueError as exc:
            raise ConfigError(f"{exc} (SCANRAG_API_KEY, SCANRAG_API_KEYS, the keys file)") from None

    def limits_for(self, tenant: str) -> TenantLimits:
        """A tenant's limits: its own entry in `tenant_limits` over the tenant_max_* defaults."""
        defaults = TenantLimits(
            documents=self.tenant_max_documents,
            pages=self.tenant_max_pages,
            requests_per_minute=self.tenant_requests_per_minute,
        )
        own = self.tenant_limits.get(tenant)
        return defaults.model_copy(update=own.model_dump(exclude_unset=True)) if own else defaults

    @field_validator("ocr_url", mode="before")
    @classmethod
    def _join_urls(cls, value: Any) -> Any:
        """A list of servers is kept as one comma-separated string (what the env takes)."""
        if isinstance(value, list | tuple):
            return ",".join(str(item).strip() for item in value if str(item).strip()) or None
        return value

    def merged(self, **options: Any) -> Settings:
        """These settings with `options` on top, validated again as a new Settings."""
        return type(self)(**{**self.model_dump(), **options})

    @classmethod
    def resolve(cls, base: Settings | None, **options: Any) -> Settings:
        """`base` with `options` on top; without a base, settings from the options, the
        environment and scanrag.toml (what every entry point taking both does)."""
        return base.merged(**options) if base else cls(**options)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))
