"""The data directory: the parse cache and what deleting a document removes."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanrag.datadir import DataDir
from scanrag.ingest.model import BBox, Document, Page, ParserInfo, Region

SHA = "3f9c0a1b2c3d4e5f" + "0" * 48


def document(*flags: str) -> Document:
    region = Region(
        id="3f9c0a1b2c3d4e5f:p1:r0",
        page=1,
        index=0,
        label="text",
        bbox=BBox(10, 10, 200, 40),
        bbox_norm=BBox(6, 4, 121, 17),
        text="Total due",
        flags=list(flags),
    )
    return Document(
        id=SHA[:16],
        source="scan.png",
        sha256=SHA,
        mime="image/png",
        pages=[Page(number=1, width=1654, height=2339, dpi=200, regions=[region])],
        parser=ParserInfo(name="glm-ocr", version="1", fingerprint="f"),
        created_at="2026-01-01T00:00:00Z",
    )


def test_a_parse_is_found_by_content_and_fingerprint_and_a_corrupt_entry_is_none(tmp_path):
    cache = DataDir(tmp_path).cache
    assert cache.get(SHA, "fp") is None
    entry = cache.put(document(), "fp")
    assert entry == tmp_path / "cache" / f"{SHA}-fp.json"
    assert cache.get(SHA, "fp") == document()
    assert cache.get(SHA, "other") is None
    entry.write_text('{"id": "truncated')
    assert cache.get(SHA, "fp") is None


def test_a_fallback_parse_is_kept_where_no_run_looks_until_the_model_reads_it(tmp_path):
    cache = DataDir(tmp_path).cache
    kept = cache.put(document("fallback"), "fp")
    assert kept.exists() and cache.get(SHA, "fp") is None
    cache.put(document(), "fp")  # the model read it this time: the fallback parse is stale
    assert not kept.exists() and cache.get(SHA, "fp") == document()


@pytest.mark.parametrize("tenant", ["default", "acme"])
def test_dropping_a_document_removes_its_parses_pages_and_uploads_only(tmp_path, tenant):
    data = DataDir(tmp_path / "data")
    files = data.tenant(tenant)
    files.cache.put(document(), "fp")
    page = data.file(DataDir.page_image(tenant, SHA[:16], "fp", 1))
    page.parent.mkdir(parents=True)
    page.write_bytes(b"jpeg")
    uploaded = files.upload(SHA, "scan.png")
    twin = uploaded.with_name("copy.png")  # the same content sent under another name
    uploaded.parent.mkdir(parents=True)
    uploaded.write_bytes(b"png")
    twin.write_bytes(b"png")
    own = tmp_path / "mine" / "scan.png"  # a file the user ingested from their own folder
    own.parent.mkdir()
    own.write_bytes(b"png")
    files.drop_document(SHA[:16], [SHA], [uploaded.absolute(), own.absolute()])
    assert not list((files.root / "cache").iterdir())
    assert not (files.root / "pages" / SHA[:16]).exists()
    assert not uploaded.exists() and twin.exists() and own.exists()


def test_the_default_tenant_keeps_the_layout_from_before_tenants_others_their_own_folder(
    tmp_path,
):
    """Parses, page images and uploads written before tenants are the default tenant's where
    they lie; another tenant's never share a folder with them."""
    data = DataDir(tmp_path / "data")
    assert data.tenant("default").root == data.root
    assert data.tenant("default").upload(SHA, "a.pdf") == data.root / "uploads" / SHA[:16] / "a.pdf"
    assert DataDir.page_image("default", "d1", "fp", 2) == "pages/d1/fp/2.jpg"
    acme = data.tenant("acme")
    assert acme.root == data.root / "tenants" / "acme"
    assert DataDir.page_image("acme", "d1", "fp", 2) == "tenants/acme/pages/d1/fp/2.jpg"
    acme.cache.put(document(), "fp")
    assert data.cache.get(SHA, "fp") is None  # the default tenant's cache does not see it
    assert acme.cache.get(SHA, "fp") == document()


def test_files_under_the_data_dir_are_named_relative_to_it(tmp_path):
    data = DataDir(tmp_path / "data")
    uploaded = data.tenant("default").upload(SHA, "a.pdf").absolute()
    assert data.display(uploaded) == f"uploads/{SHA[:16]}/a.pdf"
    assert data.display(Path("/srv/scans/a.pdf")) == "/srv/scans/a.pdf"
