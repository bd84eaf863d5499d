"""Shared set-up: the tests see scanrag's defaults, whatever the machine's environment says."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers: fakes, seams, corpus


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
    from seams import ENCODER

    return ENCODER
