"""An int8 copy of the PP-OCRv6 text detector the `embedded` parser ships with, made once
on this machine.

Static int8 quantisation (QDQ, per-channel weights, MinMax activation ranges) lets
onnxruntime run the convolutions on the CPU's integer units: about 1.4× faster on one thread
than the float model as shipped (docs/benchmarks.md). Nothing is downloaded: the float model
comes from the installed rapidocr wheel, the calibration inputs from synthetic pages drawn
with `scanrag.testing` (recorded while the float engine reads them, so they are exactly what
the detector sees), and `onnxruntime.quantization` writes the int8 file into the model cache
once, under a name that hashes everything that goes into it. Worker processes that start
together wait on a file lock instead of building twice.

Only the detector: the recogniser quantised the same way lost 0.01–0.03 word F1 on real
scans, and the layout model most of its boxes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError

log = logging.getLogger(__name__)

#: Bump when the quantisation recipe or the calibration pages change: new cache files.
RECIPE = 2
#: Left in float: the first convolution (raw pixels) and the two layers that write the
#: probability map.
KEEP_FLOAT = ["Conv.0", "ConvTranspose.0", "ConvTranspose.2"]


@dataclass(frozen=True)
class ModelFiles:
    """The OCR engine's two ONNX files: text detection and recognition."""

    det: Path
    rec: Path

    def items(self) -> list[tuple[str, Path]]:
        return [("det", self.det), ("rec", self.rec)]


def shipped_models() -> ModelFiles:
    """The float models inside the installed rapidocr wheel (≥ 3.10: PP-OCRv6 small)."""
    import rapidocr

    folder = Path(rapidocr.__file__).parent / "models"
    files = ModelFiles(
        det=folder / "PP-OCRv6_det_small.onnx", rec=folder / "PP-OCRv6_rec_small.onnx"
    )
    missing = [str(path) for _, path in files.items() if not path.is_file()]
    if missing:
        raise ConfigError(
            f"the embedded parser's OCR models are missing ({', '.join(missing)}); "
            "reinstall scanrag's rapidocr wheel (>= 3.10)"
        )
    return files


def cache_key(source: Path) -> str:
    """What the int8 file depends on: the float model, onnxruntime, the recipe."""
    digest = hashlib.sha256(f"{RECIPE}:{version('onnxruntime')}".encode())
    digest.update(hashlib.sha256(source.read_bytes()).digest())
    return digest.hexdigest()[:12]


def int8_detector(cache_dir: Path, source: Path, float_engine: Callable[[], Any]) -> Path:
    """The int8 copy of the detector `source` in `cache_dir`, built first if missing;
    `float_engine()` gives a RapidOCR that runs `source`, to record calibration inputs."""
    target = cache_dir / f"{source.stem}.int8-{cache_key(source)}.onnx"
    if target.is_file():
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the model cache {cache_dir} ({exc}); set SCANRAG_MODEL_CACHE_DIR "
            "to a writable folder, or SCANRAG_OCR_PROFILE=accurate"
        ) from exc
    with _locked(cache_dir / ".int8.lock"):
        if not target.is_file():  # else another process built it while we waited
            log.warning("preparing the int8 text detector in %s (once, about a minute)", target)
            quantise(source, target, calibration_inputs(float_engine()), KEEP_FLOAT)
    return target


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _Recorder:
    """Stands in for an onnxruntime session and keeps a copy of every input it is given."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.inputs: list[dict[str, np.ndarray]] = []

    def run(self, outputs: Any, feed: dict[str, np.ndarray], *args: Any) -> Any:
        self.inputs.append({name: np.array(value) for name, value in feed.items()})
        return self._session.run(outputs, feed, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def calibration_pages() -> list[np.ndarray]:
    """Synthetic BGR pages of the kinds scanrag reads (invoices, reports, forms, Chinese
    receipts, with scanner grain), each also as a dim, soft, low-contrast photo: activation
    ranges taken from clean pages alone clip on real photographed receipts. Deterministic,
    so the int8 models are too."""
    from PIL import ImageFilter

    from ... import testing

    sheets = [
        testing.invoice(number="INV-2041"),
        testing.two_column_report(seed=3),
        testing.form(),
        testing.receipt_zh(),
        testing.invoice(number="INV-7310"),
        testing.two_column_report(seed=11),
    ]
    pages = []
    for seed, sheet in enumerate(sheets):
        image = sheet.image(noise=3, seed=seed).convert("RGB")
        soft = np.asarray(image.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float32)
        shade = np.linspace(0.55, 0.8, soft.shape[0], dtype=np.float32)[:, None, None]
        photo = soft * shade + 25 + np.random.default_rng(seed).normal(0, 8, soft.shape)
        for rgb in (np.asarray(image), np.clip(photo, 0, 255).astype(np.uint8)):
            pages.append(np.ascontiguousarray(rgb[:, :, ::-1]))
    return pages


def calibration_inputs(
    ocr: Any, pages: list[np.ndarray] | None = None
) -> list[dict[str, np.ndarray]]:
    """The inputs the float detector gets while `ocr` (a RapidOCR) reads the calibration
    pages (recognition is switched off: it adds nothing here)."""
    pages = calibration_pages() if pages is None else pages
    ocr(pages[0], use_rec=False)  # RapidOCR loads its models on first use
    wrapper = ocr.text_det.session
    recorder = wrapper.session = _Recorder(wrapper.session)
    try:
        for page in pages:
            ocr(page, use_rec=False)
    finally:
        wrapper.session = recorder._session
    return recorder.inputs


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader over recorded inputs, read in strides
    (`set_range`): ranges are then merged page by page instead of after every page's
    activations sit in memory at once."""

    def __init__(self, samples: list[dict[str, np.ndarray]]) -> None:
        self._samples = samples
        self._next: Iterator[dict[str, np.ndarray]] = iter(samples)

    def __len__(self) -> int:
        return len(self._samples)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next = iter(self._samples[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._next, None)


def quantise(
    source: Path, target: Path, samples: list[dict[str, np.ndarray]], keep_float: list[str]
) -> None:
    """Write `source` quantised to int8 (QDQ) at `target`, atomically."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not samples:
        raise ConfigError(f"no calibration input reached {source.name}; cannot quantise it")
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        model = onnx.load(str(source))
        if next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < 13:
            model = version_converter.convert_version(model, 13)  # per-channel needs 13
        upgraded, prepared = Path(work) / "opset13.onnx", Path(work) / "prepared.onnx"
        onnx.save(model, str(upgraded))
        quant_pre_process(str(upgraded), str(prepared), skip_symbolic_shape=True)
        written = Path(work) / target.name
        quantize_static(
            str(prepared),
            str(written),
            _Reader(samples),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=keep_float,
            extra_options={"CalibStridedMinMax": 1},  # see _Reader
        )
        os.replace(written, target)
