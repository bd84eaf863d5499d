"""The embedded parser's OCR profiles: `accurate` (the default: the models exactly as shipped)
and `fast` (an int8 copy of the text detector, made on this machine once and cached).

Building the int8 detector takes about a minute on a small CPU, so the module builds it once,
into its own cache folder, and every specification uses that folder.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

import scanrag
from scanrag import Settings, testing
from scanrag.errors import ConfigError
from scanrag.ingest.parsers import fingerprint, get_parser, int8

pytestmark = pytest.mark.slow  # quantises the OCR detector and reads pages twice


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def sheet() -> testing.Sheet:
    return testing.invoice(number="INV-4821")


@pytest.fixture(scope="module")
def scan(tmp_path_factory, sheet) -> Path:
    path = tmp_path_factory.mktemp("scans") / "invoice.jpg"
    sheet.image(noise=3, seed=5).save(path, quality=85)
    return path


@pytest.fixture(scope="module")
def fast(scan, cache) -> scanrag.Document:
    return scanrag.parse(scan, fast_settings(cache))


@pytest.fixture(scope="module")
def accurate(scan) -> scanrag.Document:
    return scanrag.parse(scan, Settings(parser="embedded"))


def fast_settings(cache: Path) -> Settings:
    return Settings(parser="embedded", ocr_profile="fast", model_cache_dir=cache)


def words(document: scanrag.Document) -> list[str]:
    text = " ".join(line.text for r in document.pages[0].regions for line in r.lines)
    return sorted(re.findall(r"\w+", text.lower()))


def test_the_fast_profile_reads_nearly_every_word_the_accurate_one_reads(fast, accurate, sheet):
    drawn = " ".join(line.text for line in sheet.lines).lower().replace(" ", "")
    fast_words, accurate_words = Counter(words(fast)), Counter(words(accurate))
    assert sum(accurate_words.values()) > 50
    assert sum((fast_words & accurate_words).values()) >= 0.95 * sum(accurate_words.values())
    assert [word for word in fast_words if word not in drawn] == []  # nothing made up


def test_fast_and_accurate_are_cached_apart(fast, accurate, cache):
    fast_parser = get_parser(fast_settings(cache))
    accurate_parser = get_parser(Settings(parser="embedded"))
    assert fingerprint(accurate_parser) != fingerprint(fast_parser)
    assert (fast.parser.fingerprint, accurate.parser.fingerprint) == (
        fingerprint(fast_parser),
        fingerprint(accurate_parser),
    )


def test_the_int8_detector_is_built_once_and_then_read_from_the_cache(fast, cache):
    built = sorted(cache.glob("*.onnx"))
    source = int8.shipped_models().det
    assert len(built) == 1
    assert built[0].stat().st_size < source.stat().st_size / 2  # int8 weights, not float

    def no_second_build():
        raise AssertionError("the cached detector was built again")

    assert int8.int8_detector(cache, source, no_second_build) == built[0]


def test_a_model_cache_that_cannot_be_created_is_a_config_error_naming_it(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=re.escape(str(blocker / "models"))) as raised:
        int8.int8_detector(blocker / "models", int8.shipped_models().det, lambda: None)
    assert "SCANRAG_MODEL_CACHE_DIR" in str(raised.value)


def test_the_cache_name_follows_the_model_bytes(tmp_path):
    one, same, other = tmp_path / "one.onnx", tmp_path / "same.onnx", tmp_path / "other.onnx"
    one.write_bytes(b"model one")
    same.write_bytes(b"model one")
    other.write_bytes(b"model two")
    assert int8.cache_key(one) == int8.cache_key(same) != int8.cache_key(other)
