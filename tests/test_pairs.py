"""Sentence-pair tasks end to end: training, the parity gate, calibration and the bench all see both sentences."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from conftest import FILLER, NEGATIVE, POSITIVE
from test_pipeline import tiny_run_config

from edgedistill.export.stage import ExportSettings

SETTINGS = ExportSettings(max_length=24, threads=1, calibration_samples=8, seed=0)


def pair_rows(n: int, seed: int) -> list[tuple[str, str, int]]:
    """The label is decided by a sentiment word in the *second* sentence; the first is filler only, so a model
    (or a gate) that drops the second sentence is at chance."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        second = rng.sample(FILLER, 3)
        second.insert(rng.randrange(4), rng.choice(POSITIVE if label else NEGATIVE))
        rows.append((" ".join(rng.sample(FILLER, 4)), " ".join(second), label))
    return rows


@pytest.fixture(scope="module")
def pair_data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("toy_pairs")
    for name, n, seed in (("train.tsv", 96, 1), ("dev.tsv", 32, 2)):
        (folder / name).write_text("premise\thypothesis\tlabel\n" + "".join(
            f"{a}\t{b}\t{y}\n" for a, b, y in pair_rows(n, seed)), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory, tiny_encoder_dir, pair_data_dir):
    from edgedistill.pipeline import run_pipeline

    config = tiny_run_config(tmp_path_factory.mktemp("pairs"), tiny_encoder_dir, pair_data_dir, **{
        "data.text_column": "premise", "data.text_pair_column": "hypothesis", "data.max_length": 24,
        "distill.baseline": False, "distill.qat.enabled": False,
        "targets": ["onnx-fp32", "onnx-int8-dynamic",
                    {"name": "tflite-fp32-small", "backend": "tflite", "precision": "fp32",
                     "options": {"buckets": [16, 24]}}],
        "bench.seq_lengths": [16, 24]})
    return config, run_pipeline(config)


def test_a_pair_task_runs_from_teacher_to_bench_on_both_sentences(pair_run):
    config, manifest = pair_run
    workdir = Path(config.workdir)
    exports = manifest["stages"]["export"]
    assert sorted(exports) == ["student-onnx-fp32", "student-onnx-int8-dynamic", "student-tflite-fp32-small"]
    for name, entry in exports.items():
        assert entry["status"] == "verified", name
        parity = json.loads((workdir / "artifacts" / name / "artifact.json").read_text())["parity"]
        # Above chance only when the gate encodes the second sentence: with the first alone it is 0.5.
        assert parity["source_accuracy"] >= 0.8, (name, parity)
    report = json.loads((workdir / "report" / "report.json").read_text())
    rows = {r["name"]: r for r in report["rows"]}
    for name in ("student-pytorch-fp32", *exports):
        assert rows[name]["status"] == "ok" and rows[name]["accuracy"] >= 0.8, (name, rows[name].get("accuracy"))


def test_the_gate_and_calibration_encode_pairs_as_training_did(pair_data_dir, tiny_encoder_dir):
    from transformers import AutoTokenizer

    from edgedistill.core.config import load_config
    from edgedistill.data.task_data import load_task_data
    from edgedistill.data.encoding import padded_batches

    config = load_config(overrides={"data.dataset": str(pair_data_dir), "data.text_column": "premise",
                                    "data.text_pair_column": "hypothesis"})
    data = load_task_data(config.data, seed=0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    ids, mask = next(padded_batches(data.eval.inputs, tokenizer, 32))
    sep = tokenizer.sep_token_id
    assert all(list(row).count(sep) == 2 for row in ids)  # [CLS] premise [SEP] hypothesis [SEP]
    calibration = data.calibration_inputs(8, seed=0)
    assert all(isinstance(x, tuple) and len(x) == 2 for x in calibration)
    assert set(calibration) <= set(zip(data.train.texts, data.train.text_pairs))


def test_the_reference_runner_gives_a_bert_pair_its_token_types(tmp_path, tiny_tokenizer_dir):
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from conftest import make_tiny_bert
    from edgedistill.export.backends.pytorch import PyTorchRunner

    folder = make_tiny_bert(tmp_path / "bert", tiny_tokenizer_dir, with_head=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():  # a visible effect of the segment embedding on this random model
        model.bert.embeddings.token_type_embeddings.weight[1] += 1.0
        model.classifier.weight *= 1000.0  # logits of a useful size (the random head's are ~0.01)
    model.save_pretrained(folder)
    batch = tokenizer([("the film was good", "it was awful"), ("a movie", "dull")], padding=True, return_tensors="np")
    with torch.no_grad():
        trained_as = model(**{k: torch.from_numpy(v) for k, v in batch.items()}).logits.numpy()
        without_types = model(input_ids=torch.from_numpy(batch["input_ids"]),
                              attention_mask=torch.from_numpy(batch["attention_mask"])).logits.numpy()
    got = PyTorchRunner(folder, threads=1).predict(batch["input_ids"], batch["attention_mask"])
    assert np.abs(got - trained_as).max() < 1e-3
    assert np.abs(got - without_types).max() > 1e-2  # the test would pass silently without token types otherwise


@pytest.mark.parametrize("target_name", ["onnx-fp32", "tflite-fp32", "coreml-fp32"])
def test_a_bert_export_of_a_pair_task_passes_the_fp32_gate_with_its_token_types(tmp_path, tiny_tokenizer_dir,
                                                                                pair_data_dir, target_name):
    """ONNX feeds the derived token types as an input; TFLite and Core ML derive them inside the graph. The
    gate's reference reads the pair with its token types: an export that fed zeros would miss by > 1e-2."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from conftest import make_tiny_bert
    from edgedistill.core.config import TargetConfig, load_config
    from edgedistill.data.task_data import load_task_data
    from edgedistill.export.stage import export_target
    from edgedistill.core.targets import load_target

    folder = make_tiny_bert(tmp_path / "bert", tiny_tokenizer_dir, with_head=True)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    with torch.no_grad():
        model.bert.embeddings.token_type_embeddings.weight[1] += 1.0
        model.classifier.weight *= 1000.0
    model.save_pretrained(folder)
    config = load_config(overrides={"data.dataset": str(pair_data_dir), "data.text_column": "premise",
                                    "data.text_pair_column": "hypothesis"})
    data = load_task_data(config.data, seed=0)
    target = load_target(target_name)
    if target.backend != "onnx":  # buckets that hold the pairs (24 tokens at most)
        options = {**target.options, "buckets": [16, 24]}
        target = TargetConfig.model_validate({**target.model_dump(), "options": options})
    artifact = export_target(folder, target, data, tmp_path / "out", SETTINGS)  # fp32 gate: max |diff| <= 1e-4
    assert artifact.info["parity"]["max_abs"] <= 1e-4


def test_the_onnx_tokenizer_graph_refuses_a_pair_task(tmp_path, tiny_tokenizer_dir, pair_data_dir):
    pytest.importorskip("onnxruntime_extensions")
    from conftest import make_tiny_bert
    from edgedistill.core.config import load_config
    from edgedistill.data.task_data import load_task_data
    from edgedistill.core.errors import ConfigError
    from edgedistill.export.stage import export_target
    from edgedistill.core.targets import load_target

    folder = make_tiny_bert(tmp_path / "bert", tiny_tokenizer_dir, with_head=True)
    config = load_config(overrides={"data.dataset": str(pair_data_dir), "data.text_column": "premise",
                                    "data.text_pair_column": "hypothesis"})
    data = load_task_data(config.data, seed=0)
    target = load_target("onnx-int8-dynamic-with-tokenizer")
    target = target.model_copy(update={"tolerance": target.tolerance.model_copy(update={"min_agreement": 0.0,
                                                                                         "max_accuracy_drop": 100.0})})
    with pytest.raises(ConfigError, match="with_tokenizer builds a graph for single sentences"):
        export_target(folder, target, data, tmp_path / "out", SETTINGS)
    assert not (tmp_path / "out").exists()
