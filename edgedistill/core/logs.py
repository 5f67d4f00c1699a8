"""Logging: concise lines on the console, and a full log file beside each stage's outputs."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

LOGGER_NAMES = ("edgedistill", "transformers")
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name if name.startswith("edgedistill") else f"edgedistill.{name}")


class _ConsoleFormat(logging.Formatter):
    """Our lines as ``[edgedistill] message``; another library's warnings with its level and logger name."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name.startswith("edgedistill"):
            return f"[edgedistill] {record.getMessage()}"
        return f"{record.levelname} {record.name}: {record.getMessage()}"


def _console_record(record: logging.LogRecord) -> bool:
    """Everything of ours at the configured level; other libraries' warnings and errors only."""
    return record.name.startswith("edgedistill") or record.levelno >= logging.WARNING


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record arrives, not when the handler was made (a caller that
    swaps stderr, as a test runner does, still gets every line)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_console(verbose: bool = False) -> None:
    """One console handler, on the root logger. On the root, a library that calls ``logging.basicConfig()``
    while we run (onnxruntime's transformer tools do) finds a handler there and adds none, so no line is
    printed twice (once ours, once as ``INFO:edgedistill.export:``)."""
    root = logging.getLogger()
    if not any(getattr(h, "edgedistill_console", False) for h in root.handlers):
        handler = _StderrHandler()
        handler.edgedistill_console = True  # type: ignore[attr-defined]
        handler.setFormatter(_ConsoleFormat())
        handler.addFilter(_console_record)
        root.addHandler(handler)
    logging.getLogger("edgedistill").setLevel(logging.DEBUG if verbose else logging.INFO)
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
