"""Hugging Face weights for in-process models (GLM-OCR, PP-DocLayoutV3): where they are, which
device they run on, and one line when they are missing."""

from __future__ import annotations

from pathlib import Path

from ...errors import ConfigError
from ...modelserver import one_line


def torch_device(configured: str | None) -> str:
    """`transformers_device`, else cuda when there is a GPU."""
    import torch

    return configured or ("cuda" if torch.cuda.is_available() else "cpu")


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
