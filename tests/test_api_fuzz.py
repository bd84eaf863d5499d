"""Fuzzing: schemathesis drives every operation of the app's own OpenAPI schema in-process
(ASGI, bounded examples, valid and invalid data) and no request may end in a server error,
also when JSON bodies carry lone surrogates (`"\\ud800"`) and non-finite numbers (`NaN`,
`Infinity`, `1e400`), which schemathesis itself never generates (its strings exclude category
Cs, its floats are finite) and which a hook adds; hypothesis feeds the API's request models
arbitrary JSON, which must be accepted or refused as a validation error."""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from pydantic import ValidationError
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from seams import app_for, open_index

from scanrag.api.routes.ingest import IngestRequest
from scanrag.api.schemas import ExtractRequest, QueryRequest, SearchRequest
from scanrag.config import Settings
from scanrag.retrieval.store import SearchFilters
from scanrag.testing import code_pdf

pytestmark = pytest.mark.slow  # fuzzes every route from the OpenAPI schema

sys.path.insert(0, str(Path(__file__).resolve().parent))

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))  # per operation; CI: well under 2 min


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory):
    """The app over an index holding one document, so reads find something to return."""
    base = tmp_path_factory.mktemp("fuzz")
    settings_ = Settings(
        data_dir=base / "data",
        parser="pdf-text",
        allowed_roots=[base / "docs"],
        access_log="off",
        max_upload_mb=1,
    )
    (base / "docs").mkdir()
    code_pdf(base / "docs" / "memo.pdf", "fuzzmemo", pages=2)
    with open_index(settings_) as index:
        assert index.ingest([base / "docs"]).added == 1
    return app_for(settings_)


@pytest.fixture(scope="module")
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


#: What JSON can spell but valid data never holds.
SURROGATES = ["\ud800", "x\udfffy", "\udc80"]
NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]


class Raw(str):
    """A JSON token written as it is (json.dumps refuses NaN-like numbers in strict mode and
    cannot write 1e400 at all)."""


def roughen(value: object, rnd: random.Random) -> object:
    """`value` with, at random, lone surrogates appended to its strings and non-finite
    numbers put in place of its numbers."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return value + rnd.choice(SURROGATES) if rnd.random() < 0.5 else value
    if isinstance(value, int | float):
        return Raw(rnd.choice(NON_FINITE)) if rnd.random() < 0.5 else value
    if isinstance(value, dict):
        return {key: roughen(item, rnd) for key, item in value.items()}
    if isinstance(value, list):
        return [roughen(item, rnd) for item in value]
    return value


def raw_json(value: object) -> bytes:
    """JSON text as a client may send it: surrogates as \\uXXXX escapes, Raw tokens as is."""
    tokens: list[str] = []

    def mark(item: object) -> object:
        if isinstance(item, Raw):
            tokens.append(str(item))
            return f"\0raw{len(tokens) - 1}\0"
        if isinstance(item, dict):
            return {key: mark(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [mark(inner) for inner in item]
        return item

    text = json.dumps(mark(value))  # ensure_ascii: lone surrogates become \\udXXX escapes
    for number, token in enumerate(tokens):
        text = text.replace(f'"\\u0000raw{number}\\u0000"', token)
    return text.encode("ascii")


@pytest.fixture(scope="module")
def hostile_schema(fuzz_app):
    """The same schema, with half the generated JSON bodies roughened (a schema hook)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)

    def flatmap_case(context, case):
        def rough(rnd: random.Random):
            json_body = case.media_type == "application/json" and isinstance(case.body, dict | list)
            if json_body and rnd.random() < 0.5:
                case.body = raw_json(roughen(case.body, rnd))
            return case

        return st.randoms(use_true_random=False).map(rough)

    schema.hook(flatmap_case)
    return schema


def operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(schema, calls: list[bytes | None]) -> dict[str, str]:
    """Every operation, EXAMPLES generated requests per generation mode (schemathesis' own
    data, valid and invalid); the failures per operation, so one does not hide the others."""
    failures: dict[str, str] = {}
    for operation in operations(schema):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,  # the same cases on every run: a failure reproduces
                database=None,
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case) -> None:
                calls.append(case.body if isinstance(case.body, bytes) else None)
                response = case.call()
                case.validate_response(response, checks=[not_a_server_error])
                if response.status_code >= 400:  # a JSON error with a message, no traceback
                    detail = response.json()["detail"]
                    assert isinstance(detail, str | list) and detail, response.text
                    assert "Traceback" not in response.text

            try:
                check()
            except Unsatisfiable:  # no parameter to make invalid (GET /healthz, negative)
                assert mode is GenerationMode.NEGATIVE, operation.label
            except Exception as exc:
                label = f"{operation.label} ({mode.value})"
                failures[label] = f"{type(exc).__name__}: {exc}"[:2000]
    return failures


def test_no_request_from_the_schema_ends_in_a_server_error(api_schema):
    calls: list[bytes | None] = []
    failures = fuzz(api_schema, calls)
    assert len(operations(api_schema)) >= 15
    assert len(calls) >= 10 * len(operations(api_schema))
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())


def test_lone_surrogates_and_non_finite_numbers_never_end_in_a_server_error(hostile_schema):
    calls: list[bytes | None] = []
    failures = fuzz(hostile_schema, calls)
    sent = [body for body in calls if body is not None]
    assert sum(b"\\ud" in body for body in sent) >= 20  # surrogates were sent ...
    assert sum(any(t.encode() in body for t in NON_FINITE) for body in sent) >= 20  # ... and NaNs
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())


# --- the request models --------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
fields = {
    SearchRequest: ["query", "top_k", "filters", "mode"],
    QueryRequest: ["question", "top_k", "filters", "stream"],
    ExtractRequest: ["doc_id", "fields"],
    IngestRequest: ["path"],
    SearchFilters: ["doc_id", "source", "page", "page_from", "page_to", "label"],
}


@pytest.mark.parametrize("model", list(fields), ids=lambda m: m.__name__)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_request_models_accept_or_refuse_any_json_without_crashing(model, data):
    keys = st.sampled_from(fields[model]) | st.text(max_size=6)
    body = data.draw(st.dictionaries(keys, json_values, max_size=5))
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        json.dumps(exc.errors(include_url=False, include_context=False), default=str)
        return
    again = model.model_validate_json(parsed.model_dump_json())  # round-trips
    assert again == parsed
