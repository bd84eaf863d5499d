"""A search hit as one citation, for retrievers that hand frameworks one record per hit."""

from __future__ import annotations

from ..retrieval.answer import Citation, ExtractiveAnswerer, cite
from ..retrieval.results import SearchHit


def hit_citation(question: str, hit: SearchHit, n: int) -> Citation:
    """The /v1/query citation of the region of `hit` that answers `question` best, with the
    lines that answer; a hit with no answering row cites its first region that is not a
    title (whole, no lines)."""
    best = ExtractiveAnswerer().best_units(question, [hit])
    if not best:
        region = next((r for r in hit.regions if r.label != "title"), hit.regions[0])
        return cite(n, hit, region)
    unit = best[0][1]
    # the region with most of the answer's lines; on a tie the later one, which holds the
    # value of a "key: value" row read left to right
    region = max(reversed(unit.regions), key=lambda r: sum(line in r.lines for line in unit.lines))
    return cite(n, hit, region, [line for line in unit.lines if line in region.lines])
