"""Parse files in other processes or on Ray: one picklable unit of work in, one result out.

`parse_unit` is the one parse function. It runs in the indexing process (one worker), in a
`ProcessPoolExecutor` worker (`--workers N`) and as a Ray task (`--ray`), and returns the
same thing everywhere: the Document as JSON and its page images as JPEG bytes, or the error.
Workers never write into the data directory (they name page images as `DataDir` does): the
indexing process stores the images and the parse cache, and stays the only writer of the
manifest and the vector store (the embedded Qdrant engine is single-process).

A runner keeps a bounded number of units in flight and hands results back as they complete;
`InlineRunner`, `PoolRunner` and `RayRunner` differ only in where `parse_unit` runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..config import Settings
from ..datadir import DataDir
from ..errors import ConfigError, ScanragError
from .loaders import SourceFile, failure_message, show
from .model import Document
from .parsers import Parser, get_parser
from .parsers.quiet import quiet_model_logs
from .pipeline import parse_file, parse_fingerprint

log = logging.getLogger(__name__)

#: parse_file's signature: what parses a unit in the indexing process.
ParseFile = Callable[..., Document]
#: Called with (unit, pages done, pages in the file) while a unit is parsed in-process.
OnUnitPage = Callable[["ParseUnit", int, int], None]


@dataclass
class ParseUnit:
    """One file, or one batch of a long file's pages, to parse somewhere."""

    source: SourceFile  # checked and hashed by the indexing process
    settings: dict[str, Any]  # Settings.model_dump(); rebuilt where the unit runs
    parser_fp: str  # the indexing process's parse fingerprint; a worker that differs refuses
    pages: tuple[int, int] | None = None  # (first, last) of a batch; None = the whole file

    @property
    def path(self) -> Path:
        return self.source.path


@dataclass
class ParseResult:
    """What a worker sends back: the Document (or the unit's part of it) or the error."""

    path: Path
    pages: tuple[int, int] | None
    document: str | None = None  # Document JSON
    images: dict[int, bytes] = field(default_factory=dict)  # page number → JPEG (page.image)
    error: str | None = None
    config_error: bool = False  # about the setup, not the file: the whole ingest stops
    seconds: float = 0.0


def parse_unit(
    unit: ParseUnit,
    parse: ParseFile = parse_file,
    on_page: Callable[[int, int], None] | None = None,
    parser: Parser | None = None,
) -> ParseResult:
    """Parse one unit wherever this runs; never raises for a bad file (the result says why).
    Without `parser`, the unit's settings name it (a worker builds its own)."""
    started = time.perf_counter()
    path = unit.path
    result = ParseResult(path, unit.pages)
    try:
        settings = Settings(**unit.settings)
        parser = parser or get_parser(settings)
        parser_fp = parse_fingerprint(parser, settings)
        if parser_fp != unit.parser_fp:
            raise ConfigError(
                f"{show(path)}: the {settings.parser} parser on this worker differs from the "
                f"indexing process's (fingerprint {parser_fp}, expected {unit.parser_fp}); "
                "install the same scanrag and model packages on every node"
            )

        def save_image(doc_id: str, number: int, image: Any) -> str:
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=settings.page_image_quality)
            result.images[number] = buffer.getvalue()
            return DataDir.page_image(settings.tenant, doc_id, parser_fp, number)

        doc = parse(
            path,
            settings,
            parser,
            source=unit.source,
            save_image=save_image,
            on_page=on_page,
            pages=unit.pages,
        )
        result.document = doc.model_dump_json()
    except ConfigError as exc:
        result.error, result.config_error = str(exc), True
    except (ScanragError, OSError) as exc:
        result.error = failure_message(path, exc)
    except Exception as exc:
        log.exception("parsing %s failed", show(path))
        result.error = failure_message(path, exc)
    if result.error:
        result.images = {}
    result.seconds = time.perf_counter() - started
    return result


def plan_units(
    source: SourceFile, settings: dict[str, Any], parser_fp: str, batch_pages: int | None
) -> list[ParseUnit]:
    """The units of one file: batches of `batch_pages` pages for a long file (None: never
    split), else the whole file."""
    if batch_pages is None or source.page_count <= batch_pages:
        return [ParseUnit(source, settings, parser_fp)]
    return [
        ParseUnit(
            source, settings, parser_fp, (first, min(first + batch_pages - 1, source.page_count))
        )
        for first in range(1, source.page_count + 1, batch_pages)
    ]


def batch_size(settings: Settings, parser: Parser) -> int | None:
    """Page batches, unless the parser reads whole documents (Zhipu MaaS) or `fallback` is
    on (once the server is down, the rest of the file skips it: a state of the whole file)."""
    if settings.fallback or hasattr(parser, "parse_document"):
        return None
    return settings.batch_pages


def available_cpus() -> int:
    """Cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_workers(cpus: int | None = None) -> int:
    """Half the cores: the indexing process embeds what comes back on the same cores, and
    every worker holds its own OCR models in memory. 1 (in-process) on a 2-core machine."""
    return max(1, (cpus or available_cpus()) // 2)


def worker_threads(settings: Settings, cpus: int | None = None) -> int | None:
    """onnxruntime threads per parse worker: the cores shared out, 1 per Ray task; None in
    one process (onnxruntime's default: all cores)."""
    if settings.ocr_threads or settings.ray_address:
        return settings.ocr_threads or 1
    cpus = cpus or available_cpus()
    workers = settings.workers or default_workers(cpus)
    return max(1, cpus // workers) if workers > 1 else None


# --- runners ----------------------------------------------------------------------------


class Runner(Protocol):
    slots: int  # units worth keeping in flight
    reports_pages: bool  # True when on_page reached the caller while parsing (in-process)

    def submit(self, unit: ParseUnit) -> None: ...

    def results(self, block: bool) -> list[ParseResult]:
        """Results that completed; with `block`, wait for at least one (if any is pending)."""

    @property
    def pending(self) -> int: ...

    def close(self) -> None:
        """Stop; results still pending are dropped."""


class InlineRunner:
    """Parses in the calling process, at once: the default on small machines. With `parser`,
    that parser object reads every unit (it never leaves this process)."""

    slots = 1
    reports_pages = True

    def __init__(self, parse: ParseFile = parse_file, parser: Parser | None = None) -> None:
        self.parse = parse
        self.parser = parser
        self.on_page: OnUnitPage | None = None  # set by the ingest run
        self._done: list[ParseResult] = []

    def submit(self, unit: ParseUnit) -> None:
        def on_page(done: int, total: int) -> None:
            if self.on_page:
                self.on_page(unit, done, total)

        self._done.append(parse_unit(unit, self.parse, on_page, self.parser))

    def results(self, block: bool) -> list[ParseResult]:
        done, self._done = self._done, []
        return done

    @property
    def pending(self) -> int:
        return len(self._done)

    def close(self) -> None:
        self._done = []


def _init_worker() -> None:
    """A pool worker: stray prints go to stderr (stdout may be `--json`), model loaders quiet."""
    os.dup2(2, 1)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, force=True)
    quiet_model_logs()


class PoolRunner:
    """`workers` processes on this machine (spawned: the indexing process holds threads).

    A worker that dies (killed, out of memory) breaks its pool: the units in flight on it
    come back as their files' errors, and the next unit starts a fresh pool."""

    reports_pages = False

    def __init__(self, workers: int, parse: Callable[[ParseUnit], ParseResult]) -> None:
        self.workers = workers
        self.slots = workers * 2
        self.parse = parse
        self._pool: ProcessPoolExecutor | None = None
        # each future's unit and the pool it runs on: a broken future stops only its own pool
        self._futures: dict[Future, tuple[ParseUnit, ProcessPoolExecutor]] = {}

    def submit(self, unit: ParseUnit) -> None:
        pool = self._current_pool()
        try:
            future = pool.submit(self.parse, unit)
        except BrokenProcessPool:  # a worker died since the last results(): start afresh, once
            self._drop(pool)
            pool = self._current_pool()
            future = pool.submit(self.parse, unit)
        self._futures[future] = (unit, pool)

    def _current_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
            )
        return self._pool

    def _drop(self, pool: ProcessPoolExecutor) -> None:
        """Stop a broken pool, unless a fresh one has replaced it already."""
        if pool is self._pool:
            pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def results(self, block: bool) -> list[ParseResult]:
        if not self._futures:
            return []
        done, _ = wait(
            list(self._futures), timeout=None if block else 0, return_when=FIRST_COMPLETED
        )
        out = []
        for future in done:
            unit, pool = self._futures.pop(future)
            try:
                out.append(future.result())
            except Exception as exc:  # the worker died (BrokenProcessPool) or pickling failed
                if isinstance(exc, BrokenProcessPool):
                    self._drop(pool)
                out.append(_task_failed(unit, "parse worker", exc))
        return out

    @property
    def pending(self) -> int:
        return len(self._futures)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._futures = {}


def _task_failed(unit: ParseUnit, what: str, exc: BaseException) -> ParseResult:
    cause = getattr(exc, "cause", None) or exc  # a RayTaskError carries the task's exception
    message = " ".join(str(cause).split()) or type(cause).__name__
    if len(message) > 300:
        message = message[:299] + "…"
    return ParseResult(
        unit.path,
        unit.pages,
        error=f"{show(unit.path)}: the {what} failed ({type(cause).__name__}: {message})",
    )


_redirected = False


def _ray_task(
    unit: ParseUnit, data: bytes | None, parse: Callable[[ParseUnit], ParseResult]
) -> ParseResult:
    """Runs in a Ray worker: the file's bytes (if sent) go into the unit, then parse it."""
    global _redirected
    if not _redirected:  # the driver may print JSON on its stdout: workers print to stderr
        os.dup2(2, 1)
        _redirected = True
    if data is not None:
        unit.source.data = data
    return parse(unit)


class RayRunner:
    """Ray tasks, one per unit, on a local instance or a cluster (`address`)."""

    reports_pages = False

    def __init__(
        self,
        address: str,
        parse: Callable[[ParseUnit], ParseResult],
        send_files: bool = True,
        cpus_per_task: int = 1,
    ) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ConfigError(
                "--ray needs Ray on this machine and every node: pip install 'scanrag[ray]'"
            ) from exc
        self._ray = ray
        if not ray.is_initialized():
            try:
                ray.init(address=None if address == "auto" else address, log_to_driver=True)
            except Exception as exc:
                raise ConfigError(
                    f"cannot join the Ray cluster at {address!r}: {exc}; start it with "
                    "`ray start --head` or fix --ray / SCANRAG_RAY_ADDRESS"
                ) from exc
        self.parse = parse
        self.send_files = send_files
        self._task = ray.remote(_ray_task).options(num_cpus=cpus_per_task)
        cpus = ray.cluster_resources().get("CPU", 1.0)
        self.slots = max(2, int(cpus // cpus_per_task) * 2)
        self._pending: dict[Any, ParseUnit] = {}
        self._data: dict[Path, tuple[Any, int]] = {}  # one object per file, shared by batches

    def submit(self, unit: ParseUnit) -> None:
        data = None
        if self.send_files:
            data, uses = self._data.get(unit.path, (None, 0))
            if data is None:
                try:
                    raw = unit.path.read_bytes()
                except OSError as exc:  # deleted or unreadable since it was hashed
                    self._fail(unit, failure_message(unit.path, exc))
                    return
                if hashlib.sha256(raw).hexdigest() != unit.source.sha256:
                    changed = "the file changed while being indexed; run ingest again"
                    self._fail(unit, f"{show(unit.path)}: {changed}")
                    return
                data = self._ray.put(raw)
            self._data[unit.path] = (data, uses + 1)
        self._pending[self._task.remote(unit, data, self.parse)] = unit

    def _fail(self, unit: ParseUnit, message: str) -> None:
        """A unit that fails before it goes out: its result comes back like a task's."""
        self._pending[self._ray.put(ParseResult(unit.path, unit.pages, error=message))] = unit

    def results(self, block: bool) -> list[ParseResult]:
        ray = self._ray
        if not self._pending:
            return []
        refs = list(self._pending)
        ready, _ = ray.wait(refs, num_returns=1, timeout=None if block else 0)
        if ready:  # take every other one that is ready too
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out = []
        for ref in ready:
            unit = self._pending.pop(ref)
            try:
                out.append(ray.get(ref))
            except Exception as exc:  # the task raised, its worker died, or it was cancelled
                out.append(_task_failed(unit, "Ray task", exc))
            self._release(unit.path)
        return out

    def _release(self, path: Path) -> None:
        if path in self._data:
            data, uses = self._data[path]
            if uses <= 1:
                del self._data[path]
            else:
                self._data[path] = (data, uses - 1)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        for ref in self._pending:
            with contextlib.suppress(Exception):  # already finished, or a put object
                self._ray.cancel(ref)
        self._pending = {}
        self._data = {}


class Runners:
    """The runner an index parses with, kept from one ingest to the next and started only
    when a file needs parsing (Ray starts slowly): Ray (`ray_address`), a process pool
    (`workers` > 1), else this process. A runner given by the caller is used as it is; a
    parser object given by the caller reads in this process (it is not sent to workers)."""

    def __init__(
        self, settings: Settings, parser: Parser | None = None, runner: Runner | None = None
    ) -> None:
        elsewhere = settings.ray_address or (settings.workers or 1) > 1
        if parser is not None and runner is None and elsewhere:
            raise ConfigError(
                "a parser object parses in this process: leave workers and ray_address unset"
            )
        self.settings = settings
        self.parser = parser
        self.given = runner
        self.current: Runner | None = runner

    def get(self) -> Runner:
        if self.current is None:
            self.current = self._start()
        return self.current

    def _start(self) -> Runner:
        s = self.settings
        if self.parser is not None:
            return InlineRunner(parser=self.parser)
        if s.ray_address:
            return RayRunner(s.ray_address, parse_unit, s.ray_send_files, s.ocr_threads or 1)
        workers = s.workers or default_workers()
        return PoolRunner(workers, parse_unit) if workers > 1 else InlineRunner()

    def close(self) -> None:
        """Stop the runner, dropping what is still out; one this started is forgotten."""
        if self.current is not None:
            self.current.close()
            if self.current is not self.given:
                self.current = None
