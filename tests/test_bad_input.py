"""Bad input: every unreadable file gets one clear line naming it, nothing crashes, and the
other files of the same run are still parsed and written."""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pymupdf
import pytest
from PIL import Image
from typer.testing import CliRunner

import scanrag
from scanrag import (
    CorruptFile,
    Document,
    EncryptedFile,
    LimitExceeded,
    ScanragError,
    Settings,
    UnsupportedFile,
    testing,
)
from scanrag.cli import app
from scanrag.ingest.pipeline import parse_file


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header (checksums right) whose IHDR claims `width` × `height` RGB pixels."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    testing.form().image().save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def encrypted_pdf(path: Path) -> None:
    pdf = pymupdf.open()
    pdf.new_page().insert_text((72, 72), "Salary statement for June, confidential", fontsize=12)
    pdf.save(path, encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="owner", user_pw="s3cret")
    pdf.close()


#: A PDF whose page tree is empty (PyMuPDF refuses to write one, so it is spelled out).
NO_PAGES_PDF = (
    b"%PDF-1.4\n"
    b"1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
    b"2 0 obj <</Type /Pages /Kids [] /Count 0>> endobj\n"
    b"trailer <</Root 1 0 R>>\n%%EOF\n"
)

#: name → (how to write it, the error type, words the message must hold)
BAD_FILES = {
    "empty.pdf": (lambda p: p.write_bytes(b""), CorruptFile, "the file is empty (0 bytes)"),
    "random.pdf": (
        lambda p: p.write_bytes(os.urandom(8192)),
        UnsupportedFile,
        "not a supported document type",
    ),
    "truncated.jpg": (
        lambda p: p.write_bytes(jpeg_bytes()[:20_000]),
        CorruptFile,
        "cannot be decoded",
    ),
    "encrypted.pdf": (encrypted_pdf, EncryptedFile, "the PDF is encrypted; pass --pdf-password"),
    "no_pages.pdf": (lambda p: p.write_bytes(NO_PAGES_PDF), CorruptFile, "the PDF has no pages"),
    "huge.png": (
        lambda p: p.write_bytes(png_claiming(100_000, 100_000)),
        LimitExceeded,
        "pixels",
    ),
}


def write_bad(folder: Path, name: str) -> Path:
    path = folder / name
    BAD_FILES[name][0](path)
    return path


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_raises_one_clear_error_naming_it(tmp_path, name):
    path = write_bad(tmp_path, name)
    _, error_type, words = BAD_FILES[name]

    with pytest.raises(ScanragError) as info:
        scanrag.parse(path)

    message = str(info.value)
    assert type(info.value) is error_type
    assert message.startswith(f"{path}: ")
    assert words in message
    assert "\n" not in message


def test_encrypted_pdf_opens_with_its_password(tmp_path):
    path = write_bad(tmp_path, "encrypted.pdf")
    doc = scanrag.parse(path, parser="pdf-text", pdf_password="s3cret")
    assert doc.regions()[0].text == "Salary statement for June, confidential"
    with pytest.raises(EncryptedFile, match="the password given is wrong"):
        scanrag.parse(path, parser="pdf-text", pdf_password="guess")


def test_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    path = tmp_path / "poster.png"
    path.write_bytes(png_claiming(3000, 2000))
    with pytest.raises(LimitExceeded) as info:
        scanrag.parse(path, max_pixels=5_000_000)
    assert str(info.value) == (
        f"{path}: the image is 3000×2000 pixels, above the limit of 5,000,000; "
        "downscale it or raise SCANRAG_MAX_PIXELS"
    )


def test_image_header_under_the_limit_with_missing_data_is_corrupt(tmp_path):
    path = tmp_path / "cut.png"
    path.write_bytes(png_claiming(3000, 2000))
    with pytest.raises(CorruptFile, match=r"cut\.png: the image cannot be decoded"):
        scanrag.parse(path)


def test_too_many_pages_is_refused(tmp_path):
    path = testing.text_pdf([[(72, 72, f"page {n}", 12)] for n in range(5)], tmp_path / "l.pdf")
    with pytest.raises(LimitExceeded, match=r"l\.pdf: 5 pages, more than the limit of 3"):
        scanrag.parse(path, max_pages=3)


# --- one bad page -----------------------------------------------------------------------


class FailsOnPageTwo:
    """A parser that breaks on page 2, as a model might on one odd page."""

    name = "flaky"
    version = "1"

    def config(self):
        return {}

    def parse_page(self, page):
        if page.number == 2:
            raise RuntimeError("model exploded")
        return []


def test_one_page_that_fails_to_parse_does_not_fail_the_file(tmp_path):
    path = testing.text_pdf([[(72, 72, f"page {n}", 12)] for n in (1, 2, 3)], tmp_path / "r.pdf")
    doc = parse_file(path, Settings(), FailsOnPageTwo())
    assert [page.error for page in doc.pages] == [
        None,
        f"{path}: page 2 could not be parsed (RuntimeError: model exploded)",
        None,
    ]
    assert doc.warnings == [doc.pages[1].error]


def test_a_file_whose_every_page_fails_is_a_failure(tmp_path):
    path = testing.text_pdf([[(72, 72, "only page", 12)]], tmp_path / "one.pdf")

    class AlwaysFails(FailsOnPageTwo):
        def parse_page(self, page):
            raise RuntimeError("model exploded")

    with pytest.raises(CorruptFile, match=r"one\.pdf: page 1 could not be parsed"):
        parse_file(path, Settings(), AlwaysFails())


def test_a_tiff_page_over_the_pixel_limit_fails_alone(tmp_path):
    path = tmp_path / "batch.tiff"
    small, big = Image.new("RGB", (400, 300), "white"), Image.new("RGB", (2000, 1500), "white")
    small.save(path, save_all=True, append_images=[big, small])

    doc = scanrag.parse(path, parser="pdf-text", max_pixels=1_000_000)

    assert [page.error is None for page in doc.pages] == [True, False, True]
    assert "2000×1500 pixels, above the limit" in doc.pages[1].error
    assert doc.pages[1].error.startswith(f"{path}: ")


# --- the command line -------------------------------------------------------------------


def scanrag_command() -> list[str]:
    """The installed `scanrag` script beside this Python, else the same entry point."""
    script = Path(sys.executable).with_name("scanrag")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from scanrag.cli import app; app(prog_name='scanrag')"]


@pytest.fixture(scope="module")
def inbox(tmp_path_factory) -> Path:
    """Two good documents, a note, and every kind of bad file, in one folder."""
    folder = tmp_path_factory.mktemp("inbox")
    for name in BAD_FILES:
        write_bad(folder, name)
    testing.text_pdf([[(72, 100, "Statement of account for June 2025", 14)]], folder / "a.pdf")
    sheet = testing.Sheet(900, 500)
    sheet.write(60, 80, "Delivery note DN-5521", size=44)
    sheet.write(60, 200, "Received by: Tariq Tanaka")
    sheet.image(noise=2, seed=5).save(folder / "b_delivery.png")
    (folder / "notes.txt").write_text("scanned on the office copier\n")
    return folder


@pytest.mark.slow  # runs the CLI in a subprocess
def test_cli_run_with_bad_files_writes_the_good_ones_and_exits_1(inbox, tmp_path):
    out = tmp_path / "parsed"
    result = subprocess.run(
        [*scanrag_command(), "parse", str(inbox), "--out", str(out), "--json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )

    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)  # stdout is exactly one JSON document
    assert (summary["files"], summary["pages"], summary["skipped"], summary["failed"]) == (
        2,
        2,
        1,
        len(BAD_FILES),
    )
    error_lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert len(error_lines) == len(BAD_FILES)
    for name in BAD_FILES:
        (line,) = [line for line in error_lines if f"{inbox / name}:" in line]
        assert line.startswith("error: ")
        assert BAD_FILES[name][2] in line
    assert summary["errors"] == [line.removeprefix("error: ") for line in error_lines]

    written = {entry["source"]: entry["doc_id"] for entry in summary["documents"]}
    assert sorted(written) == [str(inbox / "a.pdf"), str(inbox / "b_delivery.png")]
    for doc_id in written.values():
        doc = Document.model_validate_json((out / f"{doc_id}.json").read_text())
        assert doc.id == doc_id
        assert (out / f"{doc_id}.md").read_text().startswith("<!-- page 1 ")
    delivery = Document.model_validate_json(
        (out / f"{written[str(inbox / 'b_delivery.png')]}.json").read_text()
    )
    read = "\n".join(region.text for region in delivery.regions())
    assert read.splitlines() == ["Delivery note DN-5521", "Received by: Tariq Tanaka"]
    assert sorted(path.name for path in out.iterdir()) == sorted(
        f"{doc_id}.{ext}" for doc_id in written.values() for ext in ("json", "md")
    )


def test_cli_prints_a_summary_line_and_one_error_line_per_bad_file(inbox, tmp_path):
    out = tmp_path / "parsed"
    runner = CliRunner()
    files = [str(inbox / "a.pdf"), str(inbox / "empty.pdf"), str(inbox / "notes.txt")]

    result = runner.invoke(app, ["parse", *files, "--out", str(out), "--parser", "pdf-text"])

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: {inbox / 'empty.pdf'}: the file is empty (0 bytes); copy or scan it again",
        f"error: {inbox / 'notes.txt'}: not a supported document type "
        "(expected PDF, PNG, JPEG, WebP, BMP or TIFF, judged by content); "
        "convert it to one of these or leave it out",
    ]
    (line,) = result.stdout.splitlines()
    assert line.startswith("parsed 1 files (1 pages) in ")
    assert line.endswith(f"s into {out}; 0 skipped, 2 failed")
    assert len(list(out.glob("*.md"))) == 1


def test_cli_exits_0_when_everything_parsed(inbox, tmp_path):
    folder = tmp_path / "clean"
    folder.mkdir()
    (folder / "a.pdf").write_bytes((inbox / "a.pdf").read_bytes())
    (folder / "a.json").write_text("{}")  # skipped, not a failure

    result = CliRunner().invoke(app, ["parse", str(folder), "--out", str(tmp_path / "o")])

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.strip().endswith("1 skipped, 0 failed")


@pytest.mark.parametrize(
    "arguments",
    [
        ["parse", "x.pdf", "--out", "o", "--parser", "tesseract-9"],
        ["parse", "x.pdf", "--out", "o", "--dpi", "5"],
        ["parse", "x.pdf"],  # no --out
        ["parse", "--out", "o"],  # nothing to parse
    ],
)
def test_cli_usage_errors_exit_2_without_a_traceback(tmp_path, monkeypatch, arguments):
    monkeypatch.chdir(tmp_path)
    testing.text_pdf([[(72, 72, "a good file", 12)]], tmp_path / "x.pdf")
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()
