"""The backend contract on ONNX: every precision exports, loads and passes its gate; failures are clean."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import recheck

from edgedistill.export.backends.base import Artifact, ParityError
from edgedistill.core.config import TargetConfig
from edgedistill.core.errors import ConfigError, DataError, EdgeDistillError, ModelError
from edgedistill.export.stage import ExportSettings, check_files, export_target, verify_artifact
from edgedistill.core.hashing import sha256_file
from edgedistill.core.targets import load_target

PROFILES = ["pytorch-fp32", "onnx-fp32", "onnx-fp32-fused", "onnx-fp16", "onnx-int8-dynamic",
            "onnx-int8-dynamic-per-tensor", "onnx-int8-static", "onnx-fused-int8-dynamic"]


def export(model: Path, target, data, out: Path, **settings):
    settings = {"max_length": 32, "threads": 1, "calibration_samples": 64, "seed": 0, **settings}
    return export_target(model, target, data, out, ExportSettings(**settings))


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, tiny_student_dir, data):
    root = tmp_path_factory.mktemp("artifacts")
    return {name: export(tiny_student_dir, load_target(name), data, root / name) for name in PROFILES}


@pytest.mark.parametrize("name", PROFILES)
def test_each_precision_exports_and_its_record_is_what_it_computes(artifacts, name, tiny_student_dir, data):
    artifact = artifacts[name]
    info = json.loads((artifact.path / "artifact.json").read_text())
    parity = info["parity"]
    assert parity["samples"] == 200
    agreement, max_abs = recheck(artifact, tiny_student_dir, data, 48)  # run again here, outside the gate
    if info["target"]["precision"] == "fp32":
        assert max_abs <= 1e-4 and parity["gate"] == {"max_abs": 1e-4}
    else:
        assert max_abs > 1e-6  # really reduced precision, not an fp32 copy
        assert agreement == pytest.approx(1.0, abs=0.05) and parity["agreement"] >= agreement - 0.05
    for name_, record in info["files"].items():  # artifact.json hashes match the files
        assert sha256_file(artifact.path / name_) == record["sha256"]
        assert (artifact.path / name_).stat().st_size == record["bytes"]
    for required in ("config.json", "tokenizer.json", "vocab.txt", *info["model_files"]):
        assert (artifact.path / required).is_file()
    assert info["label_names"] == ["negative", "positive"]
    assert info["tools"]["onnxruntime"] and info["source"]["sha256"]


def test_quantized_files_are_smaller_and_reduced(artifacts):
    import onnx

    size = {name: (a.path / a.info["model_files"][0]).stat().st_size for name, a in artifacts.items()}
    assert size["onnx-fp16"] < size["onnx-fp32"] * 0.85
    assert size["onnx-fused-int8-dynamic"] < size["onnx-fp32"] * 0.6
    graph = onnx.load(str(artifacts["onnx-int8-dynamic"].path / "model.onnx"))
    ops = {node.op_type for node in graph.graph.node}
    assert ops & {"DynamicQuantizeLinear", "MatMulInteger", "DynamicQuantizeMatMul"}
    static = {n.op_type for n in onnx.load(str(artifacts["onnx-int8-static"].path / "model.onnx")).graph.node}
    assert "QuantizeLinear" in static


def test_optimum_loads_the_onnx_artifact(artifacts, tiny_student_dir):
    import torch
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = artifacts["onnx-fp32"].path
    ort_model = ORTModelForSequenceClassification.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    batch = tokenizer(["a great film", "the plot was dull and the acting bad"], return_tensors="pt", padding=True)
    reference = AutoModelForSequenceClassification.from_pretrained(tiny_student_dir).eval()
    with torch.no_grad():
        expected = reference(**batch).logits.numpy()
    np.testing.assert_allclose(ort_model(**batch).logits.numpy(), expected, atol=1e-4)


def test_planted_mismatch_fails_the_gate_and_leaves_nothing(tmp_path, tiny_student_dir, data, monkeypatch):
    import onnx
    from onnx import numpy_helper

    from edgedistill.export.backends.onnx import OnnxBackend

    original = OnnxBackend._export_fp32

    def perturbed(model_dir, out, options, cls_only_last_layer, split=None):
        path = original(model_dir, out, options, cls_only_last_layer, split)
        model = onnx.load(str(path))
        for init in model.graph.initializer:
            if "classifier.weight" in init.name:
                init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 0.5, init.name))
        onnx.save(model, str(path))
        return path

    monkeypatch.setattr(OnnxBackend, "_export_fp32", staticmethod(perturbed))
    out = tmp_path / "bad"
    with pytest.raises(ParityError, match=r"target onnx-fp32: the onnx fp32 artifact failed verification .* "
                                          r"max \|logit difference\| .* > 0.0001 .* No artifact was written"):
        export(tiny_student_dir, load_target("onnx-fp32"), data, out)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_a_failed_export_keeps_the_previous_artifact(tmp_path, tiny_student_dir, data, monkeypatch):
    out = tmp_path / "art"
    export(tiny_student_dir, load_target("onnx-fp32"), data, out)
    before = sha256_file(out / "model.onnx")
    from edgedistill.export.backends.onnx import OnnxBackend

    def broken(*args, **kwargs):
        raise RuntimeError("converter crashed")

    monkeypatch.setattr(OnnxBackend, "_export_fp32", staticmethod(broken))
    with pytest.raises(RuntimeError):
        export(tiny_student_dir, load_target("onnx-fp32"), data, out)
    assert sha256_file(out / "model.onnx") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_truncated_model_file_is_named(tmp_path, artifacts):
    import shutil

    from edgedistill.export.backends.onnx import OnnxRunner

    copy = tmp_path / "copy"
    shutil.copytree(artifacts["onnx-fp32"].path, copy)
    model = copy / "model.onnx"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(EdgeDistillError, match=r"model.onnx: changed \(sha256"):
        verify_artifact(copy, None, threads=1)
    with pytest.raises(ModelError, match=r"ONNX Runtime cannot load .*model.onnx"):
        OnnxRunner(model, threads=1)


def test_verify_detects_a_one_byte_change_and_passes_when_intact(tmp_path, artifacts, data):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(artifacts["onnx-int8-dynamic"].path, copy)
    result = verify_artifact(copy, data, threads=1)
    assert result["files"] == "ok" and result["parity"]["passed"]
    tokenizer = copy / "tokenizer_config.json"
    raw = bytearray(tokenizer.read_bytes())
    raw[-2] = ord(" ") if raw[-2] != ord(" ") else ord("\t")
    tokenizer.write_bytes(bytes(raw))
    assert [p.split(":")[0] for p in check_files(Artifact.open(copy))] == ["tokenizer_config.json"]


def test_empty_calibration_set_is_a_clear_error(tmp_path, tiny_student_dir, data):
    from edgedistill.export.backends.base import Calibration
    from edgedistill.export.backends.onnx import OnnxBackend

    with pytest.raises(DataError, match="the calibration sample needs at least one sentence"):
        export(tiny_student_dir, load_target("onnx-int8-static"), data, tmp_path / "a", calibration_samples=0)
    with pytest.raises(ConfigError, match="int8-static needs calibration text"):
        OnnxBackend().export(tiny_student_dir, load_target("onnx-int8-static"), Calibration([], 32), tmp_path)


def test_bad_targets_are_named():
    with pytest.raises(ConfigError, match=r"unknown target 'onnx-int4'; the profiles are: .*onnx-fp32"):
        load_target("onnx-int4")
    from edgedistill.export.backends.onnx import OnnxBackend

    with pytest.raises(ValueError, match="target x: precision 'palettize-4' is not built by the onnx backend"):
        TargetConfig(name="x", backend="onnx", precision="palettize-4")  # refused when the target is built
    unchecked = TargetConfig.model_construct(name="x", backend="onnx", precision="palettize-4", options={})
    with pytest.raises(ConfigError, match="the onnx backend has no precision 'palettize-4'; choose one of"):
        OnnxBackend().export(Path("."), unchecked, None, Path("."))  # and again by the backend itself
    with pytest.raises(ValueError, match=r"target x: unknown onnx option 'fuse'; valid: fused, per_channel"):
        TargetConfig(name="x", backend="onnx", options={"fuse": True})  # refused when the target is built
