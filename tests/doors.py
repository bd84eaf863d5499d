"""Set-up shared by the tests of scanrag's doors for other tools (MCP, LangChain, the
OpenAI-compatible endpoint): a scan rendered here, indexed once per test module (OCR is the
slow part), and copies of that data dir for every server that opens it (the embedded Qdrant
engine lets one process at a time hold a data dir)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from scanrag.retrieval import index as index_module
from scanrag.testing import Sheet

TOTAL_QUESTION = "What is the total due on invoice INV-1001?"
TOTAL = "$2,448.50"
KEY = "door-key-51c2"


@contextmanager
def shared_encoder(encoder: Any) -> Iterator[None]:
    """Every Index opened inside uses the session's MiniLM instead of loading its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(index_module, "DenseEncoder", lambda *args, **kwargs: encoder)
        yield


def index_scans(sheets: dict[str, Sheet], folder: Path, data_dir: Path, encoder: Any) -> None:
    """Save each sheet as a PNG scan in `folder` and index them all into `data_dir`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, sheet in sheets.items():
        sheet.image().save(folder / name)
    with shared_encoder(encoder), index_module.Index(data_dir=data_dir) as index:
        report = index.ingest([folder])
    assert (report.added, report.failed) == (len(sheets), 0), report


def copy_of(data_dir: Path, to: Path) -> Path:
    """A copy of an indexed data dir, for one more process or server to open."""
    shutil.copytree(data_dir, to)
    return to


def console_script() -> str:
    """The installed `scanrag` command of this environment."""
    return str(Path(sys.executable).parent / "scanrag")
