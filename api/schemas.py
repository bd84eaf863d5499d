"""Request and response models of the HTTP API (the OpenAPI schema is generated from them).

Boxes: `bbox` is [x0, y0, x1, y1] in pixels of the stored page image, origin top-left;
`bbox_norm` is the same box as integers 0–1000 (x by page width, y by page height).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from ..errors import Text
from ..retrieval.answer import Answer
from ..retrieval.reports import DocumentInfo, FileError, IngestReport
from ..retrieval.results import SearchHit
from ..retrieval.store import SearchFilters
from .urls import Citation

#: The longest question or query any door takes (HTTP, chat, MCP).
QUESTION_LIMIT = 2000
Question = Annotated[Text, Field(min_length=1, max_length=QUESTION_LIMIT)]


class SearchRequest(BaseModel):
    query: Question
    top_k: int = Field(5, ge=1, le=50)
    filters: SearchFilters | None = None
    mode: Literal["hybrid", "dense", "sparse"] | None = None


class SearchResponse(BaseModel):
    query: str
    hits: list[SearchHit]


class QueryRequest(BaseModel):
    question: Question
    top_k: int = Field(5, ge=1, le=50)
    filters: SearchFilters | None = None
    stream: bool = Field(
        False, description="Server-sent events: `citations`, then `token`s, then `done`."
    )


class QueryResponse(BaseModel):
    answer: str
    citations: list[Citation]

    @classmethod
    def of(cls, answer: Answer) -> QueryResponse:
        """What POST /v1/query (and `scanrag ask --json`) answers: the citations linked."""
        return cls(answer=answer.answer, citations=[Citation.of(c) for c in answer.citations])


class ExtractRequest(BaseModel):
    doc_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    fields: list[Annotated[Text, Field(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=50, description='e.g. ["total", "date"]'
    )
    filters: SearchFilters | None = Field(
        None,
        description="Narrow the passages read (page, label, metadata); the document's own "
        "`doc_id` always applies.",
    )


class ExtractedField(BaseModel):
    name: str
    value: str | None = Field(description="None when the document does not say.")
    citations: list[Citation]


class ExtractResponse(BaseModel):
    doc_id: str
    fields: list[ExtractedField]


class PageInfo(BaseModel):
    number: int
    width: int
    height: int
    regions: int
    error: str | None = None
    image_url: str


class DocumentDetail(DocumentInfo):
    mime: str | None = None
    parser: str | None = None
    warnings: list[str] = Field(default_factory=list)
    page_list: list[PageInfo] = Field(default_factory=list)


class JobStatus(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    files_total: int
    files_done: int = 0
    pages_done: int = Field(0, description="Pages parsed so far in this job.")
    current_file: str | None = None
    current_pages_done: int = 0
    current_pages_total: int = 0
    errors: list[FileError] = Field(default_factory=list)
    report: IngestReport | None = None
    created_at: str
    finished_at: str | None = None
    resumed: int = Field(0, description="Times the job was resumed after a server restart.")


class JobAccepted(BaseModel):
    """What starting an ingest job answers: the job to poll (or, with ?wait=true, its end)."""

    job_id: str
    status_url: str
    job: JobStatus | None = Field(
        None,
        description="With ?wait=true: the job as it ended (200), or as it was when the wait "
        "ran out (202, SCANRAG_WAIT_TIMEOUT).",
    )


class UploadResponse(JobAccepted):
    files: list[str]
    rejected: list[FileError] = Field(default_factory=list)
