"""`edgedistill run` on tiny models: every stage, a second run of cache hits, the manifest and verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgedistill.core.config import load_config
from edgedistill.core.errors import ConfigError
from edgedistill.pipeline import run_pipeline, select_stages, verify_run

TINY_TARGETS = [
    "onnx-fp32",
    "onnx-int8-dynamic",
    {"name": "tflite-fp32-small", "backend": "tflite", "precision": "fp32", "options": {"buckets": [8, 16]}},
]


def tiny_run_config(workdir: Path, model: Path, data: Path, **overrides):
    base = {
        "teacher.model": str(model), "data.dataset": str(data), "data.max_length": 16,
        "data.label_names": ["negative", "positive"],
        "teacher.epochs": 16, "teacher.learning_rate": 1e-3, "teacher.batch_size": 8,
        "teacher.warmup_ratio": 0.0, "teacher.min_steps": 0, "distill.layers": 2, "distill.epochs": 4,
        "distill.learning_rate": 1e-3,
        "distill.batch_size": 8, "distill.warmup_ratio": 0.0, "workdir": str(workdir), "threads": 1,
        "data.calibration_samples": 16, "targets": TINY_TARGETS,
        "bench.batch_sizes": [1], "bench.seq_lengths": [8, 16], "bench.real_samples": 5, "bench.min_time": 0.01,
    }
    base.update(overrides)
    return load_config(overrides=base)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_encoder_dir, toy_data_dir):
    workdir = tmp_path_factory.mktemp("run")
    config = tiny_run_config(workdir, tiny_encoder_dir, toy_data_dir)
    return config, run_pipeline(config)


def test_one_run_goes_from_teacher_to_verified_artifacts_and_a_report(finished_run):
    config, manifest = finished_run
    workdir = Path(config.workdir)
    stages = manifest["stages"]
    assert {"teacher", "student", "baseline", "export", "bench"} <= set(stages)
    assert sorted(stages["export"]) == ["student-onnx-fp32", "student-onnx-int8-dynamic", "student-tflite-fp32-small"]
    assert all(e["status"] == "verified" for e in stages["export"].values())
    report = json.loads((workdir / "report" / "report.json").read_text())
    names = [r["name"] for r in report["rows"]]
    assert names[0] == "teacher-pytorch-fp32" and "student-tflite-fp32-small" in names
    assert all(r["status"] == "ok" for r in report["rows"])
    on_disk = json.loads((workdir / "manifest.json").read_text())
    assert on_disk["seed"] == 42 and on_disk["config"]["distill"]["layers"] == 2
    assert on_disk["tools"]["torch"] and on_disk["host"]["cpu"]
    seconds = on_disk["last_run_stage_seconds"]
    assert list(seconds) == ["data", "teacher", "distill", "export", "bench"]
    assert seconds["teacher"] > 0 and sum(seconds.values()) <= on_disk["last_run_seconds"] + 0.5
    assert verify_run(workdir) == []


def test_second_run_is_all_cache_hits(finished_run, caplog):
    config, first = finished_run
    with caplog.at_level("INFO", logger="edgedistill"):
        again = run_pipeline(config)
    stages = again["stages"]
    assert all(stages[k]["cached"] for k in ("teacher", "student", "baseline", "bench"))
    assert set(again["last_run_stage_seconds"]) == set(first["last_run_stage_seconds"])
    assert all(e["cached"] for e in stages["export"].values())
    for line in ("teacher: cache hit", "student: cache hit", "baseline: cache hit",
                 "export student-onnx-fp32: cache hit", "bench: cache hit"):
        assert line in caplog.text


@pytest.mark.parametrize("relative", [
    "artifacts/student-onnx-int8-dynamic/model.onnx",
    "artifacts/student-tflite-fp32-small/tokenizer.json",
    "student/model.safetensors",
    "report/report.json",
])
def test_verify_names_a_one_byte_change_in_any_output(finished_run, relative):
    config, _ = finished_run
    path = Path(config.workdir) / relative
    original = path.read_bytes()
    try:
        changed = bytearray(original)
        changed[len(changed) // 2] ^= 0x01
        path.write_bytes(bytes(changed))
        problems = verify_run(Path(config.workdir))
        assert len(problems) == 1 and problems[0].startswith(relative + ": changed")
    finally:
        path.write_bytes(original)
    assert verify_run(Path(config.workdir)) == []


def test_only_and_from_select_stages():
    assert select_stages() == ["teacher", "distill", "export", "bench"]
    assert select_stages(only="export") == ["export"]
    assert select_stages(start="export") == ["export", "bench"]
    with pytest.raises(ConfigError, match="unknown stage 'train'; the stages are: teacher, distill, export, bench"):
        select_stages(only="train")


def test_unknown_target_fails_before_any_training(tmp_path, tiny_encoder_dir, toy_data_dir):
    config = tiny_run_config(tmp_path, tiny_encoder_dir, toy_data_dir, targets=["onnx-int2"])
    with pytest.raises(ConfigError, match="unknown target 'onnx-int2'; the profiles are:"):
        run_pipeline(config)
    assert not (tmp_path / "teacher").exists()


def test_an_artifact_built_by_other_export_code_is_rebuilt(finished_run, monkeypatch, caplog):
    import edgedistill.export.stage

    config, _ = finished_run
    monkeypatch.setattr(edgedistill.export.stage, "exporter_fingerprint", lambda: "another version of the exporters")
    with caplog.at_level("INFO", logger="edgedistill"):
        again = run_pipeline(config, only="export")
    assert not any(e["cached"] for e in again["stages"]["export"].values())
    assert "export student-onnx-fp32: cache hit" not in caplog.text


def _arm64_environment_missing() -> str | None:
    from edgedistill.emulation.environment import Arm64Environment, EnvironmentUnavailable

    try:
        Arm64Environment.load()
    except EnvironmentUnavailable as exc:
        return str(exc)
    return None


@pytest.mark.skipif(_arm64_environment_missing() is not None, reason="no arm64 emulation environment "
                                                                     "(`edgedistill arm64 setup`)")
def test_a_run_with_verify_isa_replays_each_tflite_and_onnx_artifact_once(finished_run, tmp_path, caplog):
    import shutil

    config, _ = finished_run
    workdir = Path(shutil.copytree(config.workdir, tmp_path / "run"))
    checked = config.model_copy(update={"workdir": workdir, "verify_isa": config.verify_isa.model_copy(
        update={"isas": ["arm64"], "samples": 8})})
    entries = run_pipeline(checked, only="export")["stages"]["export"]
    for name, entry in entries.items():
        (verdict,) = entry["verified_on"]
        assert verdict["cpu"] == "cortex-a76" and verdict["passed"] and not verdict["cached"], name
        record = json.loads((workdir / "artifacts" / name / "artifact.json").read_text())["verified_on"]
        assert record[0]["samples"] == 8
    with caplog.at_level("INFO", logger="edgedistill"):
        again = run_pipeline(checked, only="export")
    assert list(again["last_run_stage_seconds"]) == ["data", "export", "verify_isa"]
    assert all(e["verified_on"][0]["cached"] for e in again["stages"]["export"].values())
    assert "verify_isa student-onnx-fp32 on arm64 cortex-a76: recorded" in caplog.text
