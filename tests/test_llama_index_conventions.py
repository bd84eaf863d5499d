"""The LlamaIndex connector by LlamaIndex's own conventions: SimpleDirectoryReader hands
ScanRAGReader an fsspec file system and the file's metadata (`fs=`, `extra_info=`) and the reader
reads the scan through it; Documents carry `file_path` and `page_label`, hidden from embeddings
and prompts like the rest of the provenance; the async retriever and embedding leave the event
loop running; the reader serialises (to_json, pickle, an IngestionPipeline's ReaderConfig).

Small scans are rendered here and written into fsspec's in-memory file system, so nothing on the
local disk can stand in for reading through `fs`."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import pickle
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_index.core")

import fsspec
from doors import with_heartbeat
from llama_index.core import SimpleDirectoryReader
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.readers.base import ReaderConfig
from llama_index.core.schema import MetadataMode
from seams import ENCODER, IndexWith, open_index

from scanrag.config import Settings
from scanrag.connectors.llama_index import (
    DOCUMENT_KEY,
    ScanRAGEmbedding,
    ScanRAGNodeParser,
    ScanRAGReader,
    ScanRAGRetriever,
    node_regions,
)
from scanrag.errors import ScanragError
from scanrag.ingest import model as scan
from scanrag.ingest.model import doc_id_for
from scanrag.ingest.parsers import get_parser
from scanrag.testing import code_pdf, scan_image

CODES = {"a.png": "QX-4471", "b.png": "WB-2093"}
#: The keys scanrag adds that LlamaIndex knows by name; provenance, like the rest.
CONVENTIONAL = ("file_path", "page_label")


@pytest.fixture(scope="module")
def scans() -> dict[str, bytes]:
    """Each scan as PNG bytes (OCR reads one in well under a second)."""
    out = {}
    for name, code in CODES.items():
        buffer = io.BytesIO()
        scan_image(code).save(buffer, format="PNG")
        out[name] = buffer.getvalue()
    return out


@pytest.fixture
def memory() -> Iterator[tuple[fsspec.AbstractFileSystem, str]]:
    """fsspec's in-memory file system and a folder of this test's own in it (its store is
    one per process, shared by every instance)."""
    fs = fsspec.filesystem("memory")
    root = f"/scans-{uuid.uuid4().hex[:8]}"
    fs.mkdir(root)
    yield fs, root
    fs.rm(root, recursive=True)


def png_extractor(**options: Any) -> dict[str, ScanRAGReader]:
    return {".png": ScanRAGReader(raise_on_error=True, **options)}


def test_simple_directory_reader_reads_scans_through_an_fsspec_file_system(memory, scans, tmp_path):
    fs, root = memory
    for name, data in scans.items():
        fs.pipe(f"{root}/{name}", data)
    fs.pipe(f"{root}/notes.txt", b"plain notes, read by LlamaIndex's own text reader")

    documents = SimpleDirectoryReader(
        root,
        file_extractor=png_extractor(data_dir=tmp_path),
        fs=fs,
        raise_on_error=True,  # a reader error raises instead of being printed and skipped
    ).load_data()

    pages = {doc.metadata["file_name"]: doc for doc in documents if "doc_id" in doc.metadata}
    assert sorted(pages) == ["a.png", "b.png"]
    assert [doc.text for doc in documents if "doc_id" not in doc.metadata] == [
        "plain notes, read by LlamaIndex's own text reader"
    ]
    for name, page in pages.items():
        meta = page.metadata
        assert CODES[name] in page.text  # OCR'd now (a fresh data dir), from the bytes read
        assert meta["source"] == meta["file_path"] == f"{root}/{name}"
        assert (meta["page"], meta["page_label"]) == (1, "1")
        assert meta["doc_id"] == doc_id_for(hashlib.sha256(scans[name]).hexdigest(), "default")
        assert page.id_ == f"{meta['doc_id']}:p1"
        parsed = scan.Document.model_validate_json(Path(meta[DOCUMENT_KEY]).read_bytes())
        assert parsed.source == f"{root}/{name}"
        assert any(CODES[name] in page.text[r["start"] : r["end"]] for r in meta["regions"])
    # the parse the reader cached is what the node parser chunks, boxes and all
    nodes = ScanRAGNodeParser().get_nodes_from_documents([pages["a.png"]])
    assert [CODES["a.png"] in node.text for node in nodes] == [True]
    assert node_regions(nodes[0])[0]["bbox"]


def test_extra_info_joins_the_metadata_and_scanrags_keys_win(memory, scans, tmp_path):
    fs, root = memory
    fs.pipe(f"{root}/a.png", scans["a.png"])

    [page] = SimpleDirectoryReader(
        root,
        file_extractor=png_extractor(data_dir=tmp_path),
        fs=fs,
        raise_on_error=True,
        file_metadata=lambda path: {"department": "finance", "file_path": "elsewhere"},
    ).load_data()
    assert page.metadata["department"] == "finance"  # passed in as extra_info
    assert page.metadata["file_path"] == f"{root}/a.png"

    reader = ScanRAGReader(data_dir=tmp_path)  # the parse is cached now: no second OCR
    [direct] = reader.load_data(f"{root}/a.png", extra_info={"tenant": "acme"}, fs=fs)
    assert direct.metadata["tenant"] == "acme"
    assert direct.text == page.text
    # a key the caller gives is the caller's: seen by the embedding and the LLM
    assert "tenant: acme" in direct.get_content(MetadataMode.EMBED)
    assert "tenant: acme" in direct.get_content(MetadataMode.LLM)


def test_file_path_and_page_label_are_provenance_hidden_from_embeddings_and_prompts(
    memory, scans, tmp_path
):
    fs, root = memory
    fs.pipe(f"{root}/a.png", scans["a.png"])
    documents = SimpleDirectoryReader(
        root, file_extractor=png_extractor(data_dir=tmp_path), fs=fs, raise_on_error=True
    ).load_data()
    local = tmp_path / "local"
    local.mkdir()
    (local / "a.png").write_bytes(scans["a.png"])
    documents += ScanRAGReader(data_dir=tmp_path, per="region").load_data(local)
    documents += ScanRAGNodeParser().get_nodes_from_documents(documents)  # nodes inherit them

    for doc in documents:
        for key in CONVENTIONAL:
            assert key in doc.metadata
            assert key in doc.excluded_embed_metadata_keys
            assert key in doc.excluded_llm_metadata_keys
        embedded = doc.get_content(MetadataMode.EMBED)
        prompt = doc.get_content(MetadataMode.LLM)
        assert embedded == doc.get_content(MetadataMode.NONE)  # the text, and nothing else
        assert doc.metadata["file_path"] not in embedded
        assert prompt.startswith(f"source: {doc.metadata['source']}\npage: 1\n\n")
        assert "file_path:" not in prompt and "page_label:" not in prompt


def test_files_that_fail_through_fs_are_named(memory, scans, tmp_path, caplog):
    fs, root = memory
    fs.pipe(f"{root}/broken.png", scans["a.png"][:60])  # a PNG cut short
    fs.pipe(f"{root}/empty.png", b"")

    for name, says in [("broken.png", "cannot be decoded"), ("empty.png", "empty (0 bytes)")]:
        with pytest.raises(Exception, match="Error loading file") as raised:
            SimpleDirectoryReader(
                input_files=[f"{root}/{name}"],
                file_extractor=png_extractor(data_dir=tmp_path),
                fs=fs,
                raise_on_error=True,
            ).load_data()
        cause = raised.value.__cause__
        assert isinstance(cause, ScanragError)
        assert str(cause).startswith(f"{root}/{name}: ") and says in str(cause)

    lenient = ScanRAGReader(data_dir=tmp_path)  # logs and skips, as for local files
    assert lenient.load_data([f"{root}/missing.png", root], fs=fs) == []
    assert f"{root}/missing.png: cannot read it through MemoryFileSystem" in caplog.text
    assert f"{root}: a folder; walk it with SimpleDirectoryReader" in caplog.text


def test_a_pdf_is_parsed_from_the_bytes_read_through_fs(memory, tmp_path):
    fs, root = memory
    fs.pipe(f"{root}/memo.pdf", code_pdf(tmp_path / "memo.pdf", "ZK-8812").read_bytes())
    reader = ScanRAGReader(parser="pdf-text", data_dir=tmp_path / "data", raise_on_error=True)
    [page] = SimpleDirectoryReader(
        root, file_extractor={".pdf": reader}, fs=fs, raise_on_error=True
    ).load_data()
    assert page.text.startswith("Memo ZK-8812.")
    assert page.metadata["file_path"] == f"{root}/memo.pdf"


class Spans:
    """Wraps a blocking function: each call also waits 0.3 s (a remote store, a busy CPU) and
    notes when it ran."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.spans: list[tuple[float, float]] = []
        self.args: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        result = self.function(*args, **kwargs)
        time.sleep(0.3)
        self.spans.append((started, time.perf_counter()))
        self.args.append(args)
        return result


def beat_during(beats: list[float], span: tuple[float, float]) -> bool:
    return any(span[0] < beat < span[1] for beat in beats)


def test_async_retrieval_leaves_the_event_loop_running(scans, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    for name, data in scans.items():
        (folder / name).write_bytes(data)
    with open_index(data_dir=tmp_path / "data") as index:
        assert index.ingest([folder]).added == 2
        search = Spans(index.search)
        retriever = ScanRAGRetriever(IndexWith(index, search=search), top_k=1)

        nodes, beats = asyncio.run(with_heartbeat(lambda: retriever.aretrieve("WB-2093")))

        [span] = search.spans
        assert beat_during(beats, span)  # the loop ran while the search did
        [expected] = ScanRAGRetriever(index, top_k=1).retrieve("WB-2093")
        assert [n.node.metadata["region_id"] for n in nodes] == [
            expected.node.metadata["region_id"]
        ]


class TimedEmbedding(ScanRAGEmbedding):
    """The tests' shared MiniLM, each encoder call timed (and 0.3 s longer)."""

    _timed: Spans = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(encoder=ENCODER, **kwargs)
        self._timed = Spans(super()._get_text_embeddings)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._timed(texts)


def test_async_embeddings_leave_the_event_loop_running_and_batch_stays_one_call():
    embedding = TimedEmbedding()
    texts = ["Reference QX-4471", "Reference WB-2093", "total due"]
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: embedding.aget_query_embedding("what is the reference?"),
        lambda: embedding.aget_text_embedding(texts[0]),
        lambda: embedding.aget_text_embedding_batch(texts),
    ]
    results = []
    for call in calls:
        result, beats = asyncio.run(with_heartbeat(call))
        assert beat_during(beats, embedding._timed.spans[-1])
        results.append(result)
    assert embedding._timed.args[-1] == (texts,)  # the batch is one encoder call
    assert len(embedding._timed.spans) == 3
    query, one, batch = (np.asarray(result) for result in results)
    assert query.shape == (ENCODER.dimension,) and batch.shape == (3, ENCODER.dimension)
    assert np.allclose(one, batch[0], atol=1e-5)
    assert np.allclose(batch, ENCODER.encode(texts), atol=1e-5)


def test_reader_serialises_to_json_pickle_and_an_ingestion_pipeline(tmp_path):
    folder = tmp_path / "memos"
    folder.mkdir()
    code_pdf(folder / "memo.pdf", "ZK-8812")
    reader = ScanRAGReader(
        parser="pdf-text",
        dpi=150,
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",
        max_pages=3,
        ocr_api_key="sk-never-written",
    )
    text = reader.to_json()
    assert json.loads(text) == {
        "class_name": "ScanRAGReader",
        "is_remote": False,
        "parser": "pdf-text",
        "dpi": 150,
        "per": "page",
        "anchors": False,
        "cache_dir": str(tmp_path / "cache"),
        "flat_metadata": False,
        "raise_on_error": False,
        "options": {"data_dir": str(tmp_path / "data"), "max_pages": 3},
    }
    assert "sk-never-written" not in text  # API keys come from the environment instead
    again = ScanRAGReader.from_json(text)
    assert again.to_json() == text
    for copy in (again, pickle.loads(pickle.dumps(reader))):
        assert (copy.settings.parser, copy.settings.dpi, copy.settings.max_pages) == (
            "pdf-text",
            150,
            3,
        )
        assert copy.settings.data_dir == tmp_path / "data"
        assert copy.cache.folder == tmp_path / "cache"

    pipeline = IngestionPipeline(
        readers=[ReaderConfig(reader=reader, reader_args=[str(folder)])],
        transformations=[ScanRAGNodeParser()],
    )
    config = pipeline.readers[0].to_dict()
    rebuilt = IngestionPipeline(
        readers=[
            ReaderConfig(
                reader=ScanRAGReader.from_dict(config["loader"]),
                **{key: config[key] for key in ("reader_args", "reader_kwargs")},
            )
        ],
        transformations=[ScanRAGNodeParser()],
    )
    nodes, rebuilt_nodes = pipeline.run(), rebuilt.run()
    assert [n.text for n in nodes] == [n.text for n in rebuilt_nodes]
    assert nodes and "ZK-8812" in nodes[0].text and node_regions(nodes[0])


def test_a_parser_object_is_serialised_by_its_name(tmp_path):
    parser = get_parser(ScanRAGReader(data_dir=tmp_path).settings, "pdf-text")
    reader = ScanRAGReader(parser=parser, data_dir=tmp_path)
    assert reader.parser == "pdf-text" and reader.settings.parser != "pdf-text"
    assert ScanRAGReader.from_json(reader.to_json()).settings.parser == "pdf-text"


@pytest.mark.parametrize("given", ["settings", "options"])
def test_a_parser_and_dpi_given_as_settings_or_options_are_serialised(given, tmp_path):
    chosen = {"parser": "tesseract", "dpi": 300, "data_dir": tmp_path}
    if given == "settings":
        reader = ScanRAGReader(settings=Settings(**chosen))
    else:
        reader = ScanRAGReader(options=chosen)
    again = ScanRAGReader.from_json(reader.to_json())
    assert (again.parser, again.dpi) == ("tesseract", 300)
    assert (again.settings.parser, again.settings.dpi) == ("tesseract", 300)


def test_each_tenant_reads_and_caches_its_own_parses(tmp_path):
    pdf = code_pdf(tmp_path / "memo.pdf", "ZK-8812")
    sha = hashlib.sha256(pdf.read_bytes()).hexdigest()
    for tenant in ("acme", "default", "acme"):  # the second acme load comes from its cache
        reader = ScanRAGReader(parser="pdf-text", data_dir=tmp_path / "data", tenant=tenant)
        [page] = reader.load_data(pdf)
        assert page.metadata["doc_id"] == doc_id_for(sha, tenant)
    assert (tmp_path / "data" / "tenants" / "acme" / "llama-index").is_dir()
