"""Masking of personal numbers in what the service returns (setting `mask_pii`, off by default).

What is masked, checked in this order (a span taken by one rule is not looked at again):

- **Chinese resident ID numbers**: 17 digits and a check character (0–9 or X) that passes
  the GB 11643 checksum (ISO 7064 MOD 11-2) → the first 6 and last 4 kept:
  `110101********1234`.
- **Bank card numbers**: 13–19 digits, alone or grouped by single spaces or hyphens, that
  pass the Luhn check → only the last 4 digits kept, separators kept: `**** **** **** 1234`.
  A number that fails Luhn (an order number) is left alone.
- **Phone numbers**: Chinese mobiles `1[3-9]` + 9 digits, optionally after `+86`/`86` and
  grouped 3-4-4 → the first 3 and last 4 kept: `138****1234`; Chinese landlines
  (`010-12345678`, `(021) 6123 4567`) and international numbers (`+44 20 7946 0958`) → area or
  country code and last 4 digits kept.

Every rule needs the number not to run on into more digits, and every mask keeps the length
of what it replaces, so the character spans of lines inside a search hit stay valid.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
_MOBILE = re.compile(r"(?<![\d+])(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(?:\(0\d{2,3}\)\s?|0\d{2,3}-)\d{3,4}[ -]?\d{4}(?!\d)")
_INTERNATIONAL = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ -]?\(?\d+\)?){2,5}(?![\d])")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def valid_resident_id(number: str) -> bool:
    """GB 11643-1999: the 18th character is the MOD 11-2 checksum of the first 17 digits."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(digit) * weight for digit, weight in zip(number, _ID_WEIGHTS, strict=False))
    return _ID_CHECK[total % 11] == number[17].upper()


def luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _star_digits(text: str, keep_head: int, keep_tail: int) -> str:
    """Replace digits (and X) by '*', keeping the first and last few; separators stay."""
    positions = [i for i, char in enumerate(text) if char.isdigit() or char in "Xx"]
    hidden = set(positions[keep_head : len(positions) - keep_tail])
    return "".join("*" if i in hidden else char for i, char in enumerate(text))


def mask_pii(text: str) -> str:
    """`text` with resident IDs, bank cards and phone numbers masked (same length)."""
    if not text or not any(char.isdigit() for char in text):
        return text
    out = list(text)
    taken = [False] * len(text)

    def apply(pattern: re.Pattern[str], accept, head, tail: int) -> None:
        for match in pattern.finditer(text):
            start, end = match.span()
            found = match.group()
            if any(taken[start:end]) or not accept(found):
                continue
            keep = head(found) if callable(head) else head
            out[start:end] = _star_digits(found, keep, tail)
            taken[start:end] = [True] * (end - start)

    apply(_ID, valid_resident_id, 6, 4)
    apply(_CARD, lambda s: _grouped(s) and luhn(re.sub(r"\D", "", s)), 0, 4)
    apply(_MOBILE, lambda s: True, _mobile_head, 4)
    apply(_LANDLINE, lambda s: True, _area_head, 4)
    apply(_INTERNATIONAL, lambda s: 8 <= sum(c.isdigit() for c in s) <= 15, _country_head, 4)
    return "".join(out)


def _mobile_head(number: str) -> int:
    """Digits kept at the front of a mobile number: the 3 first, after +86 if given."""
    return 5 if sum(c.isdigit() for c in number) == 13 else 3


def _area_head(number: str) -> int:
    """Digits kept at the front of a landline: its area code (010, 0755...)."""
    return _head(r"\(?(0\d{2,3})", number)


def _country_head(number: str) -> int:
    """Digits kept at the front of an international number: its country code."""
    return _head(r"\+(\d{1,3})", number)


def _head(pattern: str, number: str) -> int:
    """The length of the pattern's group at the front of a number that matched the landline
    or international pattern (so it is there; 0 keeps nothing if it were not)."""
    match = re.match(pattern, number)
    return len(match.group(1)) if match else 0


def _grouped(number: str) -> bool:
    """A card is written as one run of digits or in groups of 4 (the last group shorter)."""
    parts = re.split(r"[ -]", number)
    return len(parts) == 1 or (all(len(p) == 4 for p in parts[:-1]) and 1 <= len(parts[-1]) <= 4)


def mask_hit(hit: Any) -> Any:
    """A search hit with its text and line texts masked (spans stay valid)."""
    regions = [
        region.model_copy(
            update={
                "lines": [ln.model_copy(update={"text": mask_pii(ln.text)}) for ln in region.lines]
            }
        )
        for region in hit.regions
    ]
    return hit.model_copy(
        update={"text": mask_pii(hit.text), "heading": mask_pii(hit.heading), "regions": regions}
    )


def mask_citation(citation: Any) -> Any:
    lines = [line.model_copy(update={"text": mask_pii(line.text)}) for line in citation.lines]
    return citation.model_copy(update={"text": mask_pii(citation.text), "lines": lines})


def mask_answer(answer: Any) -> Any:
    return answer.model_copy(
        update={
            "answer": mask_pii(answer.answer),
            "citations": [mask_citation(c) for c in answer.citations],
        }
    )


def mask_document(doc: Any) -> Any:
    """A parsed Document with every region's text, Markdown and lines masked."""
    pages = []
    for page in doc.pages:
        regions = [
            region.model_copy(
                update={
                    "text": mask_pii(region.text),
                    "markdown": mask_pii(region.markdown),
                    "lines": [
                        line.model_copy(update={"text": mask_pii(line.text)})
                        for line in region.lines
                    ],
                }
            )
            for region in page.regions
        ]
        pages.append(page.model_copy(update={"regions": regions}))
    return doc.model_copy(update={"pages": pages})


class MaskingAnswerer:
    """Wraps an answerer: the answer, its citations and every streamed event come out masked.

    Streamed tokens are masked one by one, so a number an LLM splits over several tokens
    could slip through in the tokens; the final `done` event is masked as a whole.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def answer(self, question: str, hits: list[Any]) -> Any:
        return mask_answer(self.inner.answer(question, hits))

    def stream(self, question: str, hits: list[Any]) -> Iterator[dict[str, Any]]:
        for event in self.inner.stream(question, hits):
            ((name, data),) = event.items()
            if name == "token":
                yield {"token": mask_pii(data)}
            elif name == "citations":
                yield {"citations": [_mask_dict(c) for c in data]}
            elif name == "done":
                yield {
                    "done": {
                        **_mask_dict(data),
                        "citations": [_mask_dict(c) for c in data.get("citations", [])],
                    }
                }
            else:
                yield event


def _mask_dict(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    for key in ("answer", "text"):
        if isinstance(out.get(key), str):
            out[key] = mask_pii(out[key])
    if isinstance(out.get("lines"), list):
        out["lines"] = [{**line, "text": mask_pii(line["text"])} for line in out["lines"]]
    return out
