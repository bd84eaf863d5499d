"""Each parser reads its own typed options, and the parse fingerprint is made from them: an
option is in it unless declared not to change the output, so none can be forgotten."""

from __future__ import annotations

import pytest
from pydantic import Field

from scanrag.config import Settings
from scanrag.ingest.parsers import ParserOptions, get_parser
from scanrag.ingest.parsers.auto import AutoOptions
from scanrag.ingest.parsers.embedded import EmbeddedOptions
from scanrag.ingest.parsers.glm_maas import MaasOptions
from scanrag.ingest.parsers.glm_ocr import GlmOcrOptions
from scanrag.ingest.parsers.pdf_text import PdfTextOptions
from scanrag.ingest.parsers.ppdoclayout import PPDocLayoutOptions
from scanrag.ingest.parsers.tesseract import TesseractOptions
from scanrag.ingest.parsers.transformers_glm import TransformersOptions
from scanrag.ingest.parsers.vlm import VlmOptions

EVERY = [
    AutoOptions,
    EmbeddedOptions,
    PdfTextOptions,
    GlmOcrOptions,
    MaasOptions,
    VlmOptions,
    TransformersOptions,
    TesseractOptions,
    PPDocLayoutOptions,
]


@pytest.mark.parametrize("options", EVERY, ids=lambda options: options.__name__)
def test_options_are_settings_read_from_the_settings(options: type[ParserOptions]):
    settings = Settings(ocr_url="http://gpu:8080/v1", tesseract_lang="eng", ocr_threads=3)
    read = options.of(settings)
    assert set(options.model_fields) <= set(Settings.model_fields)
    assert {name: getattr(settings, name) for name in options.model_fields} == dict(read)


def test_an_option_a_parser_adds_is_in_its_fingerprint_unless_declared_not_to_change_output():
    class Grown(EmbeddedOptions):
        new_option: int
        new_speed: int = Field(exclude=True)

    base = dict(EmbeddedOptions.of(Settings()))
    one = Grown(**base, new_option=1, new_speed=1).fingerprint()
    assert one["new_option"] == 1 and "new_speed" not in one
    assert Grown(**base, new_option=2, new_speed=1).fingerprint() != one
    assert Grown(**base, new_option=1, new_speed=9).fingerprint() == one


def fingerprint(**values: object) -> dict:
    return get_parser(Settings(**values)).config()


def test_options_that_change_what_is_read_change_the_fingerprint_and_the_others_do_not():
    assert fingerprint(parser="embedded", layout_min_score=0.4) != fingerprint(parser="embedded")
    assert fingerprint(parser="embedded", ocr_threads=1) == fingerprint(parser="embedded")
    glm = {"parser": "glm-ocr", "ocr_url": "http://a:1/v1"}
    assert fingerprint(**glm, ocr_model="other") != fingerprint(**glm)
    moved = {"ocr_url": "http://b:2/v1", "ocr_timeout": 5, "ocr_workers": 2, "ocr_retries": 0}
    assert fingerprint(**{**glm, **moved}) == fingerprint(**glm)
    vlm = {"parser": "vlm", "vlm_url": "http://a:1/v1"}
    assert fingerprint(**vlm, vlm_extra={"thinking": "off"}) != fingerprint(**vlm)


def test_the_defaults_keep_the_fingerprints_of_earlier_caches():
    """The options give the same fingerprint as the hand-written lists they replace: caches
    made before parse again only when an option really differs."""
    assert fingerprint() == {
        "min_text_layer_chars": 20,
        "text": {},
        "embedded": {"use_cls": False, "layout_min_score": 0.5},
    }
    assert TesseractOptions(tesseract_lang="eng").fingerprint() == {"lang": "eng"}
    assert fingerprint(parser="glm-ocr", ocr_api="maas", ocr_api_key="k") == {
        "api": "maas",
        "model": "glm-ocr",
    }
    glm = fingerprint(parser="glm-ocr", ocr_url="http://a:1/v1")
    assert (glm["model"], glm["max_tokens"], glm["layout"]["min_score"]) == ("glm-ocr", 8192, 0.5)
    assert set(glm) == {"model", "max_tokens", "layout"}
