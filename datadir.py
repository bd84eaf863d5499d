"""The data directory: every path under it, and the parse cache kept there.

    manifest.sqlite            every source file: tenant, stat, sha256, doc id, status, metadata
    jobs.sqlite                the API's ingest jobs (recorded before their 202)
    qdrant/                    the embedded Qdrant Edge engine (unless a server URL is set)
    uploads/.incoming/         uploads still arriving (a server killed mid-upload leaves them)
    llama-index/               the LlamaIndex reader's own parse cache

and what each tenant keeps (`TenantFiles`), the default tenant's at the top, as before
tenants existed, every other one's below `tenants/<name>/`:

    cache/<sha>-<fp>.json      parsed Documents, keyed by file hash and parser fingerprint, so
                               that re-chunking or re-embedding never re-runs OCR
    pages/<doc>/<fp>/N.jpg     the stored page images that citations point at
    uploads/<sha[:16]>/<name>  files uploaded through the API

Nothing else in scanrag spells a path under the data directory: ingest, the index, the API
and the connectors all ask a `DataDir`.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

from .fsutil import atomic_write
from .ingest.loaders import show
from .ingest.model import Document
from .tenants import DEFAULT

log = logging.getLogger(__name__)
PAGES = "pages"  # page images, one folder per document
TENANTS = "tenants"  # one folder per tenant but the default one


def tenant_prefix(tenant: str) -> str:
    """Where a tenant's files lie, relative to the data directory ('' or 'tenants/<name>/')."""
    return "" if tenant == DEFAULT else f"{TENANTS}/{tenant}/"


def fell_back(doc: Document) -> bool:
    """True when some page was parsed by the fallback parser (the model server failed)."""
    return any("fallback" in region.flags for region in doc.regions())


def fallback_fp(parser_fp: str) -> str:
    """The parser fingerprint a fallback parse is recorded and cached under: no run looks
    it up, so the next one tries the model backend again."""
    return f"fallback-{parser_fp}"


def recorded_fp(doc: Document, parser_fp: str) -> str:
    """The parser fingerprint a Document's manifest row and cache entry carry."""
    return fallback_fp(parser_fp) if fell_back(doc) else parser_fp


class ParseCache:
    """Parsed Documents in a folder, by (file sha256, parser fingerprint).

    A parse that fell back to the fallback parser is kept (its pages and crops are served)
    under `fallback-<fp>`, a fingerprint no run asks for, so it is parsed again next time.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, sha256: str, parser_fp: str) -> Path:
        return self.folder / f"{sha256}-{parser_fp}.json"

    def get(self, sha256: str, parser_fp: str) -> Document | None:
        """The cached Document, or None when there is none or it is corrupt (parse again)."""
        entry = self.path(sha256, parser_fp)
        if entry.exists():
            try:
                return Document.model_validate_json(entry.read_bytes())
            except ValueError:
                log.warning("ignoring a corrupt cache entry %s", entry)
        return None

    def put(self, doc: Document, parser_fp: str) -> Path:
        """Keep a parse (atomically); where it went. A parse the model read itself makes
        the fallback parse of the same content stale, so that one goes."""
        recorded = recorded_fp(doc, parser_fp)
        entry = self.path(doc.sha256, recorded)
        atomic_write(entry, doc.model_dump_json())
        if recorded == parser_fp:  # read by the model itself
            self.path(doc.sha256, fallback_fp(parser_fp)).unlink(missing_ok=True)
        return entry

    def drop(self, sha256: str) -> None:
        """Every parse of this content, whatever the parser."""
        for entry in self.folder.glob(f"{sha256}-*.json"):
            entry.unlink(missing_ok=True)


class TenantFiles:
    """What the data directory keeps for one tenant: its parses, page images and uploads."""

    def __init__(self, data_root: Path, tenant: str) -> None:
        self.tenant = tenant
        self.root = data_root / tenant_prefix(tenant)
        self.cache = ParseCache(self.root / "cache")

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def llama_index(self) -> Path:
        """The default folder of the LlamaIndex reader's parse cache."""
        return self.root / "llama-index"

    def upload(self, sha256: str, name: str) -> Path:
        """Where an uploaded file is kept: one folder per content, the sender's file name."""
        return self.uploads / sha256[:16] / name

    def is_upload(self, path: Path) -> bool:
        uploads = self.uploads.absolute()  # the manifest's paths are absolute
        return path.is_relative_to(uploads) and path.parent != uploads

    def drop_document(self, doc_id: str, sha256s: Iterable[str], paths: Iterable[Path]) -> None:
        """What the data dir keeps of a document: its parses, its page images, and those of
        its files that were uploaded (files elsewhere are the user's)."""
        for sha256 in set(sha256s):
            self.cache.drop(sha256)
        shutil.rmtree(self.root / PAGES / doc_id, ignore_errors=True)
        for path in paths:
            self.drop_upload(path)

    def drop_upload(self, path: Path) -> None:
        """The file, when it is one of the tenant's uploads (files elsewhere are the user's)."""
        if self.is_upload(path):
            path.unlink(missing_ok=True)
            with suppress(OSError):  # kept while it holds other names
                path.parent.rmdir()


class DataDir:
    """The paths of one data directory (created on demand, never at construction)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        #: The default tenant's parses (the LlamaIndex reader reads them too).
        self.cache = self.tenant(DEFAULT).cache

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def tenant(self, name: str) -> TenantFiles:
        return TenantFiles(self.root, name)

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.sqlite"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs.sqlite"

    @property
    def qdrant(self) -> Path:
        return self.root / "qdrant"

    # --- page images ------------------------------------------------------------------

    @staticmethod
    def page_image(tenant: str, doc_id: str, parser_fp: str, number: int) -> str:
        """Where a page image lives, relative to the data directory: what `Page.image` holds
        (a worker names it without knowing where the data directory is)."""
        return f"{tenant_prefix(tenant)}{PAGES}/{doc_id}/{parser_fp}/{number}.jpg"

    def file(self, relative: str) -> Path:
        """A path that a Document holds relative to the data directory (`Page.image`)."""
        return self.root / relative

    # --- uploads arriving ---------------------------------------------------------------

    @property
    def incoming(self) -> Path:
        """Where uploads are written while they arrive (any tenant's)."""
        return self.root / "uploads" / ".incoming"

    def clear_incoming(self) -> None:
        """Remove what a server killed mid-upload left (never acknowledged)."""
        shutil.rmtree(self.incoming, ignore_errors=True)

    # --- naming -------------------------------------------------------------------------

    def display(self, path: Path) -> str:
        """How citations name a file: relative to the data dir for uploads, else as ingested
        (non-UTF-8 bytes of a name spelled \\xNN: payloads are JSON)."""
        root = self.root.absolute()
        return show(path.relative_to(root).as_posix() if path.is_relative_to(root) else path)
