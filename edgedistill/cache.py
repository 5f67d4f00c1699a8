"""The stage cache: a finished stage's folder records the content hash of everything it was built from.

A stage is skipped when its folder holds a ``stage.json`` with the same key and all its outputs;
any changed input (model files, data bytes, settings) gives a new key and the stage runs again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from edgedistill.atomic import write_json_atomic
from edgedistill.hashing import sha256_json

STAGE_FILE = "stage.json"


def stage_key(stage: str, inputs: dict[str, Any]) -> str:
    return sha256_json({"stage": stage, "inputs": inputs})


def read_stage(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(folder) / STAGE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_cached(folder: Path, key: str, required: tuple[str, ...] = ()) -> bool:
    record = read_stage(folder)
    return (
        record is not None
        and record.get("key") == key
        and all((Path(folder) / name).exists() for name in required)
    )


def write_stage(folder: Path, stage: str, key: str, inputs: dict[str, Any]) -> None:
    write_json_atomic(
        Path(folder) / STAGE_FILE,
        {"stage": stage, "key": key, "inputs": inputs, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    )
