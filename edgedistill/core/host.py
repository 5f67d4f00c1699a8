"""The context every number needs: which machine, which CPU features, which library versions."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

# The ISA features that decide int8 / fp16 speed on CPUs.
_ISA_FLAGS = (
    "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni",
    "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
    "asimd", "asimddp", "sve", "i8mm", "bf16",
)
_LIBRARIES = (
    "edgedistill", "torch", "transformers", "accelerate", "optimum", "optimum-onnx", "onnx",
    "onnxruntime", "litert-torch", "ai-edge-quantizer", "ai-edge-litert", "tflite-runtime",
    "coremltools", "numpy",
)


def _cpu_model_and_flags() -> tuple[str, list[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, [flag for flag in _ISA_FLAGS if flag in flags]


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that produce or run our models (read, not imported)."""
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def host_info(threads: int | None = None) -> dict[str, Any]:
    model, flags = _cpu_model_and_flags()
    info: dict[str, Any] = {
        "cpu": model,
        "isa": flags,
        "logical_cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "python": platform.python_version(),
        "libraries": library_versions(),
    }
    if threads is not None:
        info["threads"] = threads
    return info
