"""Qdrant cluster settings: a new collection is created with the configured shards,
replication factor and write consistency, and every write carries the configured ordering.

No Qdrant server can run here (no Docker, no network, and no PyPI package ships the server
binary), so these tests record what `ClientStore` asks of qdrant-client in its local mode,
which takes the same calls; the index itself runs unchanged on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient, models
from seams import open_index
from typer.testing import CliRunner

from scanrag.cli import app
from scanrag.testing import pdf_paragraph, text_pdf


@pytest.fixture
def calls(monkeypatch) -> list[tuple[str, dict[str, Any]]]:
    """Every create_collection and write that reaches qdrant-client, with its arguments."""
    seen: list[tuple[str, dict[str, Any]]] = []
    for name in ("create_collection", "upsert", "delete", "set_payload"):
        original = getattr(QdrantClient, name)

        def recording(self, *args, _name=name, _original=original, **kwargs):
            seen.append((_name, kwargs))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(QdrantClient, name, recording)
    return seen


@pytest.fixture
def docs(tmp_path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    for code in ("heronsgate", "marlowbrook"):
        text = f"Lease {code}: the tenant pays rent quarterly; the deposit is held in escrow."
        text_pdf([[(72, 80, f"Lease {code}", 16), *pdf_paragraph(72, 120, text, 450)]],
                 folder / f"{code}.pdf")  # fmt: skip
    return folder


def test_a_new_collection_gets_the_shards_replicas_and_write_consistency(tmp_path, docs, calls):
    with open_index(
        data_dir=tmp_path / "data",
        parser="pdf-text",
        qdrant_path=str(tmp_path / "qdrant"),
        qdrant_shards=6,
        qdrant_replicas=2,
        qdrant_write_consistency=2,
        qdrant_write_ordering="strong",
    ) as index:
        report = index.ingest([docs])
        assert (report.added, report.failed) == (2, 0)
        hits = index.search("heronsgate rent", top_k=1)  # the index works unchanged
        assert Path(hits[0].source).name == "heronsgate.pdf"

    (create,) = [kwargs for name, kwargs in calls if name == "create_collection"]
    assert create["shard_number"] == 6
    assert create["replication_factor"] == 2
    assert create["write_consistency_factor"] == 2
    writes = [(name, kwargs) for name, kwargs in calls if name != "create_collection"]
    assert {name for name, _ in writes} >= {"upsert", "delete"}
    for _name, kwargs in writes:
        assert kwargs["ordering"] == models.WriteOrdering.STRONG
        assert kwargs["wait"] is True


def test_without_cluster_settings_the_server_defaults_apply(tmp_path, docs, calls):
    with open_index(data_dir=tmp_path / "data", parser="pdf-text", qdrant_path=":memory:") as index:
        assert index.ingest([docs]).added == 2
    (create,) = [kwargs for name, kwargs in calls if name == "create_collection"]
    assert create["shard_number"] is None and create["replication_factor"] is None
    assert create["write_consistency_factor"] is None
    assert all("ordering" not in kwargs for name, kwargs in calls if name == "upsert")


def test_the_cli_passes_the_cluster_options_to_the_collection(tmp_path, docs, calls, monkeypatch):
    monkeypatch.setenv("SCANRAG_QDRANT_PATH", str(tmp_path / "qdrant"))
    monkeypatch.setenv("SCANRAG_QDRANT_WRITE_ORDERING", "medium")
    result = CliRunner().invoke(
        app,
        ["ingest", str(docs), "--data-dir", str(tmp_path / "data"), "--parser", "pdf-text",
         "--qdrant-shards", "4", "--qdrant-replicas", "3", "--qdrant-write-consistency", "2",
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (create,) = [kwargs for name, kwargs in calls if name == "create_collection"]
    assert (create["shard_number"], create["replication_factor"]) == (4, 3)
    assert create["write_consistency_factor"] == 2
    upserts = [kwargs for name, kwargs in calls if name == "upsert"]
    assert len(upserts) == 2
    assert all(kwargs["ordering"] == models.WriteOrdering.MEDIUM for kwargs in upserts)
