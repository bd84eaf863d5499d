"""The `scanrag` command: parse, ingest, search, ask, serve, mcp, eval.

stdout carries results (exactly one JSON document with --json); progress bars, warnings and
errors go to stderr. Exit status: 0 all good, 1 some inputs failed, 2 usage errors.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .config import Settings
from .errors import ConfigError, ScanragError, printable, problems
from .retrieval.metadata import parse_pairs

#: What `--ray ADDRESS` may be: auto, ray://host:port (Ray Client) or host:port (GCS).
RAY_ADDRESS = re.compile(r"auto|ray://\S+|[\w.-]+:\d+")


def optional_ray_address(args: list[str]) -> list[str]:
    """`--ray` takes an optional address, which Typer's parser cannot express: a bare `--ray`
    (followed by a path, another option or nothing) becomes `--ray auto`."""
    out: list[str] = []
    for i, arg in enumerate(args):
        out.append(arg)
        if arg == "--":
            return out + args[i + 1 :]
        following = args[i + 1] if i + 1 < len(args) else ""
        if arg == "--ray" and not RAY_ADDRESS.fullmatch(following):
            out.append("auto")
    return out


class Commands(typer.core.TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, optional_ray_address(args))


app = typer.Typer(
    cls=Commands,
    add_completion=False,
    no_args_is_help=True,
    help="Index folders of scanned documents and ask questions whose answers cite page regions.",
)
stderr = Console(stderr=True)

ParserOption = Annotated[
    str | None,
    typer.Option(
        "--parser",
        help="auto | embedded | pdf-text | glm-ocr | vlm | transformers | tesseract "
        "(default: auto).",
    ),
]
OcrUrlOption = Annotated[
    str | None,
    typer.Option(
        "--ocr-url",
        help="GLM-OCR server base URL, e.g. http://localhost:8080/v1 (SCANRAG_OCR_URL).",
    ),
]
OcrModelOption = Annotated[
    str | None, typer.Option("--ocr-model", help="Model name on the GLM-OCR server (glm-ocr).")
]
OcrKeyOption = Annotated[
    str | None, typer.Option("--ocr-api-key", help="API key for the GLM-OCR server.")
]
FallbackOption = Annotated[
    bool | None,
    typer.Option(
        "--fallback/--no-fallback",
        help="Parse pages the model backend fails on with `embedded` instead of failing.",
    ),
]
DpiOption = Annotated[
    int | None, typer.Option("--dpi", help="PDF render resolution (default 200).")
]
PasswordOption = Annotated[
    str | None, typer.Option("--pdf-password", help="Password for encrypted PDFs.")
]
StraightenOption = Annotated[
    bool | None,
    typer.Option(
        "--straighten/--no-straighten",
        help="Stand turned (90/180/270°) and skewed scans upright before parsing (default on).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
TenantOption = Annotated[
    str | None,
    typer.Option("--tenant", help="The tenant to act for (default: $SCANRAG_TENANT or default)."),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Log details and tracebacks.")]


def setup_logging(verbose: bool) -> None:
    """Everything logs to stderr; third-party model loaders are kept quiet unless verbose."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    from .ingest.parsers.quiet import quiet_model_logs

    if not verbose:
        quiet_model_logs()
        # transformers draws a "Loading weights" bar for MiniLM on every command; it reads
        # this when it is first imported, which the commands do only after this point.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def make_settings(**overrides: Any) -> Settings:
    """Settings from env / scanrag.toml with the command line's explicit options on top."""
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:  # without the values (SCANRAG_API_KEYS holds secrets)
        fail_usage(f"invalid settings: {'; '.join(problems(exc, 'settings'))}")
    except Exception as exc:
        fail_usage(f"invalid settings: {exc}")


def fail_usage(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def fail_unexpected(exc: Exception) -> typer.Exit:
    """A bug, not a bad input: one line for the user, the traceback only with --verbose."""
    logging.getLogger("scanrag").debug("unexpected failure", exc_info=True)
    typer.echo(
        f"error: unexpected {type(exc).__name__}: {printable(str(exc))}; rerun with -v for "
        "details and report it",
        err=True,
    )
    raise typer.Exit(1)


@contextmanager
def user_errors() -> Iterator[None]:
    """One line and an exit status instead of a traceback: 2 for bad settings, 1 otherwise."""
    try:
        yield
    except ConfigError as exc:
        fail_usage(str(exc))
    except ScanragError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    except typer.Exit:
        raise
    except Exception as exc:
        fail_unexpected(exc)


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}", justify="left"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
        disable=not stderr.is_terminal,  # rich draws nothing off a terminal but a blank line
    )


def near(source: str) -> str:
    """A source path relative to the working directory when it lies below it (shorter to read);
    --json keeps the stored absolute path."""
    path = Path(source)
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else source


def print_json(payload: Any) -> None:
    text = json.dumps(payload, ensure_ascii=False, indent=2, default=str)
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except UnicodeEncodeError:  # a terminal that is not UTF-8, or a stray surrogate
        text = json.dumps(payload, ensure_ascii=True, indent=2, default=str)
    sys.stdout.write(text + "\n")


@app.command()
def parse(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to parse.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for <doc_id>.md and <doc_id>.json.")],
    parser: ParserOption = None,
    dpi: DpiOption = None,
    pdf_password: PasswordOption = None,
    ocr_url: OcrUrlOption = None,
    ocr_model: OcrModelOption = None,
    ocr_api_key: OcrKeyOption = None,
    fallback: FallbackOption = None,
    straighten: StraightenOption = None,
    json_out: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Parse documents to layout-aware Markdown and JSON (no index)."""
    from .fsutil import atomic_write
    from .ingest.loaders import discover, show
    from .ingest.markdown import document_markdown
    from .ingest.parsers import get_parser
    from .ingest.pipeline import parse_file

    setup_logging(verbose)
    settings = make_settings(
        parser=parser,
        dpi=dpi,
        pdf_password=pdf_password,
        ocr_url=ocr_url,
        ocr_model=ocr_model,
        ocr_api_key=ocr_api_key,
        fallback=fallback,
        straighten=straighten,
    )
    try:
        chosen = get_parser(settings)
    except ConfigError as exc:
        fail_usage(str(exc))
    found = discover(paths)
    errors = [message for _, message in found.errors]
    warnings: list[str] = []
    written: list[dict[str, Any]] = []
    pages = 0
    started = time.perf_counter()
    with progress() as bar:
        files_task = bar.add_task("files", total=len(found.files))
        for path, _mime in found.files:
            bar.update(files_task, description=f"parsing {show(path.name)}")
            page_task = bar.add_task("  pages", total=None)

            def on_page(done: int, total: int, task: Any = page_task) -> None:
                bar.update(task, completed=done, total=total)

            try:
                doc = parse_file(path, settings, chosen, on_page=on_page)
            except ScanragError as exc:
                errors.append(str(exc))
            except Exception as exc:
                logging.getLogger("scanrag").debug("unexpected failure", exc_info=True)
                errors.append(
                    f"{show(path)}: unexpected error ({type(exc).__name__}: {exc}); rerun with -v"
                )
            else:
                atomic_write(out / f"{doc.id}.json", doc.model_dump_json(indent=2))
                atomic_write(out / f"{doc.id}.md", document_markdown(doc))
                pages += len(doc.pages)
                warnings.extend(doc.warnings)
                written.append({"source": str(path), "doc_id": doc.id, "pages": len(doc.pages)})
            bar.remove_task(page_task)
            bar.advance(files_task)
    seconds = round(time.perf_counter() - started, 2)
    failed = len(found.files) - len(written) + len(found.errors)
    summary = {
        "files": len(written),
        "pages": pages,
        "skipped": len(found.skipped),
        "failed": failed,
        "seconds": seconds,
        "out": str(out),
        "documents": written,
        "errors": errors,
        "warnings": warnings,
    }
    for message in warnings:
        typer.echo(f"warning: {message}", err=True)
    for message in errors:
        typer.echo(f"error: {message}", err=True)
    if json_out:
        print_json(summary)
    else:
        typer.echo(
            f"parsed {len(written)} files ({pages} pages) in {seconds}s into {out}; "
            f"{len(found.skipped)} skipped, {failed} failed"
        )
    raise typer.Exit(1 if failed else 0)


DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Index folder (default: $SCANRAG_DATA_DIR or ./scanrag-data)."),
]
QdrantUrlOption = Annotated[
    str | None, typer.Option("--qdrant-url", help="Qdrant server or cluster (default: embedded).")
]


def parse_filters(values: list[str] | None) -> dict[str, Any]:
    """`--filter key=value` pairs: doc_id, source, label, page=N or page=A-B, and meta.KEY=VALUE
    (document metadata; a key given twice: either value)."""
    filters: dict[str, Any] = {}
    wanted: dict[str, list[Any]] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if sep and key.startswith("meta."):
            try:
                ((name, one),) = parse_pairs([f"{key.removeprefix('meta.')}={value}"]).items()
            except ValueError as exc:
                fail_usage(f"bad --filter {item!r}: {exc}")
            wanted.setdefault(name, []).append(one)
            continue
        if not sep or key not in ("doc_id", "source", "label", "page"):
            fail_usage(
                f"bad --filter {item!r}: use doc_id=, source=, label=, page=N / page=A-B or "
                "meta.KEY=VALUE"
            )
        if key == "page":
            low, dash, high = value.partition("-")
            if not low.strip().isdigit() or (dash and not high.strip().isdigit()):
                fail_usage(f"bad page filter {value!r}: use page=3 or page=2-5")
            if dash:
                filters["page_from"], filters["page_to"] = int(low), int(high)
            else:
                filters["page"] = int(low)
        elif key in filters:
            previous = filters[key]
            filters[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            filters[key] = value
    if wanted:
        filters["metadata"] = {k: v[0] if len(v) == 1 else v for k, v in wanted.items()}
    return filters


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders to index.")],
    data_dir: DataDirOption = None,
    parser: ParserOption = None,
    dpi: DpiOption = None,
    pdf_password: PasswordOption = None,
    qdrant_url: QdrantUrlOption = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            help="Processes that parse files (default: cores // 2, so 1 on 2 cores).",
        ),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="[ADDRESS]",
            help="Parse on Ray: alone, the cluster of this machine or a new local one; "
            "or an address such as ray://head:10001 (needs scanrag[ray]).",
        ),
    ] = None,
    ocr_url: Annotated[
        str | None,
        typer.Option(
            "--ocr-url",
            help="GLM-OCR server base URL; several, comma-separated, spread the requests.",
        ),
    ] = None,
    qdrant_shards: Annotated[
        int | None, typer.Option("--qdrant-shards", min=1, help="Shards of a new collection.")
    ] = None,
    qdrant_replicas: Annotated[
        int | None,
        typer.Option("--qdrant-replicas", min=1, help="Replication factor of a new collection."),
    ] = None,
    qdrant_write_consistency: Annotated[
        int | None,
        typer.Option(
            "--qdrant-write-consistency", min=1, help="Replicas that must confirm each write."
        ),
    ] = None,
    straighten: StraightenOption = None,
    tenant: TenantOption = None,
    meta: Annotated[
        list[str] | None,
        typer.Option(
            "--meta",
            help="Metadata for every document indexed, key=value (repeatable); documents "
            "already indexed get it too, without parsing.",
        ),
    ] = None,
    json_out: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Index files and folders; a second run only touches what changed."""
    from .ingest.loaders import show
    from .retrieval.index import Index
    from .retrieval.reports import IngestEvent

    setup_logging(verbose)
    try:
        metadata = parse_pairs(meta) if meta else None
    except ValueError as exc:
        fail_usage(f"bad --meta: {exc}")
    settings = make_settings(
        tenant=tenant,
        data_dir=data_dir,
        parser=parser,
        dpi=dpi,
        pdf_password=pdf_password,
        qdrant_url=qdrant_url,
        workers=workers,
        ray_address=ray,
        ocr_url=ocr_url,
        qdrant_shards=qdrant_shards,
        qdrant_replicas=qdrant_replicas,
        qdrant_write_consistency=qdrant_write_consistency,
        straighten=straighten,
    )
    with user_errors(), Index(settings) as index, progress() as bar:
        files_task = bar.add_task("files", total=None)
        pages_task = bar.add_task("  pages", total=None, visible=False)

        def on_progress(event: IngestEvent) -> None:
            if event.kind == "file":
                bar.update(
                    files_task,
                    total=event.files_total,
                    description=f"indexing {show(event.path.name)}",
                )
                bar.update(pages_task, completed=0, total=None, visible=True)
            elif event.kind == "page":
                bar.update(pages_task, completed=event.pages_done, total=event.pages_total)
            else:
                bar.update(files_task, completed=event.file_index)

        report = index.ingest(paths, on_progress=on_progress, metadata=metadata)
        bar.update(files_task, description="building the search index (HNSW)")
        index.optimize()
    for item in report.warnings:
        typer.echo(f"warning: {item.error}", err=True)
    for item in report.errors:
        typer.echo(f"error: {item.error}", err=True)
    if json_out:
        print_json(report.model_dump())
    else:
        typer.echo(
            f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
            f"removed {report.removed}, failed {report.failed} ({report.skipped} skipped); "
            f"{report.pages} pages parsed in {report.seconds:.1f}s"
        )
    raise typer.Exit(1 if report.failed else 0)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=100, help="Results.")] = 5,
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", help="doc_id=, source=, label=, page=N or A-B, meta.KEY=VALUE"),
    ] = None,
    mode: Annotated[
        str | None, typer.Option("--mode", help="hybrid (default), dense or sparse.")
    ] = None,
    data_dir: DataDirOption = None,
    qdrant_url: QdrantUrlOption = None,
    tenant: TenantOption = None,
    json_out: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Ranked chunks with the regions and boxes they came from."""
    from .retrieval.index import Index

    setup_logging(verbose)
    if mode not in (None, "hybrid", "dense", "sparse"):
        fail_usage(f"unknown --mode {mode!r}; use hybrid, dense or sparse")
    settings = make_settings(data_dir=data_dir, qdrant_url=qdrant_url, tenant=tenant)
    chosen = parse_filters(filters)
    with user_errors(), Index(settings) as index:
        hits = index.search(query, top_k=top_k, filters=chosen, mode=mode)  # type: ignore[arg-type]
    if json_out:
        print_json({"query": query, "hits": [hit.model_dump() for hit in hits]})
        return
    if not hits:
        typer.echo("no results")
    for rank, hit in enumerate(hits, start=1):
        where = ", ".join(f"p{r.page} {r.label} {list(r.bbox)}" for r in hit.regions[:3])
        typer.echo(f"{rank}. {near(hit.source)}  score={hit.score:.3f}  [{where}]")
        snippet = " ".join(hit.text.split())
        typer.echo(f"   {snippet[:200]}{'…' if len(snippet) > 200 else ''}")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="A question about the indexed documents.")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, max=50, help="Chunks to read.")] = 5,
    filters: Annotated[
        list[str] | None,
        typer.Option("--filter", help="doc_id=, source=, label=, page=N or A-B, meta.KEY=VALUE"),
    ] = None,
    answerer: Annotated[
        str | None, typer.Option("--answerer", help="extractive (default) or openai.")
    ] = None,
    llm_url: Annotated[
        str | None, typer.Option("--llm-url", help="OpenAI-compatible base URL.")
    ] = None,
    llm_model: Annotated[str | None, typer.Option("--llm-model", help="Model name.")] = None,
    data_dir: DataDirOption = None,
    qdrant_url: QdrantUrlOption = None,
    tenant: TenantOption = None,
    json_out: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Answer a question; citations point at page regions (same JSON as POST /v1/query)."""
    from .api.schemas import QueryResponse
    from .retrieval.index import Index

    setup_logging(verbose)
    settings = make_settings(
        data_dir=data_dir,
        qdrant_url=qdrant_url,
        answerer=answerer,
        llm_url=llm_url,
        llm_model=llm_model,
        tenant=tenant,
    )
    with user_errors(), Index(settings) as index:
        result = index.ask(question, top_k=top_k, filters=parse_filters(filters))
    if json_out:
        print_json(QueryResponse.of(result).model_dump(mode="json"))
        return
    typer.echo(result.answer)
    for citation in result.citations:
        box = ",".join(map(str, citation.bbox))
        where = f"{near(citation.source)} page {citation.page} {citation.label}"
        typer.echo(f"  [{citation.n}] {where} bbox={box}")
        for line in citation.lines:
            typer.echo(f"      {line.text!r} at {','.join(map(str, line.bbox))}")


def listening_on(host: str, settings: Settings) -> Settings:
    """The name a server listens on is one it answers to (without a key, `Host` is checked)."""
    if host not in ("0.0.0.0", "::", "") and host not in settings.allowed_hosts:
        settings = settings.model_copy(update={"allowed_hosts": [*settings.allowed_hosts, host]})
    return settings


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    data_dir: DataDirOption = None,
    qdrant_url: QdrantUrlOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs). Without SCANRAG_API_KEY, keep the default
    --host 127.0.0.1 unless the network is trusted."""
    import uvicorn

    from .api.app import create_app

    setup_logging(verbose)
    settings = listening_on(host, make_settings(data_dir=data_dir, qdrant_url=qdrant_url))
    with user_errors():
        application = create_app(settings)  # a bad keys file: one line
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level="debug" if verbose else "info",
        access_log=False,  # scanrag logs its own access lines (SCANRAG_ACCESS_LOG)
        # then the running ingest stops; uvicorn annotates an int, and waits with asyncio,
        # which takes the float
        timeout_graceful_shutdown=settings.shutdown_timeout,  # type: ignore[arg-type]
    )


@app.command("mcp")
def mcp_server(
    transport: Annotated[
        str,
        typer.Option(
            "--transport",
            help="stdio (an assistant spawns the server) or http (streamable HTTP at /mcp).",
        ),
    ] = "stdio",
    host: Annotated[str, typer.Option("--host", help="With http: interface.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="With http: TCP port.")] = 8000,
    data_dir: DataDirOption = None,
    qdrant_url: QdrantUrlOption = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            help="stdio: the tenant whose documents the tools see; http: the tenant of "
            "requests when the server has no API keys (with keys, the key's).",
        ),
    ] = None,
    verbose: VerboseOption = False,
) -> None:
    """Serve the index to MCP clients (assistants, agents): tools search, ask, get_region_image
    and list_documents. `scanrag serve` has the same endpoint at /mcp. Needs scanrag[mcp]."""
    from .api.mcp_server import build_server, http_app, tenant_of
    from .retrieval.index import Index

    setup_logging(verbose)
    if transport not in ("stdio", "http"):
        fail_usage(f"unknown --transport {transport!r}; use stdio or http")
    settings = listening_on(
        host, make_settings(data_dir=data_dir, qdrant_url=qdrant_url, tenant=tenant)
    )
    index: Index | None = None

    def opened(request: Any) -> Index:
        """stdio: the index as --tenant; http: as the tenant the guard found."""
        assert index is not None, "tools are called only once the index is open"
        return index if request is None else index.as_tenant(tenant_of(request))

    with user_errors():
        server = build_server(opened)  # first: without the mcp package, one line
        with Index(settings) as index:
            index.store  # noqa: B018 - open it now: a data dir in use by `serve` fails here
            if transport == "stdio":
                server.run("stdio")  # stdout is the protocol's from here on
                return
            import uvicorn

            uvicorn.run(
                http_app(server, settings),
                host=host,
                port=port,
                log_level="debug" if verbose else "info",
                access_log=False,  # scanrag logs its own access lines (SCANRAG_ACCESS_LOG)
            )


@app.command("eval")
def evaluate(
    set_dir: Annotated[
        Path, typer.Argument(help="A labelled set: documents, <name>.gt.json, qa.jsonl.")
    ],
    parser: ParserOption = None,
    k: Annotated[
        int, typer.Option("--k", min=1, max=50, help="Chunks retrieved per question.")
    ] = 5,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Keep the index here (default: a temp dir). A reused one serves cached parses, "
            "so no parse time is measured.",
        ),
    ] = None,
    straighten: StraightenOption = None,
    per_doc: Annotated[
        bool,
        typer.Option(
            "--per-doc",
            help='Ask every question within its own file (as qa.jsonl rows with "scope": '
            '"document" always are).',
        ),
    ] = False,
    tenant: TenantOption = None,
    json_out: JsonOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Score parsing, retrieval, answers and citation boxes on a labelled set."""
    from .evaluate import run_eval

    setup_logging(verbose)
    if not (set_dir / "qa.jsonl").exists() and not list(set_dir.glob("*.gt.json")):
        fail_usage(f"{set_dir} holds no qa.jsonl or *.gt.json: not a labelled set (see README)")
    settings = make_settings(parser=parser, straighten=straighten, tenant=tenant)
    with user_errors(), stderr.status("evaluating") as status:
        report = run_eval(
            set_dir, settings, k=k, data_dir=data_dir, on_progress=status.update, per_doc=per_doc
        )
    if json_out:
        print_json(report.model_dump())
        return
    typer.echo(format_eval(report))


def format_eval(report: Any) -> str:
    """The evaluation as a readable table."""
    asked = report.answers["all"].questions if report.scoped else 0
    scope = f"{report.scoped} of {asked} questions asked within their own file (a source filter)"
    out = [
        f"set {report.set_dir}: {report.documents} documents, {report.pages} pages",
        f"parser {report.parser}, k={report.k}",
        *([scope] if report.scoped else []),
        "",
        f"{'parsing':<12}{'lines':>8}{'recall':>10}{'CER':>10}",
    ]
    for key, score in report.parsing.items():
        out.append(f"  {key:<10}{score.lines:>8}{score.recall:>10.3f}{score.cer:>10.4f}")
    out += ["", f"{'retrieval':<12}{'questions':>10}{'hit@1':>8}{f'hit@{report.k}':>8}{'MRR':>8}"]
    for key, score in report.retrieval.items():
        numbers = f"{score.hit_at_1:>8.3f}{score.hit_at_k:>8.3f}{score.mrr:>8.3f}"
        out.append(f"  {key:<10}{score.questions:>10}{numbers}")
    overall = report.retrieval.get("all")
    if overall and overall.tied_first:
        out += [
            f"  {overall.tied_first} of {overall.questions} questions tie for first place (equal"
            " scores): hit@1 and MRR",
            "  then depend on how the store orders ties and may change from run to run",
        ]
    out += [
        "",
        f"{'answers':<12}{'questions':>10}{'contains':>10}{'not found':>11}{'cited':>8}{'IoU':>8}",
    ]
    for key, score in report.answers.items():
        numbers = (
            f"{score.contains:>10.3f}{score.not_found:>11.3f}"
            f"{score.citation_hit:>8.3f}{score.mean_iou:>8.3f}"
        )
        out.append(f"  {key:<10}{score.questions:>10}{numbers}")
    if report.parse_seconds_per_page is None:
        parse = "parse cached (no page parsed in this run; a fresh --data-dir times it)"
    else:
        parse = f"parse {report.parse_seconds_per_page:.2f} s/page ({report.pages_parsed} pages)"
    out += [
        "",
        "contains: holds the gold answer; not found: no citation; cited: a cited box covers",
        "half the evidence box or more; IoU: mean IoU of the best cited box with the evidence box",
        "",
        f"time          {parse}",
        f"              query p50 {report.query_p50_ms:.0f} ms, p95 {report.query_p95_ms:.0f} ms"
        " (search + answer, in process)",
    ]
    out += [f"failed: {error}" for error in report.failed]
    return "\n".join(out)


@app.callback()
def main() -> None:
    """Index folders of scanned documents and ask questions whose answers cite page regions."""
