"""Chunks: regions in reading order up to a token budget, tables split by whole rows with their
header repeated, the heading path as context, and provenance beside the text, not inside it."""

from __future__ import annotations

import random
import re

from scanrag.ingest.layout import markdown_table
from scanrag.ingest.model import BBox, Document, Line, Page, ParserInfo, Region, union_all
from scanrag.retrieval.chunking import HEADING_SEPARATOR, Chunk, chunk_document, count_tokens
from scanrag.retrieval.points import chunk_payload

WIDTH, HEIGHT = 1654, 2339
DOC_ID = "0123456789abcdef"
WORDS = "budget supplier contract warehouse audit deadline committee forecast period".split()


class Builder:
    """Lays regions out top to bottom, one line box per text line, like a parser would."""

    def __init__(self) -> None:
        self.pages: list[Page] = []
        self.y = 0
        self.new_page()

    def new_page(self) -> None:
        self.pages.append(Page(number=len(self.pages) + 1, width=WIDTH, height=HEIGHT, dpi=200))
        self.y = 100

    def add(self, label: str, lines: list[str], markdown: str | None = None) -> Region:
        page = self.pages[-1]
        boxes = []
        for text in lines:
            boxes.append(BBox(150, self.y, 150 + 20 * len(text), self.y + 40))
            self.y += 60
        self.y += 40
        bbox = union_all(boxes)
        region = Region(
            id=f"{DOC_ID}:p{page.number}:r{len(page.regions)}",
            page=page.number,
            index=len(page.regions),
            label=label,
            bbox=bbox,
            bbox_norm=bbox.to_norm(WIDTH, HEIGHT),
            text="\n".join(lines),
            markdown=markdown if markdown is not None else "\n".join(lines),
            lines=[Line(text=t, bbox=b) for t, b in zip(lines, boxes, strict=True)],
        )
        page.regions.append(region)
        return region

    def title(self, text: str, level: int = 1) -> Region:
        return self.add("title", [text], markdown=f"{'#' * level} {text}")

    def table(self, rows: list[list[str]]) -> Region:
        """A table whose lines are its cells, row by row (as OCR reads them)."""
        page = self.pages[-1]
        lines, boxes = [], []
        for row in rows:
            x = 150
            for cell in row:
                box = BBox(x, self.y, x + 18 * len(cell), self.y + 40)
                lines.append(Line(text=cell, bbox=box))
                boxes.append(box)
                x += 400
            self.y += 60
        self.y += 40
        bbox = union_all(boxes)
        region = Region(
            id=f"{DOC_ID}:p{page.number}:r{len(page.regions)}",
            page=page.number,
            index=len(page.regions),
            label="table",
            bbox=bbox,
            bbox_norm=bbox.to_norm(WIDTH, HEIGHT),
            text="\n".join(" | ".join(row) for row in rows),
            markdown=markdown_table(rows),
            lines=lines,
        )
        page.regions.append(region)
        return region

    def document(self) -> Document:
        return Document(
            id=DOC_ID,
            source="/docs/report.pdf",
            sha256=DOC_ID * 4,
            mime="application/pdf",
            pages=self.pages,
            parser=ParserInfo(name="test", version="1", fingerprint="fp"),
        )


def sentence(rng: random.Random, words: int, tag: str) -> str:
    return f"{tag} " + " ".join(rng.choice(WORDS) for _ in range(words - 1))


def region_text(region: Region) -> str:
    return region.markdown if region.label == "table" else region.text


def all_regions(chunks: list[Chunk]):
    return [(chunk, region) for chunk in chunks for region in chunk.regions]


def long_document() -> tuple[Document, Region]:
    rng = random.Random(3)
    b = Builder()
    b.title("Annual report")
    b.title("Operations", level=2)
    for i in range(12):
        b.add("text", [sentence(rng, 9, f"para{i}a"), sentence(rng, 9, f"para{i}b")])
    b.title("Line items", level=2)
    table = b.table(
        [["Item", "Qty", "Amount"]]
        + [[f"Part {i:02d}", str(i % 9 + 1), f"${i * 7}.50"] for i in range(1, 41)]
    )
    b.new_page()
    b.title("Outlook", level=2)
    for i in range(12, 20):
        b.add("text", [sentence(rng, 12, f"para{i}a")])
    return b.document(), table


def test_every_chunk_fits_the_token_budget_heading_included():
    doc, _ = long_document()
    for budget in (48, 80, 200):
        chunks = chunk_document(doc, max_tokens=budget)
        assert len(chunks) > 1
        for chunk in chunks:
            assert count_tokens(chunk.text) <= budget, (budget, chunk.text)


def test_regions_keep_reading_order_and_nothing_is_lost_or_repeated():
    doc, table = long_document()
    chunks = chunk_document(doc, max_tokens=64)
    texts = [
        region.text
        for page in doc.pages
        for region in page.regions
        if region.label != "table" and region.id != table.id
    ]
    covered = [
        chunk.text[r.start : r.end] for chunk, r in all_regions(chunks) if r.label != "table"
    ]
    assert covered == texts
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert len({chunk.id for chunk in chunks}) == len(chunks)


def test_a_large_table_is_split_into_row_groups_each_starting_with_the_header():
    doc, table = long_document()
    header = "\n".join(table.markdown.split("\n")[:2])  # header row + separator row
    data_rows = table.markdown.split("\n")[2:]
    chunks = chunk_document(doc, max_tokens=80)
    parts = [(chunk, r) for chunk, r in all_regions(chunks) if r.region_id == table.id]
    assert len(parts) >= 3
    seen: list[str] = []
    for chunk, part in parts:
        text = chunk.text[part.start : part.end]
        assert text.startswith(header + "\n")
        rows = text.split("\n")[2:]
        assert rows and all(row in data_rows for row in rows)  # whole rows only
        seen.extend(rows)
        assert count_tokens(chunk.text) <= 80
    assert seen == data_rows  # every row once, in order


def test_a_row_group_is_boxed_by_its_own_rows_only():
    # Cells such as "7" or "25" also occur inside other rows ("$1,187.50", "$2,250.00");
    # a part's box must still be the box of its own rows (the first part's include the
    # header row: its lines are cited from there).
    b = Builder()
    rows = [["Item", "Qty", "Amount"]]
    rows += [[f"Cable {i}", str(i % 9 + 1), f"${i}1,{i % 9 + 1}87.50"] for i in range(1, 31)]
    table = b.table(rows)
    row_boxes = [
        union_all([line.bbox for line in table.lines[i * 3 : i * 3 + 3]]) for i in range(len(rows))
    ]
    chunks = chunk_document(b.document(), max_tokens=60)
    parts = [(chunk, r) for chunk, r in all_regions(chunks) if r.region_id == table.id]
    assert len(parts) >= 3
    for number, (chunk, part) in enumerate(parts):
        text = chunk.text[part.start : part.end]
        own = [data_row_index(rows, row) for row in text.split("\n")[2:]]
        own = [0, *own] if number == 0 else own
        expected = union_all([row_boxes[i] for i in own])
        assert part.bbox == expected, (own, part.bbox, expected)
        assert part.bbox_norm == expected.to_norm(WIDTH, HEIGHT)
        for line in part.lines:
            assert chunk.text[line.start : line.end] == line.text
            assert any(row_boxes[i].coverage_of(line.bbox) == 1.0 for i in own)


def test_the_header_row_of_a_split_table_is_cited_from_its_first_part():
    # In a form read as a table the "header" is the first row of fields ("Name | Ann Lee"):
    # its lines must be in some part, or no answer can cite them.
    b = Builder()
    rows = [["Name", "Ann Lee"]] + [[f"Field {i}", f"value {i}"] for i in range(1, 31)]
    table = b.table(rows)
    chunks = chunk_document(b.document(), max_tokens=60)
    parts = [r for _, r in all_regions(chunks) if r.region_id == table.id]
    assert len(parts) >= 3
    cited = [[line.text for line in part.lines] for part in parts]
    assert cited[0][:2] == ["Name", "Ann Lee"]
    assert all("Ann Lee" not in texts for texts in cited[1:])
    assert sum(len(texts) for texts in cited) == len(table.lines)  # every line once


def test_a_short_line_found_again_far_below_does_not_drop_the_lines_in_between():
    # The first row reads "Serial no 4 2" (three lines side by side); a row far below is
    # exactly "2". Matching the line "2" there would leave every line in between without a
    # row, and so out of every part.
    b = Builder()
    fields = [f"Field {i} value {i}" for i in range(3, 40)]
    lines = ["Serial no", "4", "2", *fields, "2"]
    region = b.add("text", lines)
    region.text = region.markdown = "\n".join(["Serial no 4 2", *fields, "2"])
    chunks = chunk_document(b.document(), max_tokens=40)
    parts = [r for _, r in all_regions(chunks) if r.region_id == region.id]
    assert len(parts) > 2
    assert [line.text for part in parts for line in part.lines] == lines


def data_row_index(rows: list[list[str]], markdown_row: str) -> int:
    cells = [cell.strip() for cell in markdown_row.strip("|").split("|")]
    return rows.index(cells)


def test_a_row_longer_than_the_budget_stays_whole():
    b = Builder()
    long_cell = " ".join(f"word{i}" for i in range(60))
    rows = [["Name", "Notes"], ["short", "one"], ["long", long_cell], ["after", "two"]]
    table = b.table(rows)
    chunks = chunk_document(b.document(), max_tokens=40)
    texts = [c.text[r.start : r.end] for c, r in all_regions(chunks) if r.region_id == table.id]
    long_row = markdown_table(rows).split("\n")[3]
    assert sum(long_row in text.split("\n") for text in texts) == 1
    assert all(text.startswith("| Name | Notes |\n| --- | --- |\n") for text in texts)


def test_the_heading_path_is_prepended_and_follows_the_section_levels():
    rng = random.Random(1)
    b = Builder()
    b.title("Invoice INV-1001")
    b.title("Line items", level=2)
    b.add("text", [sentence(rng, 30, "alpha")])
    b.add("text", [sentence(rng, 30, "beta")])
    b.title("Terms", level=2)
    b.add("text", [sentence(rng, 30, "gamma")])
    b.add("text", [sentence(rng, 30, "delta")])
    chunks = chunk_document(b.document(), max_tokens=40)
    by_tag = {chunk.text.split("\n")[-1].split()[0]: chunk for chunk in chunks}
    assert by_tag["beta"].heading == f"Invoice INV-1001{HEADING_SEPARATOR}Line items"
    assert by_tag["beta"].text.startswith(by_tag["beta"].heading + "\n")
    assert by_tag["delta"].heading == f"Invoice INV-1001{HEADING_SEPARATOR}Terms"  # not Line items
    # A chunk opened by a title carries the titles above it, not the title twice.
    first = chunks[0]
    assert first.heading == ""
    assert first.text.startswith("Invoice INV-1001\nLine items\nalpha")
    terms = next(chunk for chunk in chunks if "Terms" in chunk.text.split("\n")[1:])
    assert terms.heading == "Invoice INV-1001"
    # The heading is context: no region covers it.
    for chunk in chunks:
        assert all(region.start >= len(chunk.heading) for region in chunk.regions)


def test_headers_and_footers_are_left_out_unless_asked_for():
    b = Builder()
    b.add("header", ["ACME Corp confidential"])
    b.add("text", ["The warehouse audit is due in March."])
    b.add("footer", ["Page 1 of 1"])
    doc = b.document()
    chunks = chunk_document(doc)
    assert [chunk.text for chunk in chunks] == ["The warehouse audit is due in March."]
    kept = chunk_document(doc, skip_labels=frozenset())
    assert "ACME Corp confidential" in kept[0].text and "Page 1 of 1" in kept[0].text
    assert [r.label for r in kept[0].regions] == ["header", "text", "footer"]


def test_a_chunk_crosses_a_page_boundary():
    b = Builder()
    b.add("text", ["The contract was renewed"])
    b.new_page()
    b.add("text", ["for another three years."])
    chunks = chunk_document(b.document())
    assert len(chunks) == 1
    assert chunks[0].pages == [1, 2]
    assert [(r.page, r.region_id) for r in chunks[0].regions] == [
        (1, f"{DOC_ID}:p1:r0"),
        (2, f"{DOC_ID}:p2:r0"),
    ]
    assert chunks[0].text == "The contract was renewed\nfor another three years."


def test_region_spans_slice_the_chunk_text_to_exactly_the_region_text():
    doc, table = long_document()
    for chunk, part in all_regions(chunk_document(doc, max_tokens=120)):
        region = doc.region(part.region_id)
        text = chunk.text[part.start : part.end]
        if region.id == table.id and text != table.markdown:
            continue  # a row group; checked by the table tests
        assert text == region_text(region)
        assert part.bbox == region.bbox
        assert part.bbox_norm == region.bbox_norm
        assert (part.page, part.label) == (region.page, region.label)


def test_line_spans_and_boxes_cite_single_lines():
    doc, _ = long_document()
    cited = 0
    for chunk, part in all_regions(chunk_document(doc, max_tokens=120)):
        source_lines = {(line.text, line.bbox) for line in doc.region(part.region_id).lines}
        for line in part.lines:
            assert chunk.text[line.start : line.end] == line.text
            assert part.start <= line.start <= line.end <= part.end
            assert (line.text, line.bbox) in source_lines
            assert part.bbox.coverage_of(line.bbox) == 1.0
            cited += 1
    assert cited >= sum(len(r.lines) for r in doc.regions() if r.label != "table")


def test_provenance_sits_beside_the_text_not_inside_it():
    doc, _ = long_document()
    sizes = {page.number: (page.width, page.height) for page in doc.pages}
    for chunk in chunk_document(doc, max_tokens=120):
        payload = chunk_payload(chunk, doc.source, sizes, "default", {}).model_dump(mode="json")
        assert payload["text"] == chunk.text
        for region in payload["regions"]:
            assert {"region_id", "page", "bbox", "bbox_norm", "label", "start", "end"} <= set(
                region
            )
            assert region["region_id"] not in chunk.text
            assert " ".join(map(str, region["bbox"])) not in chunk.text
        assert DOC_ID not in chunk.text
        assert not re.search(r"\bp\d+:r\d+\b|bbox|region_id", chunk.text)
        assert payload["pages"] == chunk.pages
