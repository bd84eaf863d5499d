"""The manifest: a SQLite file recording every ingested source file and its state.

One row per tenant and file path: its stat, sha256, document id, status, the fingerprints of
the parser and of the index settings it was processed with, the last error, and the
document's metadata (every row of a document holds the same). A file is `indexing` from the
moment its points start to change until all of them are written, so a run killed in between
is finished by the next one.

A manifest written before tenants existed is rebuilt in place when it is first opened (one
transaction): every row goes to the default tenant, with no metadata.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..fsutil import open_sqlite
from ..tenants import DEFAULT

FILES = """
CREATE TABLE IF NOT EXISTS {name} (
    tenant TEXT NOT NULL,       -- whose file (rows from before tenants: the default tenant)
    path BLOB NOT NULL,         -- os.fsencode(absolute path): exact even for non-UTF-8 names
    sha256 TEXT,
    size INTEGER,
    mtime_ns INTEGER,
    doc_id TEXT,
    status TEXT NOT NULL,       -- indexing | done | failed
    parser_fp TEXT,
    index_fp TEXT,
    pages INTEGER,
    error TEXT,
    updated_at TEXT NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{{}}',  -- the document's metadata (JSON object)
    PRIMARY KEY (tenant, path)
)"""
SCHEMA = f"""
{FILES.format(name="files")};
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
INDEXES = "CREATE INDEX IF NOT EXISTS files_doc ON files (tenant, doc_id);"
#: The columns of a row from before tenants, then all of them, in FileRecord's order.
BEFORE_TENANTS = (
    "path, sha256, size, mtime_ns, doc_id, status, parser_fp, index_fp, pages, error, updated_at"
)
COLUMNS = BEFORE_TENANTS + ", tenant, metadata"


@dataclass
class FileRecord:
    path: Path
    sha256: str | None
    size: int | None
    mtime_ns: int | None
    doc_id: str | None
    status: str
    parser_fp: str | None
    index_fp: str | None
    pages: int | None
    error: str | None
    updated_at: str = ""
    tenant: str = DEFAULT
    metadata: dict[str, Any] = field(default_factory=dict)


_SET_METADATA = "UPDATE files SET metadata = ? WHERE tenant = ? AND doc_id = ?"


class Manifest:
    def __init__(self, path: Path) -> None:
        self._db, self._lock = open_sqlite(path)
        self._db.executescript(SCHEMA)
        self._add_tenants()
        self._db.execute(INDEXES)

    def _add_tenants(self) -> None:
        """A manifest from before tenants: its rows become the default tenant's."""
        with self._tx() as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(files)")}
            if "tenant" in columns:
                return
            db.execute("ALTER TABLE files RENAME TO files_before_tenants")
            db.execute(FILES.format(name="files"))
            db.execute(
                f"INSERT INTO files ({BEFORE_TENANTS}, tenant) "
                f"SELECT {BEFORE_TENANTS}, ? FROM files_before_tenants",
                (DEFAULT,),
            )
            db.execute("DROP TABLE files_before_tenants")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _rows(self, sql: str, args: tuple = ()) -> list[FileRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {COLUMNS} FROM files {sql}", args).fetchall()
        records = [FileRecord(Path(os.fsdecode(row[0])), *row[1:-1]) for row in rows]
        for record, row in zip(records, rows, strict=True):
            record.metadata = json.loads(row[-1])
        return records

    def get(self, tenant: str, path: Path) -> FileRecord | None:
        rows = self._rows("WHERE tenant = ? AND path = ?", (tenant, os.fsencode(path)))
        return rows[0] if rows else None

    def all(self, tenant: str) -> list[FileRecord]:
        return self._rows("WHERE tenant = ? ORDER BY path", (tenant,))

    def by_doc(self, tenant: str, doc_id: str) -> list[FileRecord]:
        return self._rows("WHERE tenant = ? AND doc_id = ? ORDER BY path", (tenant, doc_id))

    def usage(self, tenant: str) -> tuple[int, int]:
        """(documents, pages) a tenant holds: each document once, whatever files hold it."""
        with self._lock:
            documents, pages = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(pages), 0) FROM (SELECT MAX(pages) AS pages "
                "FROM files WHERE tenant = ? AND doc_id IS NOT NULL GROUP BY doc_id)",
                (tenant,),
            ).fetchone()
        return documents, pages

    def put(self, record: FileRecord, document_wide: bool = False) -> None:
        """Write a file's row; `document_wide`: its metadata goes on every row of its
        document too, in the same commit."""
        record.updated_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        metadata = json.dumps(record.metadata, ensure_ascii=False)
        values = (os.fsencode(record.path), *list(vars(record).values())[1:-1], metadata)
        with self._tx() as db:
            db.execute(
                f"INSERT OR REPLACE INTO files ({COLUMNS}) VALUES ({','.join('?' * len(values))})",
                values,
            )
            if document_wide and record.doc_id:
                db.execute(_SET_METADATA, (metadata, record.tenant, record.doc_id))

    def set_metadata(self, tenant: str, doc_id: str, metadata: dict[str, Any]) -> None:
        """The metadata of every row of a document."""
        with self._tx() as db:
            db.execute(_SET_METADATA, (json.dumps(metadata, ensure_ascii=False), tenant, doc_id))

    def remove(self, tenant: str, path: Path) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM files WHERE tenant = ? AND path = ?", (tenant, os.fsencode(path))
            )

    def meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()
