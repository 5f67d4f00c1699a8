"""The export stage: backend.export -> verify against the source -> publish the artifact folder.

An artifact is published (renamed into place) only after it loads in its runtime and passes its
parity gate; a failure raises a named error with the numbers and leaves no folder behind.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedistill.core.atomic import atomic_directory, write_json_atomic
from edgedistill.core.config import Config, TargetConfig
from edgedistill.core.devices import host_device, resolve_device
from edgedistill.core.errors import EdgeDistillError, ModelError, VerificationError
from edgedistill.core.hashing import sha256_file, sha256_json
from edgedistill.core.host import host_info, library_versions
from edgedistill.data.task_data import TaskData
from edgedistill.export.backends.base import ARTIFACT_FILE, Artifact, Calibration, ParityError, get_backend
from edgedistill.export.gate import check_parity
from edgedistill.export.golden import HARD_CASES, build_golden, check_golden, read_golden, write_golden
from edgedistill.export.model_card import CARD_FILE, write_card
from edgedistill.export.model_files import copy_side_files, source_hash
from edgedistill.tasks import task_of_artifact, task_of_model
from edgedistill.tasks.base import GateReport

log = logging.getLogger("edgedistill.export")

SCHEMA_VERSION = 1
# The code an artifact's bytes depend on: the backends and what they call to convert, quantize and verify.
# Paths relative to the package root: the export stage, the graph rewrites, the encoders and the tasks.
EXPORT_CODE = ("export", "quant", "data", "tasks", "core/models.py", "core/target_options.py", "core/devices.py",
               "core/registry.py")


UNHASHED = (ARTIFACT_FILE, CARD_FILE)


def exporter_fingerprint() -> str:
    """The hash of edgedistill's export code and the versions of the libraries it converts with: part of the
    pipeline's export cache key, so an artifact built by other code is rebuilt instead of reused."""
    package = Path(__file__).resolve().parents[1]
    files = sorted(f for entry in EXPORT_CODE for f in
                   ((package / entry).rglob("*.py") if (package / entry).is_dir() else [package / entry]))
    return sha256_json({"code": {str(f.relative_to(package)): sha256_file(f) for f in files},
                        "libraries": library_versions()})


@dataclass(frozen=True)
class ExportSettings:
    """What every export of one run shares, built once (:meth:`from_config`) and handed to each target."""

    max_length: int = 128  # longest token sequence of the gate's and the calibration's text
    threads: int = 1  # intra-op threads of the runtimes the gate runs
    calibration_samples: int = 256  # training rows a static-int8 export calibrates on
    seed: int = 42  # which rows those are
    verify_samples: int | None = None  # eval rows the gate reads; None: all
    data_config: dict[str, Any] | None = None  # the data settings as given, recorded in artifact.json

    @classmethod
    def from_config(cls, config: Config, verify_samples: int | None = None) -> ExportSettings:
        return cls(max_length=config.data.max_length, threads=config.threads,
                   calibration_samples=config.data.calibration_samples, seed=config.seed,
                   verify_samples=verify_samples, data_config=config.data.model_dump(mode="json"))

    def cache_inputs(self) -> dict[str, Any]:
        """The settings an artifact's bytes and gate depend on (threads change neither)."""
        return {"max_length": self.max_length, "seed": self.seed, "calibration_samples": self.calibration_samples,
                "verify_samples": self.verify_samples}


def export_cache_key(source_sha256: str, exporter: str, target: TargetConfig, data_fingerprint: str,
                     settings: ExportSettings) -> str:
    """The pipeline's key for one artifact: its source, the export code, the target and the device it is
    for, the task data and the settings. ``artifact.json`` records it as ``cache_key``."""
    return sha256_json({"source": source_sha256, "exporter": exporter, "target": target.model_dump(),
                        "device": resolve_device(target.device), "data": data_fingerprint,
                        **settings.cache_inputs()})


def file_records(folder: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file of an artifact but its record and its card (rewritten by a bench)."""
    return {
        p.relative_to(folder).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
        for p in sorted(folder.rglob("*")) if p.is_file() and p.relative_to(folder).as_posix() not in UNHASHED
    }


def export_target(model_dir: Path, target: TargetConfig, data: TaskData, out: Path, settings: ExportSettings, *,
                  source_sha256: str | None = None, extra_info: dict[str, Any] | None = None) -> Artifact:
    """Export ``model_dir`` for ``target`` into ``out``, verified, atomically.

    ``source_sha256``: the model folder's :func:`source_hash` when the caller has it (the pipeline hashes
    each source once for all its targets). ``extra_info`` is merged into ``artifact.json`` (the pipeline
    stores its cache key there). A failed gate raises :class:`ParityError` and writes nothing.
    """
    from transformers import AutoTokenizer

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ModelError(f"{model_dir} is not a save_pretrained model folder (no config.json)")
    task = task_of_model(model_dir)
    backend = get_backend(target.backend)
    calibration = Calibration(data.calibration_inputs(settings.calibration_samples, settings.seed),
                              settings.max_length) if target.precision == "int8-static" else None
    log.info("export %s: %s %s from %s", target.name, target.backend, target.precision, model_dir)
    with atomic_directory(out) as tmp:
        started = time.perf_counter()
        model_files = backend.export(model_dir, target, calibration, tmp)
        export_s = time.perf_counter() - started
        copy_side_files(model_dir, tmp)
        structure = _structure(backend, model_files, target, tmp)
        draft = Artifact(tmp, {"target": target.model_dump(), "model_files": [p.name for p in model_files]})
        runner = backend.load(draft, settings.threads)
        report = _gate(backend, draft, runner, model_dir, data, settings, structure)
        check_text_model = getattr(backend, "check_text_model", None)  # a file that takes strings: its own gate
        text_gate = check_text_model(draft, runner, model_dir, [*data.eval.inputs, *(t for _, t in HARD_CASES)]) \
            if check_text_model else None
        model_config = json.loads((model_dir / "config.json").read_text())
        label_names = task.label_names(model_config)
        golden = build_golden(runner, AutoTokenizer.from_pretrained(model_dir), data.eval.inputs, task=task,
                              backend=target.backend, precision=target.precision, max_length=settings.max_length,
                              label_names=label_names)
        write_golden(tmp, golden)
        info = {
            "schema": SCHEMA_VERSION,
            "task": task.name,
            "target": target.model_dump(),
            "source": {"path": str(model_dir.resolve()), "sha256": source_sha256 or source_hash(model_dir),
                       "model_type": model_config.get("model_type")},
            "model_files": [p.name for p in model_files],
            "files": file_records(tmp),
            "label_names": label_names,
            "max_length": settings.max_length,
            "tools": library_versions(),
            # The class the file was built for (``host`` resolved) and the class of the machine that built it.
            "device": {"target": resolve_device(target.device), "export_host": host_device()},
            "parity": {**report.as_dict(), "runtime": getattr(runner, "runtime", target.backend),
                       **({"text_model": text_gate} if text_gate else {})},
            "gated_on": gating_record(data, settings, report.samples),
            **({"structure": structure} if structure else {}),
            **({"note": runner.note} if getattr(runner, "note", None) else {}),
            "export_seconds": round(export_s, 2),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "host": host_info(settings.threads),
            **(extra_info or {}),
        }
        write_json_atomic(tmp / ARTIFACT_FILE, info)
        write_card(tmp, info, golden)
    log.info("export %s: verified (%s) and written to %s", target.name, task.describe_gate(report), out)
    return Artifact(out, info)


def _structure(backend: Any, model_files: list[Path], target: TargetConfig, folder: Path) -> dict[str, Any] | None:
    """What the backend's ``inspect`` reads from the file, and any outlier split recorded beside it."""
    from edgedistill.quant.outlier_split import read_plan

    inspect = getattr(backend, "inspect", None)
    structure = inspect(model_files, target) if inspect else None
    split = read_plan(folder)
    return {**(structure or {}), "outlier_split": split} if split is not None else structure


def _gate(backend: Any, draft: Artifact, runner: Any, model_dir: Path, data: TaskData, settings: ExportSettings,
          structure: dict[str, Any] | None) -> GateReport:
    """The parity gate of a draft artifact; a :class:`ParityError` with every reason (and, for a full-integer
    file, its worst tensors) when it fails."""
    target = draft.target
    report = check_parity(model_dir, runner, target, data, max_length=settings.max_length, threads=settings.threads,
                          verify_samples=settings.verify_samples)
    if report.passed:
        return report
    raise ParityError(
        f"target {target.name}: the {target.backend} {target.precision} artifact failed verification "
        f"({getattr(runner, 'runtime', target.backend)}) against {model_dir} on {report.samples} eval "
        f"sentences: " + "; ".join(report.failures)
        + f" ({task_of_model(model_dir).describe_gate(report)}, {_bytes_under(draft.model_files) / 1e6:.1f} MB)."
        + _worst_layers(backend, draft, model_dir, data, settings.max_length, settings.threads)
        + " No artifact was written.", parity=report.as_dict(), structure=structure)


def gating_record(data: TaskData, settings: ExportSettings, samples: int) -> dict[str, Any]:
    """What an artifact was gated on, for ``artifact.json``: the data as given, its fingerprint, the split and
    how many rows (``edgedistill verify`` re-reads it from here when no data is given)."""
    return {"data": settings.data_config or {}, "fingerprint": data.fingerprint, "sources": data.sources,
            "split": "eval", "samples": samples, "seed": settings.seed}


LAYER_ERROR_SAMPLES = 128  # eval sentences the per-layer error of a failed int8 gate is measured on


def _worst_layers(backend: Any, artifact: Artifact, model_dir: Path, data: TaskData, max_length: int,
                  threads: int) -> str:
    """For a full-integer artifact that failed its gate: the tensors whose quantization hurts most."""
    if artifact.target.precision != "int8-static" or not hasattr(backend, "layer_errors"):
        return ""
    from edgedistill.quant.report import worst_summary

    try:
        rows = backend.layer_errors(artifact, model_dir, data.eval.inputs[:LAYER_ERROR_SAMPLES], max_length, threads)
    except Exception as exc:  # a diagnostic must not hide the gate's own verdict
        return f" (per-layer analysis failed: {type(exc).__name__}: {exc})"
    return (f" Worst quantized tensors (SQNR on {min(len(data.eval.texts), LAYER_ERROR_SAMPLES)} eval sentences; "
            f"`edgedistill verify ARTIFACT --layers` prints them all): {worst_summary(rows)}.")


def layer_error_table(path: Path, data: TaskData, *, threads: int, samples: int, limit: int | None) -> str:
    """The per-tensor quantization error table of a full-integer artifact, worst first (Markdown)."""
    from edgedistill.quant.report import render_table

    artifact = Artifact.open(path)
    backend = get_backend(artifact.target.backend)
    if not hasattr(backend, "layer_errors"):
        raise EdgeDistillError(f"{path}: the {artifact.target.backend} backend has no per-layer error analysis "
                               "(ONNX and TFLite full-integer artifacts have)")
    source = Path(artifact.info["source"]["path"])
    if not source.is_dir():
        raise EdgeDistillError(f"{path}: its source model {source} is not there; per-layer error compares with it")
    rows = backend.layer_errors(artifact, source, data.eval.inputs[:samples], artifact.info.get("max_length", 128),
                                threads)
    return (f"Per-tensor quantization error of {path} ({artifact.target.name}) against its float source, on "
            f"{min(samples, len(data.eval.texts))} eval sentences, worst first:\n\n" + render_table(rows, limit))


def _bytes_under(paths: list[Path]) -> int:
    """Size of model files, a folder (an .mlpackage) counting every file in it."""
    return sum(f.stat().st_size for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())


def check_files(artifact: Artifact) -> list[str]:
    """Problems with an artifact's files against its record: changed, missing or unexpected files."""
    return diff_file_records(artifact.info.get("files", {}), file_records(artifact.path))


def diff_file_records(recorded: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]) -> list[str]:
    """Name every file that changed, went missing or appeared, between two ``file_records``."""
    problems = []
    for name, record in recorded.items():
        if name not in actual:
            problems.append(f"{name}: missing")
        elif actual[name]["sha256"] != record["sha256"]:
            problems.append(f"{name}: changed (sha256 {actual[name]['sha256'][:12]}, "
                            f"recorded {record['sha256'][:12]}; {actual[name]['bytes']} bytes, "
                            f"recorded {record['bytes']})")
    problems += [f"{name}: not part of the artifact" for name in actual if name not in recorded]
    return problems


def verify_artifact(path: Path, data: TaskData | None, *, threads: int, verify_samples: int | None = None
                    ) -> dict[str, Any]:
    """Re-check an artifact: file hashes and golden vectors, then (with data and the source at hand) the parity
    gate. A difference raises :class:`VerificationError` naming every file, case or bound that broke."""
    from transformers import AutoTokenizer

    artifact = Artifact.open(path)
    task = task_of_artifact(artifact.info)
    problems = check_files(artifact)
    golden = read_golden(path)
    runner = None
    model_changed = any(p.split(":")[0].split("/")[0] in artifact.info["model_files"] for p in problems)
    if golden is not None and not model_changed:  # the texts an integrator checks on the device, re-run here
        runner = get_backend(artifact.target.backend).load(artifact, threads)
        problems += check_golden(golden, runner, AutoTokenizer.from_pretrained(path), task)
    if problems:
        raise VerificationError(f"{path}: the artifact does not match its record:\n  " + "\n  ".join(problems))
    result: dict[str, Any] = {"artifact": str(path), "files": "ok",
                              "golden": f"{len(golden['cases'])} cases reproduce" if golden else "none recorded"}
    source = Path(artifact.info["source"]["path"])
    if data is None or not source.is_dir():
        result["parity"] = f"skipped: source model {source} not found" if data else "skipped: no data"
        return result
    if source_hash(source) != artifact.info["source"]["sha256"]:
        raise VerificationError(f"{path}: its source model {source} changed since export; re-export it")
    gated_on = artifact.info.get("gated_on") or {}
    if gated_on.get("fingerprint") and gated_on["fingerprint"] != data.fingerprint:
        result["data"] = (f"differs from the data this artifact was gated on ({_data_name(gated_on)}, "
                          f"fingerprint {gated_on['fingerprint'][:12]}; now {data.fingerprint[:12]})")
    target = artifact.target
    runner = runner or get_backend(target.backend).load(artifact, threads)
    report = check_parity(source, runner, target, data,
                          max_length=artifact.info.get("max_length", 128), threads=threads,
                          verify_samples=verify_samples)
    if not report.passed:
        raise VerificationError(f"{path}: verification failed: " + "; ".join(report.failures))
    result["parity"] = report.as_dict()
    return result


def _data_name(gated_on: dict[str, Any]) -> str:
    return str((gated_on.get("data") or {}).get("dataset") or ", ".join(gated_on.get("sources", [])) or "unknown")
