"""Turned (and skewed) copies of a labelled set, with their ground truth moved along.

    python bench/turned_set.py SET_DIR OUT_DIR [--turns 90,180,270] [--skew 0]
    scanrag eval OUT_DIR            # then compare with `scanrag eval SET_DIR`

Document i of the set is turned turns[i % len(turns)] degrees clockwise (as a page fed
sideways or upside down into a scanner), then tilted `--skew` degrees counter-clockwise on its
own frame. Images stay images (same format); a PDF becomes an image-only PDF whose upright
pages hold the turned scans (rendered at the ground truth's dpi), the hardest case: nothing
in the file says it is turned. Every box of `<name>.gt.json` and every `evidence_bbox` of
`qa.jsonl` is moved the same way, so the copy is labelled as it lies, and `scanrag eval` scores
it as it scores the original. Keep OUT_DIR outside the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pymupdf
from PIL import Image, ImageOps

from scanrag import testing
from scanrag.ingest.model import BBox
from scanrag.ingest.orientation import map_box, skew_matrix, turn_matrix


def transform(image: Image.Image, turn: int, skew: float) -> Image.Image:
    """`image` turned `turn`° clockwise, then tilted `skew`° counter-clockwise in its frame."""
    out = image.rotate(-turn, expand=True) if turn else image
    if skew:
        out = out.rotate(skew, resample=Image.Resampling.BICUBIC, fillcolor="white")
    return out


def box_mover(turn: int, skew: float, size: tuple[int, int]) -> tuple[Any, tuple[int, int]]:
    """(a function moving a box of a page of `size` as `transform` moves it, the new size)."""
    turned = (size[1], size[0]) if turn in (90, 270) else size
    matrix = skew_matrix(-skew, turned, turned) @ turn_matrix(turn, *size)
    return (lambda box: list(map_box(matrix, BBox(*box), turned))), turned


def pages_of(path: Path, dpi: int) -> list[Image.Image]:
    """The file's pages as the loaders see them (EXIF applied; PDFs rendered at `dpi`)."""
    if path.suffix.lower() == ".pdf":
        with pymupdf.open(path) as pdf:
            pixmaps = [page.get_pixmap(dpi=dpi, alpha=False) for page in pdf]
        return [Image.frombytes("RGB", (p.width, p.height), p.samples) for p in pixmaps]
    with Image.open(path) as image:
        return [ImageOps.exif_transpose(image).convert("RGB")]


def copy_document(
    gt_path: Path, set_dir: Path, out_dir: Path, turn: int, skew: float
) -> tuple[str, dict[int, Any]]:
    """Write the turned document and its ground truth; (file name, page → box mover)."""
    truth = json.loads(gt_path.read_text(encoding="utf-8"))
    source = set_dir / truth["file"]
    dpi = truth.get("dpi", 200)
    images = pages_of(source, dpi)
    movers: dict[int, Any] = {}
    for gt_page in truth["pages"]:
        image = images[gt_page["page"] - 1]
        if image.size != (gt_page["width"], gt_page["height"]):  # labelled at another size
            image = image.resize((gt_page["width"], gt_page["height"]))
            images[gt_page["page"] - 1] = image
        move, size = box_mover(turn, skew, image.size)
        gt_page["width"], gt_page["height"] = size
        for item in gt_page.get("lines", []) + gt_page.get("regions", []):
            item["bbox"] = move(item["bbox"])
        movers[gt_page["page"]] = move
    turned = [transform(image, turn, skew) for image in images]
    target = out_dir / source.name
    if source.suffix.lower() == ".pdf":
        testing.image_pdf(turned, target, dpi=dpi)
    elif source.suffix.lower() in (".jpg", ".jpeg"):
        turned[0].save(target, quality=92, dpi=(dpi, dpi))
    else:
        turned[0].save(target, dpi=(dpi, dpi))
    (out_dir / gt_path.name).write_text(json.dumps(truth, indent=1), encoding="utf-8")
    return source.name, movers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("set_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--turns", default="90,180,270", help="clockwise turns, in turn")
    parser.add_argument("--skew", type=float, default=0.0, help="tilt in degrees (ccw)")
    args = parser.parse_args(argv)
    turns = [int(value) % 360 for value in args.turns.split(",")]
    if any(value % 90 for value in turns):
        parser.error("--turns takes multiples of 90")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    movers: dict[str, dict[int, Any]] = {}
    for i, gt_path in enumerate(sorted(args.set_dir.glob("*.gt.json"))):
        turn = turns[i % len(turns)]
        name, movers[name] = copy_document(gt_path, args.set_dir, args.out_dir, turn, args.skew)
        print(f"{name}: turned {turn}°, tilted {args.skew}°", flush=True)
    qa = args.set_dir / "qa.jsonl"
    if qa.exists():
        rows = []
        for line in qa.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            move = movers.get(row["file"], {}).get(row["page"])
            if move is not None:
                row["evidence_bbox"] = move(row["evidence_bbox"])
            rows.append(json.dumps(row, ensure_ascii=False))
        (args.out_dir / "qa.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    print(f"{len(movers)} documents written to {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
