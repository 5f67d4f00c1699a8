"""fp32 conversions reused within one process: most targets of a model start from the same float graph.

A run exports each model to several targets of one backend (ONNX fp32, fp16 and dynamic int8; TFLite fp32,
fp16, int8 dynamic and weight-only), and every one of them first converts the checkpoint to a float graph
with the same settings. The conversion is the slow step (litert-torch takes tens of seconds for a student),
so the first conversion of a ``key`` is kept in a scratch folder of this process and the later ones copy it.
The key is everything the converted bytes depend on: the model folder's content, the backend's conversion
settings and the graph rewrites (the [CLS]-only last layer, an outlier split). Nothing outlives the process.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgedistill.core.hashing import model_folder_hash, sha256_json

_root: Path | None = None


def _scratch() -> Path:
    global _root
    if _root is None:
        _root = Path(tempfile.mkdtemp(prefix="edgedistill-conversions-"))
        atexit.register(shutil.rmtree, _root, ignore_errors=True)
    return _root


def converted(model_dir: Path, settings: dict[str, Any], out: Path, convert: Callable[[Path], None]) -> None:
    """Make ``out`` (a file or a folder) hold the conversion of ``model_dir`` with ``settings``: ``convert(path)``
    writes it the first time, a copy of that first result every later time."""
    key = sha256_json({"model": model_folder_hash(model_dir), "settings": settings})
    kept = _scratch() / key / "converted"
    if not kept.exists():
        building = _scratch() / f"{key}.building"
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir()
        convert(building / "converted")
        building.rename(kept.parent)
    if kept.is_dir():
        shutil.copytree(kept, out, dirs_exist_ok=True)
    else:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(kept, out)
