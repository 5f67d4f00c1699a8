"""Run the benchmark: each model in its own worker process, then agreement and ratios across rows.

A row whose worker crashes, times out or cannot load becomes an error row; the others go on.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.core.errors import EdgeDistillError
from edgedistill.core.host import host_info
from edgedistill.tasks import DEFAULT_TASK, get_task, task_of_artifact, task_of_model
from edgedistill.tasks.base import Task

log = logging.getLogger("edgedistill.bench")

SCHEMA = "edgedistill.report/1"
ROLE_ORDER = {"teacher": 0, "student": 1, "qat": 2, "baseline": 3}
CHECKPOINT_ROLES = ("teacher", "student", "qat", "baseline")
CHECKPOINT_LOADER = "edgedistill.bench.worker:load_checkpoint"
ARTIFACT_LOADER = "edgedistill.bench.worker:load_artifact"


@dataclass
class BenchItem:
    """One model to measure: what the report calls it, where it is, and how the worker opens it."""

    name: str
    role: str
    kind: str  # "checkpoint" (a save_pretrained folder, run in PyTorch), "artifact", or what its maker names it
    path: Path
    backend: str
    precision: str
    target: str
    source: Path | None = None
    model_files: tuple[Path, ...] = ()  # what its size counts (a folder counts every file in it)
    loader: str = ARTIFACT_LOADER  # "module:function" the worker calls with (path, threads) for a runner
    task: str = DEFAULT_TASK  # what the model computes: how its outputs are scored


@dataclass
class BenchSettings:
    threads: int = 2
    batch_sizes: tuple[int, ...] = (1, 8)
    seq_lengths: tuple[int, ...] = (16, 32, 64, 128)
    reference: tuple[int, int] = (1, 128)
    max_length: int = 128
    real_samples: int = 300
    timeout_s: int = 900
    timing: dict[str, Any] = field(default_factory=lambda: {"warmup_runs": 3, "warmup_s": 0.3,
                                                             "min_runs": 20, "min_s": 1.0})


def settings_from(bench: Any, *, threads: int, max_length: int, eval_rows: int) -> BenchSettings:
    """BenchSettings for a config's ``bench`` section; the reference shape is the first batch size at
    the longest sequence length."""
    settings = BenchSettings(threads=threads, batch_sizes=tuple(bench.batch_sizes),
                             seq_lengths=tuple(bench.seq_lengths),
                             reference=(bench.batch_sizes[0], max(bench.seq_lengths)),
                             max_length=max(max(bench.seq_lengths), max_length),
                             real_samples=min(bench.real_samples, eval_rows))
    settings.timing["min_s"] = bench.min_time
    return settings


def discover(paths: list[Path]) -> list[BenchItem]:
    """Bench items from checkpoint folders, artifact folders, or a workdir holding both."""
    items: list[BenchItem] = []
    for path in paths:
        path = Path(path).resolve()  # artifacts record their source absolute: rows must match it
        if (path / "artifact.json").is_file():
            items.append(_artifact_item(path))
        elif (path / "config.json").is_file():
            items.append(checkpoint_item(path))
        elif path.is_dir():
            for role in CHECKPOINT_ROLES:
                if (path / role / "config.json").is_file():
                    items.append(checkpoint_item(path / role))
            for artifact in sorted((path / "artifacts").glob("*/artifact.json")):
                items.append(_artifact_item(artifact.parent))
        else:
            raise EdgeDistillError(f"{path}: not a model folder, an artifact folder or a workdir")
    return sorted(items, key=lambda i: (ROLE_ORDER.get(i.role, 9), i.kind != "checkpoint", i.name))


def _role_of(model_dir: Path) -> str:
    try:
        return json.loads((model_dir / "metrics.json").read_text())["role"]
    except (OSError, ValueError, KeyError):
        return model_dir.name


def checkpoint_item(path: Path, role: str | None = None) -> BenchItem:
    """A ``save_pretrained`` folder, run in PyTorch; its role from its ``metrics.json`` unless given."""
    role = role or _role_of(path)
    return BenchItem(f"{role}-pytorch-fp32", role, "checkpoint", path, "pytorch", "fp32", "pytorch-fp32",
                     model_files=(path / "model.safetensors",), loader=CHECKPOINT_LOADER,
                     task=task_of_model(path).name)


def _artifact_item(path: Path) -> BenchItem:
    info = json.loads((path / "artifact.json").read_text())
    source = Path(info["source"]["path"])
    role = _role_of(source)
    target = info["target"]
    return BenchItem(f"{role}-{target['name']}", role, "artifact", path, target["backend"], target["precision"],
                     target["name"], source, model_files=tuple(path / name for name in info["model_files"]),
                     task=task_of_artifact(info).name)


def _size_bytes(item: BenchItem) -> int:
    """Bytes of the item's model files, a folder (a Core ML .mlpackage) counting every file under it."""
    return sum(f.stat().st_size for p in item.model_files for f in ([p] if p.is_file() else p.rglob("*"))
               if f.is_file())


def count_parameters(model_dir: Path) -> int:
    """Parameters from the safetensors header alone (no torch import)."""
    with open(model_dir / "model.safetensors", "rb") as handle:
        header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
    return int(sum(np.prod(t["shape"]) for name, t in header.items() if name != "__metadata__"))


def run_bench(items: list[BenchItem], texts: list[Any], labels: Any, settings: BenchSettings,
              out_dir: Path, progress: bool = True, label_names: list[str] | None = None) -> dict[str, Any]:
    """Measure every item in its own process; return the report (schema ``SCHEMA``). ``labels``: the eval
    rows' gold as the task reads it (:meth:`~edgedistill.tasks.base.Task.gold`), ``label_names`` its names."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    rows, logits = [], {}
    with tempfile.TemporaryDirectory(prefix="edgedistill-bench-") as scratch:
        scratch = Path(scratch)
        eval_file = scratch / "eval.json"
        eval_file.write_text(json.dumps({"texts": texts}))
        for item in tqdm(items, desc="bench", unit="model", disable=not progress):
            row, row_logits = _measure(item, eval_file, settings, scratch)
            rows.append(row)
            if row_logits is not None:
                logits[item.name] = row_logits
    task = _one_task(items)
    _cross_row_metrics(rows, logits, np.asarray(labels), settings, task, label_names)
    return {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": host_info(settings.threads),
        "settings": {
            "threads": settings.threads, "batch_sizes": list(settings.batch_sizes),
            "seq_lengths": list(settings.seq_lengths),
            "reference": {"batch": settings.reference[0], "seq": settings.reference[1]},
            "max_length": settings.max_length, "real_samples": settings.real_samples,
            "timing": settings.timing, "eval_samples": len(texts),
            "isolation": "one fresh process per model",
            # what the quality columns hold: the task's headline metric, and what its agreement measures
            "task": task.name, "headline": task.headline, "agreement": task.agreement_label,
        },
        "rows": rows,
    }


def _one_task(items: list[BenchItem]) -> Task:
    """The task every item computes: one report compares like with like."""
    tasks = sorted({item.task for item in items})
    if len(tasks) > 1:
        raise EdgeDistillError(f"the models to benchmark compute different tasks ({', '.join(tasks)}); "
                               "benchmark each task's models into its own report")
    return get_task(tasks[0] if tasks else DEFAULT_TASK)


def _measure(item: BenchItem, eval_file: Path, settings: BenchSettings, scratch: Path
             ) -> tuple[dict[str, Any], np.ndarray | None]:
    row: dict[str, Any] = {
        "name": item.name, "role": item.role, "backend": item.backend, "precision": item.precision,
        "target": item.target, "path": str(item.path), "source": str(item.source) if item.source else None,
        "threads": settings.threads, "status": "ok",
    }
    try:
        info = json.loads((item.path / "artifact.json").read_text()) if item.kind == "artifact" else None
        if info is not None:  # graph rewrites change the work done: reports say which artifacts carry one
            from edgedistill.tasks import task_of_artifact

            # the option is set on every target; only a task whose output reads the [CLS] row applies it
            row["cls_only_last_layer"] = (bool(info["target"].get("cls_only_last_layer", False))
                                          and task_of_artifact(info).reads_first_row_only)
            device = (info.get("device") or {}).get("target")
            if device:  # built for another class than this host: the latency is this host's, not the device's
                from edgedistill.core.devices import host_device

                row["device"], row["bench_host_device"] = device, host_device()
            structure = info.get("structure") or {}
            for key in ("integer", "xnnpack"):  # what runs in int8, and where (edgedistill/quant_report.py)
                if key in structure:
                    row[key] = structure[key]
        row["size_bytes"] = _size_bytes(item)
        row["parameters"] = count_parameters(item.source or item.path)
    except (OSError, ValueError, KeyError) as exc:
        row["size_bytes"] = row["parameters"] = None
        log.warning("%s: could not read size/parameters: %s", item.name, exc)
    spec = {
        "path": str(item.path), "loader": item.loader, "threads": settings.threads,
        "batch_sizes": list(settings.batch_sizes), "seq_lengths": list(settings.seq_lengths),
        "max_length": settings.max_length, "real_samples": settings.real_samples, "timing": settings.timing,
        "eval_file": str(eval_file), "logits_file": str(scratch / f"{item.name}.npy"),
        "result_file": str(scratch / f"{item.name}.json"),
    }
    spec_file = scratch / f"{item.name}.spec.json"
    spec_file.write_text(json.dumps(spec))
    env = {**os.environ, "OMP_NUM_THREADS": str(settings.threads), "TOKENIZERS_PARALLELISM": "false"}
    try:
        done = subprocess.run([sys.executable, "-m", "edgedistill.bench.worker", str(spec_file)],
                              capture_output=True, text=True, timeout=settings.timeout_s, env=env)
    except subprocess.TimeoutExpired:
        row.update(status="error", error=f"timed out after {settings.timeout_s} s")
        return row, None
    if done.returncode != 0 or not Path(spec["result_file"]).is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-6:]
        row.update(status="error", error=f"worker exited with status {done.returncode}: " + " | ".join(tail))
        log.warning("%s: %s", item.name, row["error"])
        return row, None
    row.update(json.loads(Path(spec["result_file"]).read_text()))
    return row, np.load(spec["logits_file"])


def _reference_latency(row: dict[str, Any], settings: BenchSettings) -> dict[str, Any] | None:
    batch, seq = settings.reference
    return next((p for p in row.get("latency", []) if p["batch"] == batch and p["seq"] == seq), None)


def _cross_row_metrics(rows: list[dict[str, Any]], logits: dict[str, np.ndarray], labels: np.ndarray,
                       settings: BenchSettings, task: Task, label_names: list[str] | None) -> None:
    """The task's metrics, agreement with the teacher and the fp32 student, output drift, speed-ups and size
    ratios."""
    by_path = {r["path"]: r for r in rows if r["backend"] == "pytorch"}
    teacher = next((r for r in rows if r["role"] == "teacher" and r["backend"] == "pytorch"), None)
    student = next((r for r in rows if r["role"] == "student" and r["backend"] == "pytorch"), None)
    for row in rows:
        ref = _reference_latency(row, settings)
        row["reference_latency"] = ref
        if row["name"] not in logits:
            continue
        own = logits[row["name"]]
        scores = task.metrics(own, labels, label_names)
        clash = sorted(set(scores) & {"name", "role", "backend", "precision", "target", "path", "status"})
        if clash:  # a metric must not overwrite what the row says the model is
            raise EdgeDistillError(f"the {task.name} task's metrics {clash} would overwrite the bench row's fields")
        row.update(scores)
        for key, other in (("agreement_with_teacher", teacher), ("agreement_with_fp32_student", student)):
            if other is not None and other["name"] in logits:
                row[key] = task.agreement(own, logits[other["name"]], labels)
        source = by_path.get(row["source"]) if row["source"] else row
        if source is not None and source["name"] in logits:
            diff = np.abs(own - logits[source["name"]])
            row["max_logit_diff"], row["mean_logit_diff"] = float(diff.max()), float(diff.mean())
            row["agreement_with_source"] = task.agreement(own, logits[source["name"]], labels)
    for row in rows:
        ref = row.get("reference_latency")
        for key, other in (("teacher", teacher), ("fp32_student", student)):
            other_ref = other.get("reference_latency") if other else None
            if ref and other_ref:
                row[f"speedup_vs_{key}"] = round(other_ref["p50_ms"] / ref["p50_ms"], 3)
        if student and student.get("size_bytes") and row.get("size_bytes"):
            row["size_ratio_vs_fp32_student"] = round(row["size_bytes"] / student["size_bytes"], 4)


def eval_gold(task: Task, split: Any, items: list[BenchItem], max_length: int) -> np.ndarray:
    """The eval split's gold for ``task`` (:meth:`~edgedistill.tasks.base.Task.gold`), tokenized by the first
    item's tokenizer as the workers tokenize the texts (every item of a run shares the teacher's vocabulary)."""
    from transformers import AutoTokenizer

    folder = next((i.path for i in items if (i.path / "tokenizer.json").is_file()), None)
    if folder is None:
        return np.asarray(split.labels)
    return task.gold(split, AutoTokenizer.from_pretrained(folder), max_length)
