"""Settings: options on top of given settings, validated like any others."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from scanrag.config import Settings


def test_merged_settings_keep_every_other_value_and_leave_the_original_alone(tmp_path):
    base = Settings(data_dir=tmp_path, dpi=300, ocr_api_key=SecretStr("k"), vlm_extra={"a": 1})
    merged = base.merged(parser="pdf-text")
    assert (merged.parser, merged.dpi, merged.data_dir) == ("pdf-text", 300, tmp_path)
    assert merged.ocr_api_key is not None and merged.ocr_api_key.get_secret_value() == "k"
    assert merged.vlm_extra == {"a": 1}
    assert base.parser == "auto"


def test_merged_options_are_validated():
    with pytest.raises(ValidationError, match="dpi"):
        Settings().merged(dpi=5)
    with pytest.raises(ValidationError, match="no_such_setting"):
        Settings().merged(no_such_setting=1)


def test_a_settings_error_never_echoes_the_value_given(monkeypatch):
    """A bad keys variable is named, but its keys stay out of the message (and the logs)."""
    monkeypatch.setenv("SCANRAG_API_KEYS", "acme:SUPERSECRET1,Bad Name:SECRET2")
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert "SCANRAG_API_KEYS" in str(caught.value)
    assert "SUPERSECRET1" not in str(caught.value)
