"""The one contract every backend meets, the artifact folder, and the backend registry.

A backend is one module with two verbs:

* ``export(model_dir, target, calibration, out_dir) -> list[Path]``: write the model file(s) for a
  target into ``out_dir`` (an empty temporary folder) and return them;
* ``load(artifact, threads) -> Runner`` where ``Runner.predict(input_ids, attention_mask) -> output``,
  numpy int64 in, float32 out: the output the model's task defines (a classifier's logits; the graph a
  backend converts is the task's export module, :meth:`edgedistill.tasks.base.Task.export_module`, so a
  backend never knows which task it holds). A runner may say what actually ran it (``runtime``) and whether its
  timings mean anything (``measures_latency``, false for an emulation);
* optionally ``inspect(model_files, target) -> dict``: structural facts about the file, checked against
  the target (raising on a mismatch), stored in ``artifact.json`` as ``structure`` — for int8 artifacts
  their integer coverage (``structure.integer``, :mod:`edgedistill.quant.report`);
* optionally ``check_text_model(artifact, runner, source_dir, texts) -> dict | None``: the gate of a model
  file that takes strings (ONNX ``with_tokenizer``), raising ``ParityError`` when it fails;
* optionally ``layer_errors(artifact, source_dir, texts, max_length, threads) -> list[TensorError]``: the
  per-tensor quantization error of a full-integer artifact against its float source, on real text
  (``edgedistill verify --layers``, and the message of a failed int8 gate).

Everything else (tokenizer files, ``artifact.json``, the parity gate, atomic publication) is done once,
in :mod:`edgedistill.export.stage`, for all backends. Adding a format is one module and one row of
:data:`edgedistill.core.registry.FORMATS`.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgedistill.core.config import TargetConfig
from edgedistill.data.encoding import Example
from edgedistill.core.errors import CheckFailed, ConfigError, EdgeDistillError, ModelError, require
from edgedistill.core.registry import FORMATS

ARTIFACT_FILE = "artifact.json"



@dataclass(frozen=True)
class Calibration:
    """Real task text for static quantization (sentences, or sentence-pair tuples), and the sequence length
    it is tokenized to."""

    inputs: list[Example]
    max_length: int


class Runner(Protocol):
    def predict(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


class Backend(Protocol):
    name: str
    precisions: tuple[str, ...]

    def export(self, model_dir: Path, target: TargetConfig, calibration: Calibration | None,
               out_dir: Path) -> list[Path]: ...

    def load(self, artifact: Artifact, threads: int) -> Runner: ...


class ParityError(CheckFailed):
    """An artifact disagrees with the PyTorch model it came from beyond the target's tolerance.

    ``parity`` (the gate's numbers) and ``structure`` (what ``inspect`` read from the rejected file) let a
    caller record a failure as precisely as a success."""

    def __init__(self, message: str, parity: dict[str, Any] | None = None,
                 structure: dict[str, Any] | None = None):
        super().__init__(message)
        self.parity = parity
        self.structure = structure


class InputTooLongError(ModelError):
    """A batch is longer than a fixed-shape artifact's largest length and the target refuses to truncate."""


@dataclass
class Artifact:
    """A published artifact folder and its ``artifact.json``."""

    path: Path
    info: dict[str, Any]

    @classmethod
    def open(cls, path: Path) -> Artifact:
        path = Path(path)
        record = path / ARTIFACT_FILE
        if not record.is_file():
            raise EdgeDistillError(f"{path} is not an edgedistill artifact (no {ARTIFACT_FILE})")
        try:
            return cls(path, json.loads(record.read_text(encoding="utf-8")))
        except ValueError as exc:
            raise EdgeDistillError(f"{record} is not valid JSON: {exc}") from None

    @property
    def target(self) -> TargetConfig:
        return TargetConfig.model_validate(self.info["target"])

    @property
    def model_files(self) -> list[Path]:
        return [self.path / name for name in self.info["model_files"]]


def check_precision(backend: Backend, target: TargetConfig) -> None:
    """Refuse a precision the backend does not produce, naming the ones it does."""
    if target.precision not in backend.precisions:
        raise ConfigError(f"target {target.name}: the {backend.name} backend has no precision "
                          f"{target.precision!r}; choose one of: {', '.join(backend.precisions)}")


def require_full_integer(target: TargetConfig) -> None:
    """Per-layer quantization error is measured on full-integer artifacts, whose scales are in the file."""
    if target.precision != "int8-static":
        raise ConfigError(f"target {target.name}: per-layer quantization error needs a full-integer (int8-static) "
                          f"artifact; this one is {target.precision}")


def backend_names() -> tuple[str, ...]:
    return tuple(FORMATS)


def get_backend(name: str) -> Backend:
    """The backend module's ``BACKEND`` (:data:`edgedistill.core.registry.FORMATS`), its extra checked first."""
    if name not in FORMATS:
        raise ConfigError(f"unknown backend {name!r}; available: {', '.join(FORMATS)}")
    spec = FORMATS[name]
    if spec.probe:
        require(spec.probe, spec.extra)
    return importlib.import_module(spec.module).BACKEND


def head_layers(model_dir: Path) -> int:
    """The linear layers after the encoder in ``model_dir``'s task (what ``float_head`` keeps float)."""
    from edgedistill.tasks import task_of_model

    return task_of_model(Path(model_dir)).head_linear_layers
