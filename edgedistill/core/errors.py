"""The errors edgedistill raises on purpose.

Every one of them carries a message meant for the user (what is wrong, where, what to do); the CLI
prints it without a traceback and exits with status 2 (the input was wrong), or 1 for a :class:`CheckFailed`
(a gate or a verification said no). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgeDistillError(Exception):
    """Base class: a problem the user can fix, explained in the message."""


class ConfigError(EdgeDistillError):
    """The configuration (YAML file or command-line override) is invalid."""


class DataError(EdgeDistillError):
    """Task data is missing, malformed or inconsistent."""


class ModelError(EdgeDistillError):
    """A model folder or hub id cannot be used (missing, foreign format, unsupported family)."""


class ExportError(EdgeDistillError):
    """A backend could not convert or quantize a model; the message says what to change."""


class CheckFailed(EdgeDistillError):
    """Something asked for was built or checked and did not pass: a gate, a verification. The CLI exits 1
    (not 2: the input was fine, the result is not)."""


class TrainingError(CheckFailed):
    """Training finished but produced a model that must not be shipped (it learnt nothing)."""


class VerificationError(CheckFailed):
    """An artifact no longer matches its record (files, golden vectors) or its source (the parity gate)."""


class MissingDependencyError(EdgeDistillError):
    """An optional dependency is not installed; the message names the install extra."""


def require(module: str, extra: str) -> None:
    """Fail with an install hint when an optional module is missing (without importing it)."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(
            f"the Python package {module!r} is not installed; install it with "
            f"`pip install 'edgedistill[{extra}]' -c constraints.txt` (or run `bash setup.sh`)"
        )
