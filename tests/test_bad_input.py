"""Bad input the pipeline must meet with a clear message or a handled case, never a lost file."""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest

from edgedistill.core.atomic import atomic_directory
from edgedistill.core.config import DataConfig, load_config
from edgedistill.data.task_data import load_task_data
from edgedistill.core.errors import ConfigError, EdgeDistillError, ModelError
from edgedistill.export.stage import ExportSettings
from edgedistill.core.targets import load_target

SETTINGS = ExportSettings(max_length=32, threads=1, calibration_samples=16, seed=0)

ODD_TEXTS = ["", "   ", "🙂🔥 great 👍", "x" * 10_000, "bad\x00\x07\x1b[31m movie\u200b\u202e", "a\tb\nc"]


def test_output_folder_under_a_file_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EdgeDistillError, match=r"cannot write .*teacher: .*file is a file, not a folder .*--workdir or --out"):
        with atomic_directory(blocker / "teacher"):
            pass


def test_full_disk_on_publish_keeps_the_old_output(tmp_path, monkeypatch):
    final = tmp_path / "student"
    final.mkdir()
    (final / "model.safetensors").write_text("previous")

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(EdgeDistillError, match=r"cannot write .*student: No space left on device; nothing already "
                                               r"there was changed"):
        with atomic_directory(final) as tmp:
            (tmp / "model.safetensors").write_text("new")
            monkeypatch.setattr(os, "replace", no_space)
    monkeypatch.undo()
    assert (final / "model.safetensors").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student"]


def test_truncated_teacher_weights_are_named(tmp_path, tiny_encoder_dir, toy_data_dir):
    from edgedistill.training.teacher import run_teacher

    broken = tmp_path / "broken"
    shutil.copytree(tiny_encoder_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    config = load_config(overrides={"teacher.model": str(broken), "data.dataset": str(toy_data_dir),
                                    "workdir": str(tmp_path / "w")})
    with pytest.raises(ModelError, match=r"cannot load .*broken as a sequence classifier"):
        run_teacher(config)
    assert not (tmp_path / "w" / "teacher").exists()


def test_foreign_file_as_a_target_profile(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="a target profile is a mapping of keys"):
        load_target(path)
    path.write_text("backend: tpu\nprecision: fp32\n")
    with pytest.raises(ConfigError, match=r"t.yaml: backend: Input should be 'pytorch', 'onnx', 'tflite' or 'coreml'"):
        load_target(path)
    path.write_text("backend: onnx\nprecision: int3\n")
    with pytest.raises(ConfigError, match=r"precision: Input should be 'fp32', 'fp16', 'int8-dynamic'"):
        load_target(path)
    path.write_text("backend: onnx\ncls_only_last_layer: sometimes\n")
    with pytest.raises(ConfigError, match=r"t.yaml: cls_only_last_layer: Input should be a valid boolean"):
        load_target(path)
    path.write_text("backend: onnx\ncls_only_last_layer: false\n")
    assert load_target(path).cls_only_last_layer is False and load_target("onnx-fp32").cls_only_last_layer is True
    path.write_text("backend: onnx\n  precision: fp32\n")
    with pytest.raises(ConfigError, match=r"t.yaml: invalid YAML at line 2"):
        load_target(path)


def test_inline_target_with_a_bad_key_in_the_config():
    with pytest.raises(ConfigError, match=r"targets.0.*backend"):
        load_config(overrides={"targets": [{"name": "x", "backend": "tensorrt"}]})


def test_odd_text_loads_as_data(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps({"sentence": t, "label": i % 2}) for i, t in enumerate(ODD_TEXTS)) + "\n")
    data = load_task_data(DataConfig(dataset=str(path), eval_fraction=0.2, label_names=None), seed=0)
    assert sorted(data.train.texts + data.eval.texts) == sorted(ODD_TEXTS)  # JSONL text is kept verbatim


@pytest.mark.parametrize("profile", ["pytorch-fp32", "onnx-int8-dynamic", "tflite-fp32"])
def test_odd_text_at_benchmark_time_gives_finite_logits(tmp_path, tiny_student_dir, export_data_dir, profile):
    from edgedistill.export.backends.base import get_backend
    from edgedistill.bench.worker import _batch, _tokenizer
    from edgedistill.export.stage import export_target

    data = load_task_data(DataConfig(dataset=str(export_data_dir), label_names=["negative", "positive"]))
    target = load_target(profile)
    if target.backend == "tflite":
        target = target.model_copy(update={"options": {"buckets": [16, 32]}})
    artifact = export_target(tiny_student_dir, target, data, tmp_path / "a", replace(SETTINGS, verify_samples=32))
    runner = get_backend(target.backend).load(artifact, threads=1)
    tokenizer = _tokenizer(artifact.path, max_length=32)
    logits = runner.predict(*_batch(tokenizer, ODD_TEXTS))
    assert logits.shape == (len(ODD_TEXTS), 2) and np.isfinite(logits).all()
