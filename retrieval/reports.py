"""What the index reports: an ingest's outcome and progress, and the documents it holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from ..errors import printable
from ..ingest.loaders import show
from .manifest import FileRecord


class FileError(BaseModel):
    """One file that failed: its path and a one-line message (what is wrong, what to do)."""

    path: str
    error: str

    @field_validator("path", "error")
    @classmethod
    def _printable(cls, value: str) -> str:
        return printable(value)  # a non-UTF-8 name must not break JSON output


class IngestReport(BaseModel):
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    failed: int = 0
    skipped: int = Field(0, description="Files of other types inside the folders.")
    pages: int = Field(0, description="Pages parsed in this run.")
    parse_seconds: float = Field(0.0, description="Time spent parsing (OCR) in this run.")
    seconds: float = 0.0
    errors: list[FileError] = Field(default_factory=list)
    warnings: list[FileError] = Field(
        default_factory=list, description="Files indexed without some pages, and why."
    )
    documents: list[dict[str, Any]] = Field(default_factory=list)


class DocumentInfo(BaseModel):
    doc_id: str
    source: str
    paths: list[str]
    pages: int | None
    status: str
    error: str | None = None
    updated_at: str
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Given at upload or ingest; changed by PATCH."
    )

    @classmethod
    def of_rows(cls, doc_id: str, rows: list[FileRecord]) -> DocumentInfo:
        """A document held by one or more identical files (the manifest rows sharing its id)."""
        return cls(
            doc_id=doc_id,
            source=show(rows[0].path),
            paths=[show(row.path) for row in rows],
            pages=rows[0].pages,
            status="done" if all(row.status == "done" for row in rows) else rows[0].status,
            error=next((row.error for row in rows if row.error), None),
            updated_at=max(row.updated_at for row in rows),
            metadata=rows[0].metadata,
        )


@dataclass
class IngestEvent:
    """Progress: `file` when a file starts, `page` after each page, `done` when it ends."""

    kind: str
    path: Path
    file_index: int
    files_total: int
    pages_done: int = 0
    pages_total: int = 0
    status: str = ""


OnProgress = Callable[[IngestEvent], None]
