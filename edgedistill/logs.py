"""Logging: concise lines on the console, and a full log file beside each stage's outputs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

LOGGER_NAMES = ("edgedistill", "transformers")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("edgedistill") else f"edgedistill.{name}")


def configure_console(verbose: bool = False) -> None:
    root = logging.getLogger("edgedistill")
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
               for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[edgedistill] %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    quiet_third_party()


def quiet_third_party() -> None:
    """torchao (pulled in by litert-torch) logs a warning per missing CUDA kernel at import: not ours."""
    logging.getLogger("torchao").setLevel(logging.ERROR)


@contextlib.contextmanager
def log_to_file(path: Path) -> Iterator[None]:
    """Copy edgedistill's and transformers' log records into ``path`` while the block runs."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(logging.INFO)
    loggers = [logging.getLogger(name) for name in LOGGER_NAMES]
    for logger in loggers:
        logger.addHandler(handler)
    logging.getLogger("edgedistill").setLevel(min(logging.getLogger("edgedistill").level or 20, 20))
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        handler.close()
