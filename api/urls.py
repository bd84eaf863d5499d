"""Every URL the API hands out, built in one place.

The routes are declared with these paths; citations get their links here, at the boundary
(retrieval's `Citation` carries ids only), for the API, the CLI's `ask --json` and the
connectors alike.
"""

from __future__ import annotations

from typing import Any

from ..retrieval import answer

API = "/v1"  # every route that reads or writes documents is below it
DOCUMENTS = f"{API}/documents"
PAGE_IMAGE = DOCUMENTS + "/{doc_id}/pages/{number}/image"
REGION_CROP = API + "/regions/{region_id}/crop"
JOB = API + "/jobs/{job_id}"


def page_image_url(doc_id: str, number: int) -> str:
    return PAGE_IMAGE.format(doc_id=doc_id, number=number)


def highlight_url(doc_id: str, number: int, region_id: str) -> str:
    return f"{page_image_url(doc_id, number)}?highlight={region_id}"


def crop_url(region_id: str) -> str:
    return REGION_CROP.format(region_id=region_id)


def job_url(job_id: str) -> str:
    return JOB.format(job_id=job_id)


def links(doc_id: str, page: int, region_id: str) -> dict[str, str]:
    """A cited region's links: its crop, its page, and its page with it outlined."""
    return {
        "crop_url": crop_url(region_id),
        "page_image_url": page_image_url(doc_id, page),
        "highlight_url": highlight_url(doc_id, page, region_id),
    }


class Citation(answer.Citation):
    """A citation as the API hands it out: with links to its region's images."""

    crop_url: str
    page_image_url: str
    highlight_url: str

    @classmethod
    def of(cls, citation: answer.Citation) -> Citation:
        return cls(**dict(citation), **links(citation.doc_id, citation.page, citation.region_id))


def linked(citation: dict[str, Any]) -> dict[str, Any]:
    """A citation already in JSON form (a streamed event's), with its links."""
    return {**citation, **links(citation["doc_id"], citation["page"], citation["region_id"])}
