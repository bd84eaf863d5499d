"""The `scanrag` command: parse, ingest, search, ask, serve, eval.

stdout carries results (exactly one JSON document with --json); progress bars, warnings and
errors go to stderr. Exit status: 0 all good, 1 some inputs failed, 2 usage errors.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .config import Settings
from .errors import ConfigError, ScanragError

app = typer.Typer(
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
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Log details and tracebacks.")]


def setup_logging(verbose: bool) -> None:
    """Everything logs to stderr; third-party model loaders are kept quiet unless verbose."""
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )
    from .ingest.parsers.embedded import quiet_model_logs

    if not verbose:
        quiet_model_logs()


def make_settings(**overrides: Any) -> Settings:
    """Settings from env / scanrag.toml with the command line's explicit options on top."""
    try:
        return Settings(**{key: value for key, value in overrides.items() if value is not None})
    except Exception as exc:
        fail_usage(f"invalid settings: {exc}")


def fail_usage(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description}", justify="left"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr,
        transient=True,
    )


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")


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
    )
    try:
        chosen = get_parser(settings)
    except ConfigError as exc:
        fail_usage(str(exc))
    found = discover(paths)
    errors = [message for _, message in found.errors]
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
                errors.extend(doc.warnings)
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
    }
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


@app.callback()
def main() -> None:
    """Index folders of scanned documents and ask questions whose answers cite page regions."""
