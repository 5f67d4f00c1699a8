"""`edgedistill run`: teacher -> distill -> export (+verify) -> bench -> report, with a run manifest.

Every stage reads what the one before wrote under the workdir and is keyed by the content hash of its
inputs, so a repeated run is all cache hits and any stage can be run alone (``--only``) or from a
point on (``--from``). ``manifest.json`` records the config, the seed, every stage's key and every
output's hash, the tool versions and the host; ``edgedistill verify RUN_DIR`` re-checks it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgedistill.core.atomic import write_json_atomic
from edgedistill.core.errors import ConfigError, EdgeDistillError
from edgedistill.core.hashing import model_folder_hash
from edgedistill.core.host import host_info, library_versions

if TYPE_CHECKING:  # the command line imports this module for STAGES: nothing heavier at import time
    from edgedistill.core.config import Config, TargetConfig
    from edgedistill.data.task_data import TaskData

log = logging.getLogger("edgedistill.run")

STAGES = ("teacher", "distill", "export", "bench")
MANIFEST = "manifest.json"


def select_stages(only: str | None = None, start: str | None = None) -> list[str]:
    for name in (only, start):
        if name is not None and name not in STAGES:
            raise ConfigError(f"unknown stage {name!r}; the stages are: {', '.join(STAGES)}")
    if only:
        return [only]
    return list(STAGES[STAGES.index(start):]) if start else list(STAGES)


def run_pipeline(config: Config, *, only: str | None = None, start: str | None = None,
                 force: bool = False) -> dict[str, Any]:
    """Run the selected stages; return (and write) the manifest."""
    from edgedistill.core.targets import resolve_targets

    stages = select_stages(only, start)
    targets = resolve_targets(config)  # fail on a bad target before hours of training
    if {"teacher", "distill"} & set(stages):
        from edgedistill.core.support import check_supported

        check_supported(config, [target.backend for target in targets])  # and on a family a backend cannot take
    if config.verify_isa.isas and "export" in stages:
        from edgedistill.emulation.environment import Arm64Environment

        Arm64Environment.load()  # no emulation environment: say so before anything runs
    workdir = Path(config.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(workdir)
    manifest.update({"config": json.loads(config.model_dump_json()), "seed": config.seed,
                     "tools": library_versions(), "host": host_info(config.threads)})
    manifest.setdefault("stages", {})
    started = clock = time.perf_counter()
    seconds: dict[str, float] = {}  # wall time of each stage of this run (a cache hit takes ~0)

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 1)
        clock = now

    from edgedistill.tasks import load_data

    data = load_data(config)  # once for every stage of the run
    lap("data")
    teacher = None
    if "teacher" in stages:
        from edgedistill.training.teacher import run_teacher

        teacher = run_teacher(config, force=force, data=data)
        manifest["stages"]["teacher"] = _model_entry(teacher.path, teacher.cached, teacher.metrics)
        lap("teacher")
    if "distill" in stages:
        from edgedistill.training.distill import run_distill
        from edgedistill.training.teacher import run_teacher

        teacher = teacher or run_teacher(config, data=data)  # cached: the distill stage is handed its teacher
        for result in run_distill(config, teacher, data, force=force):
            manifest["stages"][result.role] = _model_entry(result.path, result.cached, result.metrics)
        lap("distill")  # every role (and the augmentation); each role's metrics.json has its train_time_s
    if "export" in stages:
        manifest["stages"]["export"] = run_exports(config, targets, force=force, data=data)
        lap("export")
        if config.verify_isa.isas:
            run_isa_checks(config, manifest["stages"]["export"], data, force=force)
            lap("verify_isa")
    if "bench" in stages:
        failures = {name: entry["error"] for name, entry in manifest["stages"].get("export", {}).items()
                    if entry["status"] != "verified"}
        manifest["stages"]["bench"] = run_bench_stage(config, force=force, data=data, targets=targets,
                                                      export_failures=failures)
        lap("bench")
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    manifest["last_run_seconds"] = round(time.perf_counter() - started, 1)
    manifest["last_run_stage_seconds"] = seconds
    write_json_atomic(workdir / MANIFEST, manifest)
    return manifest


def _read_manifest(workdir: Path) -> dict[str, Any]:
    try:
        return json.loads((workdir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _model_entry(path: Path, cached: bool, metrics: dict[str, Any]) -> dict[str, Any]:
    from edgedistill.export.stage import file_records

    stage = json.loads((path / "stage.json").read_text())
    scores = {key: value for key, value in metrics.items() if key.startswith("eval_") and isinstance(value, float)}
    return {"path": str(path), "cached": cached, "key": stage["key"], "files": file_records(path), **scores}


def run_exports(config: Config, targets: list[TargetConfig], *, force: bool = False,
                data: TaskData | None = None) -> dict[str, Any]:
    """Export every model in ``export_models`` to every target; a failed gate is recorded, not fatal."""
    from edgedistill.core.cache import reuse
    from edgedistill.tasks import load_data
    from edgedistill.export.backends.base import Artifact
    from edgedistill.export.model_files import source_hash
    from edgedistill.export.stage import ExportSettings, check_files, export_cache_key, export_target, exporter_fingerprint

    workdir = Path(config.workdir)
    data = data if data is not None else load_data(config)
    settings = ExportSettings.from_config(config)
    exporter = exporter_fingerprint()
    entries: dict[str, Any] = {}
    for role in config.export_models:
        model_dir = workdir / role
        if not (model_dir / "config.json").is_file():
            raise EdgeDistillError(f"export: {model_dir} does not exist; run the "
                                   f"{'teacher' if role == 'teacher' else 'distill'} stage first")
        source = source_hash(model_dir)
        for target in targets:
            name = f"{role}-{target.name}"
            out = workdir / "artifacts" / name
            key = export_cache_key(source, exporter, target, data.fingerprint, settings)
            existing = Artifact.open(out) if (out / "artifact.json").is_file() else None
            if existing is not None and reuse(f"export {name}", key, existing.info.get("cache_key"),
                                              not check_files(existing), force=force):
                entries[name] = {"status": "verified", "cached": True, "key": key, **_recorded(existing.info)}
                continue
            try:
                artifact = export_target(model_dir, target, data, out, settings, source_sha256=source,
                                         extra_info={"cache_key": key})
            except EdgeDistillError as exc:
                log.warning("export %s: %s", name, exc)
                entries[name] = {"status": "failed", "key": key, "error": str(exc),
                                 **{k: v for k in ("parity", "structure") if (v := getattr(exc, k, None))}}
                continue
            entries[name] = {"status": "verified", "cached": False, "key": key, **_recorded(artifact.info)}
    return entries


def run_isa_checks(config: Config, entries: dict[str, Any], data: TaskData, *, force: bool = False) -> None:
    """Replay every verified TFLite / ONNX artifact on each configured CPU (:mod:`edgedistill.emulation.replay`),
    record it in its ``artifact.json``, and put the verdicts in its export entry (``verified_on``). A record
    already in ``artifact.json`` for the same CPU, runtimes and sample count is reused (the artifact was not
    rebuilt since: a rebuild writes a new ``artifact.json``)."""
    from edgedistill.emulation.environment import Arm64Environment
    from edgedistill.emulation.replay import REPLAYABLE, record_verification, recorded_replay, replay, summary
    from edgedistill.export.backends.base import Artifact

    environment = Arm64Environment.load()
    checks = config.verify_isa
    for name, entry in entries.items():
        if entry["status"] != "verified":
            continue
        artifact = Artifact.open(Path(config.workdir) / "artifacts" / name)
        if artifact.target.backend not in REPLAYABLE:
            continue
        verdicts = []
        for cpu in checks.cpus:
            recorded = recorded_replay(artifact.info, cpu, min(checks.samples, len(data.eval)), environment)
            if recorded is not None and not force:
                log.info("verify_isa %s on arm64 %s: recorded %s, reused", name, cpu, recorded["verified"])
                verdicts.append({**summary(recorded), "cached": True})
                continue
            record = replay(artifact.path, data, cpu=cpu, samples=checks.samples, environment=environment)
            artifact = Artifact(artifact.path, record_verification(artifact.path, record))
            log.info("verify_isa %s on arm64 %s: %s", name, cpu, "passed" if record["passed"] else
                     "FAILED: " + "; ".join(record["failures"]))
            verdicts.append({**summary(record), "cached": False})
        entry["verified_on"] = verdicts


def _recorded(info: dict[str, Any]) -> dict[str, Any]:
    """What an export entry keeps of an artifact's ``artifact.json``: files, gate numbers, structure."""
    return {k: info[k] for k in ("files", "parity", "structure") if k in info}


def run_bench_stage(config: Config, *, force: bool = False, data: TaskData | None = None,
                    targets: list[TargetConfig] | None = None, export_failures: dict[str, str] | None = None
                    ) -> dict[str, Any]:
    """Benchmark the checkpoints and this config's artifacts into <workdir>/report, skipped when nothing
    measured has changed (artifacts of targets no longer configured are left out). ``export_failures``: the
    artifacts that failed their gate (name -> reason), listed in the report."""
    from edgedistill.bench.harness import discover, eval_gold, run_bench, settings_from
    from edgedistill.bench.report import write_report
    from edgedistill.core.cache import read_stage, reuse, stage_key, write_stage
    from edgedistill.core.targets import resolve_targets
    from edgedistill.tasks import get_task, load_data
    from edgedistill.export.model_card import update_cards
    from edgedistill.export.stage import file_records

    workdir = Path(config.workdir)
    out = workdir / "report"
    wanted = {f"{role}-{t.name}" for role in config.export_models for t in targets or resolve_targets(config)}
    items = [i for i in discover([workdir]) if i.kind == "checkpoint" or i.path.name in wanted]
    data = data if data is not None else load_data(config)
    b = config.bench
    inputs = {
        # logs and model cards (a bench rewrites the cards) do not change what is measured
        "items": {i.name: model_folder_hash(i.path) for i in items},
        "bench": b.model_dump(), "data": data.fingerprint, "threads": config.threads,
        "export_failures": export_failures or {},
    }
    key = stage_key("bench", inputs)
    recorded = (read_stage(out) or {}).get("key")
    if reuse("bench", key, recorded, all((out / f).is_file() for f in ("report.json", "report.md")), force=force):
        log.info("bench: report in %s", out)
        report = json.loads((out / "report.json").read_text(encoding="utf-8"))
        return {"path": str(out), "cached": True, "key": key, "files": file_records(out),
                "failed_rows": _failed_rows(report)}
    settings = settings_from(b, threads=config.threads, max_length=config.data.max_length,
                             eval_rows=len(data.eval))
    gold = eval_gold(get_task(config.task), data.eval, items, config.data.max_length)
    report = run_bench(items, data.eval.inputs, gold, settings, out, label_names=data.label_names)
    report["failed_artifacts"] = export_failures or {}
    write_report(report, out)
    update_cards(report)
    write_stage(out, "bench", key, {"items": list(inputs["items"])})
    log.info("bench: report written to %s", out / "report.md")
    return {"path": str(out), "cached": False, "key": key, "files": file_records(out),
            "failed_rows": _failed_rows(report)}


def _failed_rows(report: dict[str, Any]) -> list[str]:
    return [row["name"] for row in report["rows"] if row["status"] != "ok"]


def verify_run(workdir: Path) -> list[str]:
    """Every output the manifest records, re-hashed: the list of what changed (empty: all intact)."""
    from edgedistill.export.backends.base import Artifact
    from edgedistill.export.stage import check_files, diff_file_records, file_records

    manifest_path = Path(workdir) / MANIFEST
    if not manifest_path.is_file():
        raise EdgeDistillError(f"{workdir} has no {MANIFEST}: not a run folder (run `edgedistill run` first)")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    problems = []
    for name, entry in manifest.get("stages", {}).items():
        if name == "export":
            for artifact_name, record in entry.items():
                folder = Path(workdir) / "artifacts" / artifact_name
                if record["status"] != "verified":
                    continue
                if not (folder / "artifact.json").is_file():
                    problems.append(f"artifacts/{artifact_name}: missing")
                    continue
                problems += [f"artifacts/{artifact_name}/{p}" for p in check_files(Artifact.open(folder))]
        else:
            path = Path(entry["path"])
            if not path.is_dir():
                problems.append(f"{name}: {path} is missing")
                continue
            problems += [f"{path.name}/{p}" for p in diff_file_records(entry["files"], file_records(path))]
    return problems
