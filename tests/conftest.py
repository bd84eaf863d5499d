"""Shared set-up: the tests see scanrag's defaults, whatever the machine's environment says."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def default_settings():
    """Drop SCANRAG_* variables so a developer's own settings cannot change test results."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith("SCANRAG_"):
                patch.delenv(name)
        yield


@pytest.fixture(scope="session")
def encoder():
    """MiniLM, loaded once for the whole run (loading it is the slow part of a small ingest)."""
    from scanrag.retrieval.embedding import DenseEncoder

    return DenseEncoder()


@pytest.fixture
def one_model(monkeypatch, encoder):
    """Every Index the test opens shares the session's MiniLM instead of loading its own."""
    from scanrag.retrieval import index as index_module

    monkeypatch.setattr(index_module, "DenseEncoder", lambda *args, **kwargs: encoder)
