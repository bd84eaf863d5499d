"""Every Index a test opens shares one MiniLM, passed through the seams (`Index(encoder=)`,
`create_app(open_index=)`) rather than patched in: loading the model is the slow part of a
small ingest. `DenseEncoder` loads on first use, so importing this costs nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI

from scanrag.api.app import create_app
from scanrag.api.deps import AppState, get_index, get_state
from scanrag.config import Settings
from scanrag.retrieval.embedding import DenseEncoder
from scanrag.retrieval.index import Index

ENCODER = DenseEncoder()


def open_index(settings: Settings | None = None, **options: Any) -> Index:
    return Index(settings, encoder=ENCODER, **options)


def app_for(settings: Settings) -> FastAPI:
    """The app over an index that shares the tests' MiniLM."""
    return create_app(settings, open_index=open_index)


class IndexWith:
    """An index with some of its methods replaced (`search=...`), the rest its own."""

    def __init__(self, index: Index, **methods: Callable[..., Any]) -> None:
        self._index = index
        self._methods = methods

    def __getattr__(self, name: str) -> Any:
        return self._methods[name] if name in self._methods else getattr(self._index, name)


def override_index(app: FastAPI, **methods: Callable[..., Any]) -> None:
    """From now on, requests to `app` see its index with `methods` replaced (FastAPI's
    `dependency_overrides`; the ingest jobs keep the index itself)."""

    def index_with(state: AppState = Depends(get_state)) -> IndexWith:
        return IndexWith(state.index, **methods)

    app.dependency_overrides[get_index] = index_with
