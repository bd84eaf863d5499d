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
