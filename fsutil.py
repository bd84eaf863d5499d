"""Small file-system helpers that keep writes all-or-nothing."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
from pathlib import Path


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it.

    A reader (or a restarted run after a crash) sees the old file or the new one, never half.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_sqlite(path: Path) -> tuple[sqlite3.Connection, threading.Lock]:
    """A SQLite file (created with its folder) opened for threads to share, each use under the
    lock that comes with it: autocommit (transactions are explicit), WAL so that readers never
    wait for a writer, and synchronous=FULL so that a committed write survives a crash."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db, threading.Lock()
