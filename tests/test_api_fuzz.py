"""Fuzzing: schemathesis drives every operation of the app's own OpenAPI schema in-process
(ASGI, bounded examples) and no request may end in a server error; hypothesis feeds the API's
request models arbitrary JSON, which must be accepted or refused as a validation error."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from schemathesis.checks import not_a_server_error

from scanrag.api.app import create_app
from scanrag.api.routes.ingest import IngestRequest
from scanrag.api.schemas import ExtractRequest, QueryRequest, SearchRequest
from scanrag.config import Settings
from scanrag.retrieval import index as index_module
from scanrag.retrieval.index import Index
from scanrag.retrieval.store import SearchFilters
from scanrag.testing import code_pdf

sys.path.insert(0, str(Path(__file__).resolve().parent))

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))  # per operation; CI: well under 2 min


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, encoder):
    """The app over an index holding one document, so reads find something to return."""
    base = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(index_module, "DenseEncoder", lambda *args, **kwargs: encoder)
        settings_ = Settings(
            data_dir=base / "data",
            parser="pdf-text",
            allowed_roots=[base / "docs"],
            access_log="off",
            max_upload_mb=1,
        )
        (base / "docs").mkdir()
        code_pdf(base / "docs" / "memo.pdf", "fuzzmemo", pages=2)
        with Index(settings_) as index:
            assert index.ingest([base / "docs"]).added == 1
        app = create_app(settings_)
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def operations(api_schema) -> list:
    return [result.ok() for result in api_schema.get_all_operations()]


def test_no_request_from_the_schema_ends_in_a_server_error(api_schema):
    """Every operation, EXAMPLES generated requests each (schemathesis' own data generation,
    valid and invalid); collected per operation so one failure does not hide the others."""
    failures: dict[str, str] = {}
    calls = 0
    for operation in operations(api_schema):

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # the same cases on every run: a failure reproduces
            database=None,
        )
        @given(case=operation.as_strategy())
        def check(case) -> None:
            nonlocal calls
            calls += 1
            response = case.call()
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code >= 400:  # a JSON error with a message, never a traceback
                detail = response.json()["detail"]
                assert isinstance(detail, str | list) and detail, response.text
                assert "Traceback" not in response.text

        try:
            check()
        except Exception as exc:
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:2000]
    assert len(operations(api_schema)) >= 15
    assert calls >= 10 * len(operations(api_schema))
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
