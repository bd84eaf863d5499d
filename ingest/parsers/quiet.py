"""Model loaders that talk too much: RapidOCR and RapidLayout log every model load at INFO,
and stdout must stay for results (`--json`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

NOISY = ("RapidOCR", "rapid_layout")


def quiet_model_logs() -> None:
    """Their loggers, and any they have made below them, at WARNING."""
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(NOISY):
            logging.getLogger(name).setLevel(logging.WARNING)


@contextlib.contextmanager
def loading_quietly() -> Iterator[None]:
    """Their loggers are created, at INFO, while the models load: silence INFO meanwhile."""
    quiet_model_logs()
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
        quiet_model_logs()
