"""The registries, as data: the export formats and the tasks, each listed once.

Config validation, the typed target options, the device rules, the model cards and the backend registry
(:func:`edgedistill.export.backends.base.get_backend`) read :data:`FORMATS`; adding a format is a row here, its
module under ``export/backends/`` and its profiles under ``targets/``. The task registry
(:mod:`edgedistill.tasks`) and the config's ``task`` key read :data:`TASKS`; adding a task is a row here and its
module under ``tasks/``. Plain data, so the configuration can validate names without importing what they name.
"""

from __future__ import annotations

from dataclasses import dataclass

# CPU device classes an artifact can be built for (edgedistill.core.devices).
CPU_DEVICES = ("arm64", "x86-avx2", "x86-avx512", "x86-avx512-vnni")


@dataclass(frozen=True)
class Format:
    """One backend: where its module is, what installs it, and what it can build."""

    name: str
    module: str  # defines BACKEND
    extra: str  # the pip extra that installs its libraries ("" for none)
    probe: str | None  # a module the extra provides: checked (not imported) before loading the backend
    precisions: tuple[str, ...]  # what its exporter builds, in the order profiles list them
    devices: tuple[str, ...]  # the device classes it can be built for
    default_device: str  # the class its profiles name unless they say otherwise
    model_file: str  # the model file an artifact folder holds
    library: str  # the Hugging Face model card's ``library_name``


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("pytorch", "edgedistill.export.backends.pytorch", "", None, ("fp32",), ("host",), "host",
           "model.safetensors", "transformers"),
    Format("onnx", "edgedistill.export.backends.onnx", "onnx", "onnxruntime",
           ("fp32", "fp16", "int8-dynamic", "int8-static"), ("host", *CPU_DEVICES), "x86-avx512-vnni",
           "model.onnx", "onnx"),
    Format("tflite", "edgedistill.export.backends.tflite", "tflite", "litert_torch",
           ("fp32", "fp16", "int8-dynamic", "int8-weights", "int8-static"), ("host", *CPU_DEVICES), "arm64",
           "model.tflite", "tflite"),
    Format("coreml", "edgedistill.export.backends.coreml", "coreml", "coremltools",
           ("fp32", "fp16", "int8-weights", "int8-static", "palettize-6", "palettize-4"), ("apple-ane",), "apple-ane",
           "model.mlpackage", "coreml"),
)}

# task name -> the module defining its TASK (edgedistill.tasks.base.Task)
TASKS: dict[str, str] = {
    "classification": "edgedistill.tasks.classification",
    "embedding": "edgedistill.tasks.embedding",
    "token-classification": "edgedistill.tasks.token_classification",
}
DEFAULT_TASK = "classification"

BACKENDS: tuple[str, ...] = tuple(FORMATS)
# Every precision some backend builds, each once, in first-seen order.
PRECISIONS: tuple[str, ...] = tuple(dict.fromkeys(p for f in FORMATS.values() for p in f.precisions))
