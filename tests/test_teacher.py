"""The teacher stage on a tiny random BERT: fine-tuning lowers the loss, the cache hits and misses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgedistill.core.config import load_config
from edgedistill.core.errors import ModelError
from edgedistill.training.teacher import run_teacher


def teacher_config(workdir: Path, model: Path, data: Path, **overrides):
    base = {
        "teacher.model": str(model),
        "data.dataset": str(data),
        "data.max_length": 16,
        "data.label_names": ["negative", "positive"],
        "teacher.epochs": 16,
        "teacher.learning_rate": 1e-3,
        "teacher.batch_size": 8,
        "teacher.warmup_ratio": 0.0,
        "teacher.min_steps": 0,
        "teacher.logging_steps": 4,
        "workdir": str(workdir),
        "threads": 1,
    }
    base.update(overrides)
    return load_config(overrides=base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_encoder_dir, toy_data_dir):
    config = teacher_config(tmp_path_factory.mktemp("run"), tiny_encoder_dir, toy_data_dir)
    return config, run_teacher(config)


def test_fine_tune_lowers_the_loss_and_saves_a_pretrained_folder(trained):
    config, result = trained
    assert not result.cached
    metrics = json.loads((result.path / "metrics.json").read_text())
    assert metrics["fine_tuned"] is True
    assert metrics["eval_loss"] < metrics["initial_eval_loss"] - 0.1
    assert metrics["eval_accuracy"] >= 0.8  # the toy task is decided by one word
    assert metrics["train_samples"] == 64 and metrics["eval_samples"] == 32
    # evaluated after every epoch, once per epoch (the final evaluation is the last epoch's)
    assert [e["epoch"] for e in metrics["eval_history"]] == [float(k) for k in range(1, 17)]
    assert metrics["eval_history"][-1]["eval_accuracy"] == metrics["eval_accuracy"]
    assert metrics["host"]["libraries"]["transformers"].startswith("4.57")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt",
                 "edgedistill_config.yaml", "teacher.log", "stage.json"):
        assert (result.path / name).is_file(), name
    assert not (result.path / "checkpoints").exists()
    assert "fine-tuning (untrained weights: classifier.bias, classifier.weight)" in (
        result.path / "teacher.log").read_text()

    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(result.path)
    assert model.config.id2label == {0: "negative", 1: "positive"}


def test_second_identical_run_is_a_cache_hit(trained, caplog):
    config, first = trained
    stamp = (first.path / "model.safetensors").stat().st_mtime_ns
    with caplog.at_level("INFO", logger="edgedistill"):
        again = run_teacher(config)
    assert again.cached and again.metrics == first.metrics
    assert (again.path / "model.safetensors").stat().st_mtime_ns == stamp
    assert "teacher: cache hit" in caplog.text


def test_changed_input_retrains(trained, caplog):
    config, first = trained
    key_before = json.loads((first.path / "stage.json").read_text())["key"]
    changed = config.model_copy(update={"seed": config.seed + 1})
    with caplog.at_level("INFO", logger="edgedistill"):
        result = run_teacher(changed)
    assert not result.cached
    assert "inputs changed, rebuilding" in caplog.text
    assert json.loads((result.path / "stage.json").read_text())["key"] != key_before


def test_trained_head_is_only_evaluated(tmp_path, trained, toy_data_dir):
    _, first = trained
    config = teacher_config(tmp_path, first.path, toy_data_dir)
    result = run_teacher(config)
    assert result.metrics["fine_tuned"] is False
    assert result.metrics["train_time_s"] == 0
    # the folder's own metrics: test_changed_input_retrains may have rebuilt it with another seed
    trained_there = json.loads((first.path / "metrics.json").read_text())
    assert result.metrics["eval_accuracy"] == pytest.approx(trained_there["eval_accuracy"])


def test_train_never_without_head_is_refused(tmp_path, tiny_encoder_dir, toy_data_dir):
    config = teacher_config(tmp_path, tiny_encoder_dir, toy_data_dir, **{"teacher.train": "never"})
    with pytest.raises(ModelError, match="no trained classification head .* set teacher.train to auto"):
        run_teacher(config)
    assert not (tmp_path / "teacher").exists()


def test_non_bert_family_is_refused(tmp_path, toy_data_dir):
    folder = tmp_path / "gpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    config = teacher_config(tmp_path, folder, toy_data_dir)
    with pytest.raises(ModelError, match="is a 'gpt2' model; edgedistill handles BERT-family encoders: bert"):
        run_teacher(config)


def test_folder_that_is_not_a_model(tmp_path, toy_data_dir):
    config = teacher_config(tmp_path, toy_data_dir, toy_data_dir)
    with pytest.raises(ModelError, match="is not a save_pretrained model folder .* holds: dev.tsv, train.tsv"):
        run_teacher(config)


def test_failed_rebuild_keeps_the_previous_teacher(tmp_path, trained, toy_data_dir, monkeypatch):
    import edgedistill.training.teacher as teacher_module

    _, first = trained
    config = teacher_config(tmp_path, first.path, toy_data_dir)
    run_teacher(config)
    before = sorted(p.name for p in (tmp_path / "teacher").iterdir())

    def explode(*args, **kwargs):
        raise RuntimeError("killed mid-training")

    monkeypatch.setattr(teacher_module, "_build", explode)
    with pytest.raises(RuntimeError):
        run_teacher(config, force=True)
    assert sorted(p.name for p in (tmp_path / "teacher").iterdir()) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".teacher")] == []


def test_born_again_teacher_is_published_as_the_teacher(tmp_path, tiny_encoder_dir, toy_data_dir):
    from edgedistill.training.distill.stage import pretrained_reference

    config = teacher_config(tmp_path, tiny_encoder_dir, toy_data_dir, **{
        "teacher.epochs": 4, "teacher.born_again.enabled": True, "teacher.born_again.variants": 1,
        "teacher.born_again.epochs": 2, "teacher.born_again.learning_rate": 1e-3,
        "require_learning": False})  # four epochs are too few to learn the toy task: the publication is tested
    result = run_teacher(config)
    assert result.path == tmp_path / "teacher" and not result.cached
    fine_tuned = json.loads((tmp_path / "teacher-fine-tuned" / "metrics.json").read_text())
    born = json.loads((tmp_path / "teacher-born-again" / "student" / "metrics.json").read_text())
    metrics = result.metrics
    assert metrics["fine_tuned_eval_accuracy"] == fine_tuned["eval_accuracy"]
    # measured again on the published folder: the same weights as the born-again student's
    assert metrics["eval_accuracy"] == born["eval_accuracy"]
    assert metrics["born_again"]["augmented_samples"] == born["augmented_samples"] > 0
    assert born["init"] == f"checkpoint {tiny_encoder_dir}"  # a fresh copy of the pretrained checkpoint
    # a teacher folder: a teacher's record (not the student's), the tokenizer still gives token types
    assert json.loads((result.path / "config.json").read_text())["edgedistill"] == {"task": "classification",
                                                                                  "role": "teacher"}
    from transformers import AutoTokenizer

    assert "token_type_ids" in AutoTokenizer.from_pretrained(result.path)("a b")
    assert pretrained_reference(result.path) == str(tiny_encoder_dir)
    assert run_teacher(config).cached
