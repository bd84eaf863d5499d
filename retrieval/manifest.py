"""The manifest: a SQLite file recording every ingested source file and its state.

One row per file path: its stat, sha256, document id, status, the fingerprints of the parser
and of the index settings it was processed with, and the last error. A file is `indexing`
from the moment its points start to change until all of them are written, so a run killed in
between is finished by the next one.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path BLOB PRIMARY KEY,      -- os.fsencode(absolute path): exact even for non-UTF-8 names
    sha256 TEXT,
    size INTEGER,
    mtime_ns INTEGER,
    doc_id TEXT,
    status TEXT NOT NULL,       -- indexing | done | failed
    parser_fp TEXT,
    index_fp TEXT,
    pages INTEGER,
    error TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_doc_id ON files (doc_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


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
    updated_at: str


class Manifest:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

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
            rows = self._db.execute(f"SELECT * FROM files {sql}", args).fetchall()
        return [FileRecord(Path(os.fsdecode(row[0])), *row[1:]) for row in rows]

    def get(self, path: Path) -> FileRecord | None:
        rows = self._rows("WHERE path = ?", (os.fsencode(path),))
        return rows[0] if rows else None

    def all(self) -> list[FileRecord]:
        return self._rows("ORDER BY path")

    def by_doc(self, doc_id: str) -> list[FileRecord]:
        return self._rows("WHERE doc_id = ? ORDER BY path", (doc_id,))

    def put(self, record: FileRecord) -> None:
        record.updated_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
        values = (os.fsencode(record.path), *list(vars(record).values())[1:])
        with self._tx() as db:
            db.execute(f"INSERT OR REPLACE INTO files VALUES ({','.join('?' * 11)})", values)

    def remove(self, path: Path) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM files WHERE path = ?", (os.fsencode(path),))

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
