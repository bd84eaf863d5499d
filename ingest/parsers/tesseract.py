"""`tesseract`: Tesseract 5 through its TSV output (word boxes → lines → blocks).

Runs the `tesseract` binary (`apt-get install tesseract-ocr tesseract-ocr-chi-sim`) rather
than pytesseract: one subprocess call with the page as PNG on stdin is all pytesseract would
do, without the extra dependency. Tesseract's own lines span a whole row of a form or
receipt ("合计 … ¥165.04"); they are split at wide gaps so keys and values become separate
lines, as RapidOCR reports them, and go through the same `build_blocks` geometry.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import statistics
import subprocess
from typing import Any

from pydantic import Field

from ...config import Settings
from ...errors import ConfigError
from ..blocks import build_blocks
from ..loaders import PageImage
from ..model import BBox, Line, union_all
from .base import Block, ParserOptions

INSTALL_HINT = "apt-get install tesseract-ocr tesseract-ocr-chi-sim (or brew install tesseract)"
#: Words further apart than this many line heights belong to different lines.
SPLIT_GAP_HEIGHTS = 2.0
#: Seconds one page may take.
TIMEOUT = 300


def _wide(char: str) -> bool:
    """CJK ideographs, kana, full-width forms and CJK punctuation."""
    return "\u2e80" <= char <= "\u9fff" or "\uf900" <= char <= "\uffef"


def join_words(words: list[tuple[str, BBox]]) -> str:
    """Words of one line as text. Tesseract splits Latin text at spaces but reports Chinese
    a character or two per "word": CJK joins CJK without a space, and punctuation or digits
    join CJK when they touch."""
    text = ""
    previous: BBox | None = None
    for word, box in words:
        if previous is not None:
            left, right = text[-1], word[0]
            tight = box.x0 - previous.x1 < 0.5 * max(box.height, previous.height)
            both = _wide(left) and _wide(right)
            if not (both or (tight and (_wide(left) or _wide(right)))):
                text += " "
        text += word
        previous = box
    return text


def lines_from_tsv(tsv: str) -> list[Line]:
    """Tesseract TSV rows → lines with pixel boxes and 0–1 confidences."""
    groups: dict[tuple[str, ...], list[tuple[str, BBox, float]]] = {}
    for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
        text = (row.get("text") or "").strip()
        if row.get("level") != "5" or not text:
            continue
        try:
            x, y = int(row["left"]), int(row["top"])
            box = BBox(x, y, x + int(row["width"]), y + int(row["height"]))
            conf = float(row["conf"])
        except (KeyError, TypeError, ValueError):
            continue
        key = (row["page_num"], row["block_num"], row["par_num"], row["line_num"])
        groups.setdefault(key, []).append((text, box, conf))
    lines = []
    for words in groups.values():
        words.sort(key=lambda word: word[1].x0)
        height = statistics.median(word[1].height for word in words)
        run = [words[0]]
        for word in words[1:]:
            if word[1].x0 - run[-1][1].x1 > SPLIT_GAP_HEIGHTS * height:
                lines.append(_line(run))
                run = []
            run.append(word)
        lines.append(_line(run))
    return lines


def _line(words: list[tuple[str, BBox, float]]) -> Line:
    confs = [conf for _, _, conf in words if conf >= 0]
    return Line(
        text=join_words([(text, box) for text, box, _ in words]),
        bbox=union_all([box for _, box, _ in words]),
        confidence=round(statistics.fmean(confs) / 100, 4) if confs else None,
    )


class TesseractOptions(ParserOptions):
    tesseract_lang: str = Field(serialization_alias="lang")


class TesseractParser:
    name = "tesseract"

    def __init__(self, options: TesseractOptions) -> None:
        binary = shutil.which("tesseract")
        if binary is None:
            raise ConfigError(f"the tesseract parser needs the tesseract program: {INSTALL_HINT}")
        self.binary = binary
        self.options = options
        self.lang = options.tesseract_lang
        version = self._run(["--version"]).splitlines()
        self.version = version[0].split()[-1] if version else "unknown"
        available = set(self._run(["--list-langs"]).split()[1:])  # first line is a header
        missing = [lang for lang in self.lang.split("+") if lang not in available]
        if missing:
            raise ConfigError(
                f"tesseract has no {'+'.join(missing)} language data (installed: "
                f"{', '.join(sorted(available)) or 'none'}); install tesseract-ocr-"
                f"{missing[0].replace('_', '-')} or change SCANRAG_TESSERACT_LANG"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> TesseractParser:
        return cls(TesseractOptions.of(settings))

    def config(self) -> dict[str, Any]:
        return self.options.fingerprint()

    def _run(self, args: list[str], data: bytes | None = None) -> str:
        # Tesseract's OpenMP threads fight each other on small machines; its docs advise 1.
        env = {**os.environ, "OMP_THREAD_LIMIT": os.environ.get("OMP_THREAD_LIMIT", "1")}
        result = subprocess.run(
            [self.binary, *args], input=data, capture_output=True, timeout=TIMEOUT, env=env
        )
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"tesseract failed: {message[-1] if message else result.returncode}")
        return result.stdout.decode(errors="replace")

    def parse_page(self, page: PageImage) -> list[Block]:
        buffer = io.BytesIO()
        page.image.save(buffer, format="PNG")
        tsv = self._run(
            ["stdin", "stdout", "-l", self.lang, "--dpi", str(page.dpi), "tsv"], buffer.getvalue()
        )
        return build_blocks(lines_from_tsv(tsv), [], page.width, page.height, self.name)
