"""Document metadata: facts that are not on the page (a department, a customer id, a year),
given at upload or ingest, kept on the document and on each of its chunks, returned with
every citation, and filtered on.

Metadata is a flat JSON object: keys are 1–64 letters, digits, `_` or `-` (any script);
values are strings, numbers or booleans. A filter names keys and the value each must have
(a list: any of them); all keys must match. Values compare as text — `2019` matches "2019",
`true` matches "true" — so a year sent as a form field string and one sent as a JSON number
select alike. The store matches one indexed keyword field of `key=value` terms
(`terms`), the same way in Qdrant Edge and on a Qdrant server (Edge cannot match booleans
in a payload, and nested keys would need an index each).
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from ..errors import Text, problems

MAX_KEYS = 32
MAX_BYTES = 4096  # the object as JSON
MAX_CHOICES = 100  # values of one key in a filter

MetaKey = Annotated[str, StringConstraints(pattern=r"^[\w-]{1,64}$")]
MetaValue = (
    StrictBool
    | int
    | Annotated[float, Field(allow_inf_nan=False)]
    | Annotated[Text, StringConstraints(max_length=500)]
)


def _small(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_BYTES:
        raise ValueError(f"metadata is {size} bytes as JSON, more than {MAX_BYTES}")
    return value


#: A document's metadata, validated wherever it comes in (upload, ingest, PATCH, CLI).
Metadata = Annotated[dict[MetaKey, MetaValue], Field(max_length=MAX_KEYS), AfterValidator(_small)]
#: `filters.metadata`: each key's value, or a list of values (any of them).
MetadataFilter = Annotated[
    dict[
        MetaKey,
        MetaValue | Annotated[list[MetaValue], Field(min_length=1, max_length=MAX_CHOICES)],
    ],
    Field(min_length=1, max_length=MAX_KEYS),
]
#: A PATCH of metadata (JSON merge patch): a value sets a key, null removes it.
MetadataPatch = Annotated[dict[MetaKey, MetaValue | None], Field(max_length=MAX_KEYS)]

_METADATA: TypeAdapter[dict[str, Any]] = TypeAdapter(Metadata)


def validated(value: Any) -> dict[str, Any]:
    """Metadata from outside (parsed JSON), or ValueError saying what is wrong with it."""
    if not isinstance(value, dict):
        raise ValueError("metadata must be a JSON object of string, number or boolean values")
    try:
        return _METADATA.validate_python(value)
    except ValidationError as exc:
        raise ValueError(f"bad metadata: {'; '.join(problems(exc, 'metadata', 1))}") from None


def canonical(value: Any) -> str:
    """A value as the text filters compare: true/false, integral numbers without a fraction."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def term(key: str, value: Any) -> str:
    return f"{key}={canonical(value)}"


def terms(metadata: dict[str, Any]) -> list[str]:
    """The terms a document's chunks carry for filters: one `key=value` per entry."""
    return sorted(term(key, value) for key, value in metadata.items())


def wanted(filters: dict[str, Any]) -> list[tuple[str, ...]]:
    """The terms a metadata filter asks for: per key, the terms of which one must be present."""
    return [
        tuple(term(key, v) for v in (value if isinstance(value, list) else [value]))
        for key, value in filters.items()
    ]


def merge_patch(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """`current` with a JSON merge patch applied (RFC 7396: null removes a key)."""
    merged = {**current, **{key: value for key, value in patch.items() if value is not None}}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
    return validated(merged)


def parse_pairs(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs (the CLI's `--meta`): numbers and true/false as JSON reads them,
    anything else as text (`007` stays "007")."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise ValueError(f"bad metadata {pair!r}: use key=value")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        finite = isinstance(value, float) and math.isfinite(value)
        number = isinstance(value, bool | int) or finite
        out[key.strip()] = value if number else raw  # NaN, Infinity, 1e400 stay text
    return validated(out)
