"""Core ML: every precision converts and passes its gate (emulated on Linux); spec checks; the emulator
against PyTorch; flexible shapes; the macOS runner where Core ML exists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import recheck

from edgedistill.export.backends.base import InputTooLongError
from edgedistill.export.backends.coreml import CoreMLRunner, EmulatedCoreMLRunner, coreml_runtime_available
from edgedistill.export.backends.coreml_spec import describe_package
from edgedistill.export.backends.mil_emulator import MILEmulator, UnsupportedOpError
from edgedistill.core.errors import ConfigError, ExportError
from edgedistill.export.stage import ExportSettings, export_target
from edgedistill.core.targets import load_target

SETTINGS = ExportSettings(max_length=16, threads=1, calibration_samples=0, seed=0)

pytest.importorskip("coremltools")

PROFILES = ["coreml-fp32", "coreml-fp16", "coreml-int8-weights", "coreml-palettize-6", "coreml-palettize-4"]
BUCKETS = [8, 16]
TINY_OPTIONS = {"buckets": BUCKETS, "weight_threshold": 256}  # the tiny model's matrices are 32x32 and 64x32


def tiny_target(name: str, **options):
    target = load_target(name)
    return target.model_copy(update={"options": {**target.options, **TINY_OPTIONS, **options}})


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, tiny_student_dir, data):
    root = tmp_path_factory.mktemp("coreml")
    return {name: export_target(tiny_student_dir, tiny_target(name), data, root / name, SETTINGS)
            for name in PROFILES}


def torch_logits(model_dir, ids, mask):
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids).long(), attention_mask=torch.tensor(mask).long()).logits.numpy()


def toy_batch(n: int = 6, length: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 40, size=(n, length)).astype(np.int32)
    ids[:, 0] = 2
    mask = np.ones_like(ids)
    for row in range(n):  # varied real lengths, right-padded
        used = int(rng.integers(3, length + 1))
        ids[row, used - 1], ids[row, used:], mask[row, used:] = 3, 0, 0
    return ids, mask


@pytest.mark.parametrize("name", PROFILES)
def test_each_precision_converts_and_is_verified_on_the_labelled_emulator(artifacts, name, tiny_student_dir, data):
    info = json.loads((artifacts[name].path / "artifact.json").read_text())
    parity = info["parity"]
    assert parity["samples"] == 200
    if coreml_runtime_available():
        assert parity["runtime"] == "coreml"
    else:
        assert "emulated" in parity["runtime"] and "not Core ML" in parity["runtime"]
        assert "latency needs macOS" in info["note"]
    agreement, max_abs = recheck(artifacts[name], tiny_student_dir, data, 12)  # run again, outside the gate
    if info["target"]["precision"] == "fp32":
        assert max_abs <= 1e-4
    else:
        assert max_abs > 1e-5 and agreement >= 11 / 12
    assert info["model_files"] == ["model.mlpackage"]
    assert any(name.startswith("model.mlpackage/Data/") for name in info["files"])
    assert (artifacts[name].path / "tokenizer.json").is_file()


def test_spec_declares_int32_inputs_enumerated_buckets_float32_logits_and_metadata(artifacts):
    structure = json.loads((artifacts["coreml-fp16"].path / "artifact.json").read_text())["structure"]
    inputs = {f["name"]: f for f in structure["inputs"]}
    assert set(inputs) == {"input_ids", "attention_mask"}
    for feature in inputs.values():
        assert feature["dtype"] == "INT32" and feature["enumerated_shapes"] == [[1, 8], [1, 16]]
    assert structure["outputs"] == [{"name": "logits", "dtype": "FLOAT32", "shape": [1, 2]}]
    assert structure["op_counts"]["linear"] == 2 * 6 + 2  # 6 per layer (q, k, v, out, 2 FFN) + pre-classifier + head
    assert json.loads(structure["metadata"]["edgedistill.label_names"]) == ["negative", "positive"]
    assert len(structure["metadata"]["edgedistill.source_sha256"]) == 64


def test_weights_have_the_precision_the_target_asked_for(artifacts):
    structures = {name: describe_package(artifacts[name].path / "model.mlpackage") for name in PROFILES}
    assert "float16" not in structures["coreml-fp32"]["weight_tensors"]
    assert "float32" not in structures["coreml-fp16"]["weight_tensors"]
    assert structures["coreml-int8-weights"]["compressed_weights"]["constexpr_blockwise_shift_scale"] >= 14
    assert structures["coreml-int8-weights"]["weight_tensors"]["int8"]["tensors"] >= 14
    assert structures["coreml-palettize-6"]["weight_tensors"]["uint6"]["tensors"] >= 14
    assert structures["coreml-palettize-4"]["weight_tensors"]["uint4"]["tensors"] >= 14
    sizes = [structures[name]["weight_file_bytes"] for name in
             ("coreml-fp32", "coreml-fp16", "coreml-int8-weights", "coreml-palettize-6", "coreml-palettize-4")]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > 1.9 * sizes[1]


def test_the_emulator_matches_pytorch_within_tolerance(artifacts, tiny_student_dir):
    ids, mask = toy_batch()
    reference = torch_logits(tiny_student_dir, ids, mask)
    fp32 = MILEmulator(artifacts["coreml-fp32"].path / "model.mlpackage")
    fp16 = MILEmulator(artifacts["coreml-fp16"].path / "model.mlpackage")
    out32 = np.concatenate([fp32.run({"input_ids": i[None], "attention_mask": m[None]})["logits"]
                            for i, m in zip(ids, mask, strict=True)])
    out16 = np.concatenate([fp16.run({"input_ids": i[None], "attention_mask": m[None]})["logits"]
                            for i, m in zip(ids, mask, strict=True)])
    assert np.abs(out32 - reference).max() <= 1e-4  # stated tolerance: fp32 program, float32 arithmetic
    assert 1e-4 < np.abs(out16 - reference).max() <= 5e-2  # fp16 activations are really rounded
    assert (out16.argmax(-1) == reference.argmax(-1)).all()


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_the_emulator_runs_a_bert_classifier_with_either_attention(tmp_path, tiny_tokenizer_dir, data, attention,
                                                                   monkeypatch):
    """BERT adds token-type embeddings and a pooler; eager attention converts to matmul + softmax. The last of
    the 4 layers is the [CLS]-only layer, its attention written out (one softmax) under either."""
    from conftest import make_tiny_bert
    from transformers import AutoModelForSequenceClassification

    folder = make_tiny_bert(tmp_path / "bert", tiny_tokenizer_dir, with_head=True)
    load = AutoModelForSequenceClassification.from_pretrained
    monkeypatch.setattr(AutoModelForSequenceClassification, "from_pretrained",
                        lambda path, **kw: load(path, attn_implementation=attention, **kw))
    artifact = export_target(folder, tiny_target("coreml-fp32"), data, tmp_path / "out", SETTINGS)
    ops = artifact.info["structure"]["op_counts"]
    assert ops["softmax"] == (4 if attention == "eager" else 1)
    assert ops.get("scaled_dot_product_attention", 0) == (3 if attention == "sdpa" else 0)
    ids, mask = toy_batch()
    runner = EmulatedCoreMLRunner(artifact.path / "model.mlpackage")
    assert np.abs(runner.predict(ids, mask) - torch_logits(folder, ids, mask)).max() <= 1e-4


def test_the_emulator_names_an_op_it_has_no_rule_for(artifacts, monkeypatch):
    from edgedistill.export.backends import mil_emulator

    monkeypatch.delitem(mil_emulator._RULES, "gelu")
    with pytest.raises(UnsupportedOpError, match="no numpy rule for op\\(s\\) gelu"):
        MILEmulator(artifacts["coreml-fp16"].path / "model.mlpackage")


def test_runner_pads_to_the_smallest_declared_length_and_refuses_longer_input_when_asked(artifacts):
    package = artifacts["coreml-fp32"].path / "model.mlpackage"
    runner = EmulatedCoreMLRunner(package)
    assert runner.lengths == BUCKETS and runner.bucket_for(5) == 8 and runner.bucket_for(9) == 16
    assert runner.measures_latency is False
    ids, mask = toy_batch(3, 6)
    wide_ids, wide_mask = np.pad(ids, ((0, 0), (0, 10))), np.pad(mask, ((0, 0), (0, 10)))
    np.testing.assert_allclose(runner.predict(ids, mask), runner.predict(wide_ids, wide_mask), atol=1e-5)
    long_ids = np.full((1, 20), 7)
    with pytest.warns(UserWarning, match="truncated to 16"):
        assert runner.predict(long_ids, np.ones_like(long_ids)).shape == (1, 2)
    with pytest.raises(InputTooLongError, match="20 tokens is longer than the model's largest shape \\(16\\)"):
        EmulatedCoreMLRunner(package, overflow="refuse").predict(long_ids, np.ones_like(long_ids))


def test_range_shapes_accept_any_length_up_to_the_largest_bucket(tmp_path, tiny_student_dir, data):
    target = tiny_target("coreml-fp16", shapes="range", deployment_target="iOS17")
    artifact = export_target(tiny_student_dir, target, data, tmp_path / "range", SETTINGS)
    inputs = {f["name"]: f for f in artifact.info["structure"]["inputs"]}
    assert inputs["input_ids"]["shape_range"] == [[1, 1], [1, 16]]
    runner = EmulatedCoreMLRunner(artifact.path / "model.mlpackage")
    assert runner.bucket_for(5) == 5 and runner.bucket_for(30) == 16
    assert artifact.info["parity"]["agreement"] >= 0.99


def test_option_errors_name_the_problem(tmp_path, tiny_student_dir, data):
    with pytest.raises(ConfigError, match="enumerated shapes on two inputs need deployment_target iOS18"):
        export_target(tiny_student_dir, tiny_target("coreml-fp16", deployment_target="iOS16"), data,
                      tmp_path / "a", SETTINGS)
    with pytest.raises(ConfigError, match="options.compute_units: Input should be 'ALL', 'CPU_ONLY'"):
        export_target(tiny_student_dir, tiny_target("coreml-fp16", compute_units="GPU"), data,
                      tmp_path / "b", SETTINGS)
    with pytest.raises(ExportError, match="no weights were quantized to int8 .* weight_threshold \\(100000\\)"):
        export_target(tiny_student_dir, tiny_target("coreml-int8-weights", weight_threshold=100000), data,
                      tmp_path / "c", SETTINGS)
    assert not (tmp_path / "c").exists()


@pytest.mark.skipif(not coreml_runtime_available(),
                    reason="Core ML runs models only on macOS: the Linux coremltools wheel has no libcoremlpython")
def test_coreml_itself_agrees_with_the_emulator_on_macos(artifacts):
    ids, mask = toy_batch()
    for name in ("coreml-fp32", "coreml-fp16"):
        package = artifacts[name].path / "model.mlpackage"
        real = CoreMLRunner(package, "CPU_ONLY").predict(ids, mask)
        emulated = EmulatedCoreMLRunner(package).predict(ids, mask)
        assert np.abs(real - emulated).max() <= (1e-4 if name == "coreml-fp32" else 5e-2)


@pytest.mark.skipif(coreml_runtime_available(), reason="on macOS the Core ML row has real latency")
def test_bench_reports_emulated_accuracy_and_no_latency(tmp_path, artifacts, data, tiny_student_dir, monkeypatch):
    from edgedistill.bench.harness import BenchSettings, discover, run_bench
    from edgedistill.bench.report import render_markdown

    monkeypatch.chdir(tiny_student_dir.parent)  # a relative checkpoint path still pairs with the artifact's source
    items = discover([Path(tiny_student_dir.name), artifacts["coreml-int8-weights"].path])
    settings = BenchSettings(threads=1, batch_sizes=(1,), seq_lengths=(16,), reference=(1, 16), max_length=16,
                             real_samples=5, timing={"warmup_runs": 1, "warmup_s": 0.0, "min_runs": 3, "min_s": 0.0})
    report = run_bench(items, data.eval.texts, data.eval.labels, settings, tmp_path, progress=False)
    row = next(r for r in report["rows"] if r["backend"] == "coreml")
    assert row["status"] == "ok" and row["latency"] == [] and row["reference_latency"] is None
    assert "latency needs macOS" in row["latency_note"] and "emulated" in row["runtime"]
    source = next(r for r in report["rows"] if r["backend"] == "pytorch")
    assert abs(row["accuracy"] - source["accuracy"]) <= 0.01 and 0 < row["max_logit_diff"] < 0.5
    package_bytes = sum(f.stat().st_size for f in (artifacts["coreml-int8-weights"].path / "model.mlpackage")
                        .rglob("*") if f.is_file())
    assert row["size_bytes"] == package_bytes
    markdown = render_markdown(report)
    assert "n/a: emulated†" in markdown and "n/a†" in markdown and "Core ML latency needs macOS" in markdown


def test_emulator_rules_agree_with_reference_math():
    """Rules no tiny export exercises, checked against torch/numpy on fixed inputs."""
    import torch
    from edgedistill.export.backends.mil_emulator import _RULES

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    for mode, approximate in (("EXACT", "none"), ("TANH_APPROXIMATION", "tanh")):
        expected = torch.nn.functional.gelu(torch.tensor(x), approximate=approximate).numpy()
        np.testing.assert_allclose(_RULES["gelu"]({"x": x, "mode": mode}), expected, atol=1e-6)
    np.testing.assert_allclose(_RULES["softmax"]({"x": x, "axis": 1}), torch.softmax(torch.tensor(x), 1).numpy(),
                               atol=1e-6)
    y = rng.standard_normal((2, 5, 4)).astype(np.float32)
    np.testing.assert_allclose(_RULES["matmul"]({"x": x, "y": y, "transpose_y": True}), x @ y.swapaxes(1, 2),
                               atol=1e-6)
    gamma, beta = np.full(4, 2.0, np.float32), np.full(4, 0.5, np.float32)
    expected = torch.nn.functional.layer_norm(torch.tensor(x), (4,), torch.tensor(gamma), torch.tensor(beta),
                                              1e-5).numpy()
    np.testing.assert_allclose(_RULES["layer_norm"]({"x": x, "axes": [-1], "gamma": gamma, "beta": beta,
                                                     "epsilon": 1e-5}), expected, atol=1e-5)
    np.testing.assert_allclose(_RULES["reduce_mean"]({"x": x, "axes": [1], "keep_dims": True}),
                               x.mean(1, keepdims=True), atol=1e-6)
    sliced = _RULES["slice_by_index"]({"x": x, "begin": [0, 1, 0], "end": [0, 3, 4], "stride": [1, 1, 2],
                                       "begin_mask": [True, False, False], "end_mask": [True, False, False],
                                       "squeeze_mask": [False, False, False]})
    np.testing.assert_array_equal(sliced, x[:, 1:3, 0:4:2])
    squeezed = _RULES["slice_by_index"]({"x": x, "begin": [1, 0, 0], "end": [2, 3, 4],
                                         "squeeze_mask": [True, False, False]})
    np.testing.assert_array_equal(squeezed, x[1])
    mask = np.array([[True, False, True]])
    q = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
    expected = torch.nn.functional.scaled_dot_product_attention(torch.tensor(q), torch.tensor(q), torch.tensor(q),
                                                                attn_mask=torch.tensor(mask)).numpy()
    np.testing.assert_allclose(_RULES["scaled_dot_product_attention"]({"query": q, "key": q, "value": q,
                                                                        "attn_mask": mask}), expected, atol=1e-5)
    with pytest.raises(UnsupportedOpError, match="gelu mode 'CUBIC'"):
        _RULES["gelu"]({"x": x, "mode": "CUBIC"})
