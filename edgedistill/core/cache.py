"""The stage cache: a finished stage's folder records the content hash of everything it was built from.

A stage is skipped when its folder holds a ``stage.json`` with the same key and all its outputs;
any changed input (model files, data bytes, settings) gives a new key and the stage runs again.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

from edgedistill.core.atomic import process_rank, stage_directory, synchronize_processes, write_json_atomic
from edgedistill.core.hashing import sha256_json
from edgedistill.core.logs import get_logger, log_to_file

log = get_logger("cache")

STAGE_FILE = "stage.json"


def stage_key(stage: str, inputs: dict[str, Any]) -> str:
    return sha256_json({"stage": stage, "inputs": inputs})


def read_stage(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(folder) / STAGE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def reuse(stage: str, key: str, recorded_key: str | None, intact: bool, *, force: bool = False) -> bool:
    """The one cache decision of every stage (teacher, student, qat, baseline, each export, bench): reuse the
    finished output when not forced, its recorded key is ``key`` and its files are ``intact``; logs which."""
    hit = not force and recorded_key == key and intact
    if hit:
        log.info("%s: cache hit (key %s)", stage, key[:12])
    else:
        log.info("%s: %s (key %s)", stage, "forced" if force else "inputs changed, rebuilding" if recorded_key
                 else "building", key[:12])
    return hit


def write_stage(folder: Path, stage: str, key: str, inputs: dict[str, Any]) -> None:
    write_json_atomic(
        Path(folder) / STAGE_FILE,
        {"stage": stage, "key": key, "inputs": inputs, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    )


def run_cached_stage(stage: str, out: Path, inputs: dict[str, Any], outputs: tuple[str, ...],
                     build: Callable[[Path], dict[str, Any]], config_text: str, *, force: bool = False
                     ) -> tuple[dict[str, Any], bool]:
    """A trained model's stage (teacher, student, qat, baseline): reuse ``out`` when its key matches, or call
    ``build(tmp)`` in a temporary folder published atomically with its config, ``metrics.json`` and
    ``stage.json``. Under torchrun every process builds; the first publishes, the others wait for it.
    Returns ``(metrics, cached)``: ``metrics`` as ``build`` returned it (the distill stages return ``{}`` on
    the processes that do not publish)."""
    key = stage_key(stage, inputs)
    record = read_stage(out) or {}
    if reuse(stage, key, record.get("key"), all((Path(out) / name).exists() for name in outputs), force=force):
        metrics = json.loads((Path(out) / "metrics.json").read_text(encoding="utf-8"))
        accuracy = metrics.get("eval_accuracy")  # the augment stage trains nothing: it has none
        log.info("%s: reusing %s%s", stage, out, "" if accuracy is None else f" (eval accuracy {accuracy:.4f})")
        return metrics, True
    with stage_directory(Path(out)) as tmp, log_to_file(tmp / f"{stage}.log"):
        metrics = build(tmp)
        if process_rank() == 0:
            (tmp / "edgedistill_config.yaml").write_text(config_text, encoding="utf-8")
            write_json_atomic(tmp / "metrics.json", metrics)
            write_stage(tmp, stage, key, inputs)
    synchronize_processes()
    return metrics, False


def user_cache_dir(kind: str) -> Path:
    """``$EDGEDISTILL_CACHE/<kind>`` (default ``~/.cache/edgedistill/<kind>``): what is worth keeping across runs
    and workdirs (XNNPACK packed weights, a teacher's vectors for a corpus), named by content; created on use."""
    import os

    folder = Path(os.environ.get("EDGEDISTILL_CACHE", Path.home() / ".cache" / "edgedistill")) / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder
