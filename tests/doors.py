"""Set-up shared by the tests of scanrag's doors for other tools (MCP, LangChain, LlamaIndex,
the OpenAI-compatible endpoint): a scan rendered here, indexed once per test module (OCR is the
slow part), copies of that data dir for every server that opens it (the embedded Qdrant engine
lets one process at a time hold a data dir), and a heartbeat that shows an event loop kept
running."""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from seams import open_index

from scanrag.testing import Sheet

TOTAL_QUESTION = "What is the total due on invoice INV-1001?"
TOTAL = "$2,448.50"
KEY = "door-key-51c2"


def index_scans(sheets: dict[str, Sheet], folder: Path, data_dir: Path) -> None:
    """Save each sheet as a PNG scan in `folder` and index them all into `data_dir`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, sheet in sheets.items():
        sheet.image().save(folder / name)
    with open_index(data_dir=data_dir) as index:
        report = index.ingest([folder])
    assert (report.added, report.failed) == (len(sheets), 0), report


def copy_of(data_dir: Path, to: Path) -> Path:
    """A copy of an indexed data dir, for one more process or server to open."""
    shutil.copytree(data_dir, to)
    return to


def console_script() -> str:
    """The installed `scanrag` command of this environment."""
    return str(Path(sys.executable).parent / "scanrag")


async def with_heartbeat(call: Callable[[], Awaitable[Any]]) -> tuple[Any, list[float]]:
    """Await `call()` while another task of the same loop notes the time every 10 ms."""
    beats: list[float] = []

    async def heartbeat() -> None:
        while True:
            beats.append(time.perf_counter())
            await asyncio.sleep(0.01)

    task = asyncio.create_task(heartbeat())
    await asyncio.sleep(0)  # let it beat once
    try:
        return await call(), beats
    finally:
        task.cancel()
