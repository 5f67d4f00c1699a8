"""The task seam and the owners of shared concepts: config names the task, the command line takes only what a verb
uses, one hash for a model folder, one console line per log record, the learning check. No model is trained."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgedistill.core.config import load_config
from edgedistill.core.errors import ConfigError, TrainingError

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgedistill", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)


# -- the task -------------------------------------------------------------------------------------------


def test_the_config_names_its_task_and_refuses_an_unknown_one():
    assert load_config().task == "classification"
    with pytest.raises(ConfigError, match=r"task: unknown task 'ner'; the tasks are: classification"):
        load_config(overrides={"task": "ner"})


def test_a_saved_model_says_its_task_and_a_foreign_one_is_recognised_by_its_architecture(tmp_path):
    from edgedistill.core.errors import ModelError
    from edgedistill.tasks import task_of_config

    assert task_of_config({"edgedistill": {"task": "classification"}}, "m").name == "classification"
    assert task_of_config({"architectures": ["RobertaForSequenceClassification"]}, "m").name == "classification"
    assert task_of_config({"architectures": []}, "m").name == "classification"  # a bare encoder: a teacher to be
    with pytest.raises(ModelError, match="architecture BertForMaskedLM is none of edgedistill's tasks"):
        task_of_config({"architectures": ["BertForMaskedLM"]}, "m")


def test_classification_owns_its_metrics_agreement_and_predictions():
    from edgedistill.tasks.classification import TASK

    logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert TASK.metrics(logits, np.array([0, 1, 1])) == {"accuracy": pytest.approx(2 / 3),
                                                          "f1_macro": pytest.approx(2 / 3)}
    assert TASK.agreement(logits, np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])) == pytest.approx(2 / 3)
    rows = TASK.predictions(["good", ("a", "b")], logits[:2], ["neg", "pos"])
    assert rows[0]["label"] == "neg" and rows[1] == {"text": "a", "text_pair": "b", "label": "pos",
                                                     "probabilities": rows[1]["probabilities"]}
    assert "pos  0.7311  a ||| b" in TASK.render_predictions(rows)


def test_a_model_that_learnt_nothing_is_stopped_with_the_settings_to_change():
    from edgedistill.tasks.classification import TASK
    from edgedistill.training.common import stop_if_nothing_learnt

    labels = np.array([0, 1] * 69 + [0])  # 139 pairs, majority 0.504: "clearly better" needs > 0.589
    with pytest.raises(TrainingError, match=r"the teacher did not learn: eval accuracy 0\.5100 is not clearly above "
                                            r"the majority class's 0\.5036 \(needs > 0\.5884.*teacher\.epochs"):
        stop_if_nothing_learnt(TASK, {"eval_accuracy": 0.51}, labels, "teacher", "teacher.epochs", True)
    stop_if_nothing_learnt(TASK, {"eval_accuracy": 0.60}, labels, "teacher", "teacher.epochs", True)
    stop_if_nothing_learnt(TASK, {"eval_accuracy": 0.51}, labels, "teacher", "teacher.epochs", False)  # warns only


def test_a_small_training_set_gets_enough_steps_at_the_small_data_rate(caplog):
    from edgedistill.training.common import fit_schedule

    teacher = load_config().teacher
    with caplog.at_level("INFO", logger="edgedistill"):
        small = fit_schedule(teacher, 1244, "teacher")  # 39 steps an epoch
    assert (small.epochs, small.learning_rate) == (6.0, 3e-5)
    assert "1244 training rows are 39 optimizer steps an epoch" in caplog.text and "training 6 epochs (234 steps)" \
        in caplog.text
    assert fit_schedule(teacher, 67349, "teacher") is teacher  # SST-2: as configured
    assert fit_schedule(teacher.model_copy(update={"min_steps": 0}), 100, "teacher").epochs == teacher.epochs


# -- the command line ------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["targets", "--data", "x"], "unrecognized arguments: --data x"),
    (["compare", "a", "b", "--set", "seed=1"], "unrecognized arguments: --set seed=1"),
    (["predict", "m", "t", "--preset", "quick"], "unrecognized arguments: --preset quick"),
    (["run", "--only", "teacher", "--from", "export"], "argument --from: not allowed with argument --only"),
    (["run", "--only", "train"], "argument --only: invalid choice: 'train' (choose from 'teacher', 'distill', "
                                 "'export', 'bench')"),
    (["export", "--model", "m", "--target", "t", "--out", "o", "--eval-samples", "0"],
     "argument --eval-samples/--verify-samples: expected a positive integer, got 0"),
    (["bench", "--real-samples", "-3"], "argument --real-samples: expected a positive integer, got -3"),
])
def test_each_verb_takes_only_its_own_options_and_refuses_bad_counts(args, message, capsys):
    from edgedistill.cli import main

    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_the_old_sample_flag_still_works_and_help_reads_defaults_from_the_config():
    from edgedistill.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["verify", "a", "--verify-samples", "12"])
    assert args.eval_samples == 12
    bench_help = run_cli("bench", "--help").stdout
    assert "default: bench.real_samples, 300" in bench_help and "default: 2)" in run_cli("run", "--help").stdout


def test_string_labels_need_no_label_names(tmp_path):
    """A sentence-pair file labelled entailment / not_entailment runs without --label-names."""
    from edgedistill.data.task_data import load_task_data

    rows = [("a man sleeps", "a person rests", "entailment"), ("a cat sits", "a dog runs", "not_entailment")] * 6
    (tmp_path / "train.tsv").write_text("sentence1\tsentence2\tlabel\n" + "".join(f"{a}\t{b}\t{y}\n" for a, b, y in rows))
    config = load_config(overrides={"data.dataset": str(tmp_path / "train.tsv"), "data.text_column": "sentence1",
                                    "data.text_pair_column": "sentence2", "data.eval_fraction": 0.25})
    data = load_task_data(config.data, seed=config.seed)
    assert data.label_names == ["entailment", "not_entailment"]


# -- one owner each --------------------------------------------------------------------------------------


def test_a_model_folder_hash_ignores_logs_stage_records_and_cards(tmp_path):
    from edgedistill.core.hashing import model_folder_hash

    (tmp_path / "model.safetensors").write_bytes(b"weights")
    (tmp_path / "config.json").write_text("{}")
    before = model_folder_hash(tmp_path)
    for name in ("stage.json", "student.log", "qat.log", "teacher.log", "README.md"):
        (tmp_path / name).write_text(json.dumps({"finished": name}))
    assert model_folder_hash(tmp_path) == before
    (tmp_path / "model.safetensors").write_bytes(b"other weights")
    assert model_folder_hash(tmp_path) != before


def test_a_line_is_printed_once_even_when_a_library_configures_logging(capfd):
    from edgedistill.core.logs import configure_console

    root = logging.getLogger()
    kept = list(root.handlers)
    try:
        configure_console()
        logging.basicConfig(level=logging.INFO)  # what onnxruntime's transformer tools do while we export
        logging.getLogger("edgedistill.export").info("export x: verified")
        logging.getLogger("some.library").info("chatter")
        logging.getLogger("some.library").warning("a warning worth seeing")
    finally:
        for handler in root.handlers[:]:
            if handler not in kept:
                root.removeHandler(handler)
    err = capfd.readouterr().err
    assert err.count("export x: verified") == 1 and "[edgedistill] export x: verified" in err
    assert "chatter" not in err and "WARNING some.library: a warning worth seeing" in err


def test_a_tab_separated_line_is_a_sentence_pair_for_predict():
    from edgedistill.bench.predict import as_example

    assert as_example("a premise\ta hypothesis") == ("a premise", "a hypothesis")
    assert as_example("just one sentence") == "just one sentence"


def test_the_unlabelled_reader_refuses_a_short_row_as_the_task_reader_does(tmp_path):
    from edgedistill.core.config import DataConfig
    from edgedistill.core.errors import DataError
    from edgedistill.data.unlabelled import read_unlabelled

    (tmp_path / "more.tsv").write_text("sentence\tlabel\nfine film\t1\nshort row\n")
    with pytest.raises(DataError, match=r"more\.tsv, line 3: expected 2 fields \(sentence, label\), found 1"):
        read_unlabelled(tmp_path / "more.tsv", DataConfig())


# -- a second task plugs in through the registry alone ----------------------------------------------------


@pytest.fixture
def score_task(monkeypatch):
    """tests/toy_task.py registered as the task ``score``: a module and a registry row, nothing else."""
    from edgedistill.core.registry import TASKS

    monkeypatch.setitem(TASKS, "score", "toy_task")
    from edgedistill.tasks import get_task

    return get_task("score")


def test_a_registered_task_is_accepted_by_the_config_and_found_by_name(score_task):
    from edgedistill.tasks import task_of_config

    assert load_config(overrides={"task": "score"}).task == "score"
    assert task_of_config({"edgedistill": {"task": "score"}}, "m") is score_task


def test_the_export_stage_runs_a_task_it_has_never_heard_of(score_task, tiny_tokenizer_dir, data, tmp_path):
    """A tiny scorer exported to ONNX and gated by the toy task's own judge; its golden cases carry its output."""
    import torch
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    from edgedistill.core.targets import load_target
    from edgedistill.export.stage import ExportSettings, export_target

    torch.manual_seed(0)
    model = DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=AutoTokenizer.from_pretrained(tiny_tokenizer_dir).vocab_size, dim=32, n_layers=1, n_heads=4,
        hidden_dim=64, max_position_embeddings=64, num_labels=1)).eval()
    model.config.edgedistill = {"task": "score"}
    model.save_pretrained(tmp_path / "scorer")
    AutoTokenizer.from_pretrained(tiny_tokenizer_dir).save_pretrained(tmp_path / "scorer")
    settings = ExportSettings(max_length=32, threads=1, calibration_samples=8, seed=0, verify_samples=16)
    artifact = export_target(tmp_path / "scorer", load_target("onnx-fp32"), data, tmp_path / "a", settings)
    assert artifact.info["task"] == "score" and artifact.info["label_names"] == ["score"]
    assert artifact.info["parity"]["gate"] == {"max_abs": 1e-4} and artifact.info["parity"]["samples"] == 16
    golden = json.loads((artifact.path / "golden.json").read_text(encoding="utf-8"))
    assert all(len(case["score"]) == 1 and case["rounded"] == round(case["score"][0], 2) for case in golden["cases"])
    from edgedistill.bench.predict import open_model

    rows = open_model(artifact.path, threads=1).predict(["a fine film"])
    assert set(rows[0]) == {"text", "score"}
