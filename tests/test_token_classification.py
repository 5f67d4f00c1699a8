"""Token classification end to end on tiny models: CoNLL-style data and its tag schemes, word alignment, the
teacher and the distilled student, per-token exports with the tag gate, and entities as transformers' pipeline
groups them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import make_tiny_bert
from toy_data import tagged_sentences, write_conll
from edgedistill.core.errors import DataError


@pytest.fixture(scope="module")
def conll_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("conll")
    write_conll(folder / "train.txt", tagged_sentences(160, seed=1))
    write_conll(folder / "valid.txt", tagged_sentences(60, seed=2))
    return folder


@pytest.fixture(scope="module")
def ner_teacher_source(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("ner_teacher"), tiny_tokenizer_dir, layers=4, seed=5)


def ner_config(workdir: Path, teacher: Path, data: Path, **overrides):
    from edgedistill.core.config import load_config

    base = {"task": "token-classification", "teacher.model": str(teacher), "data.dataset": str(data),
            "data.max_length": 32, "teacher.epochs": 12, "teacher.learning_rate": 3e-3, "teacher.batch_size": 16,
            "teacher.min_steps": 0, "teacher.warmup_ratio": 0.0, "distill.layers": 2, "distill.epochs": 12,
            "distill.learning_rate": 3e-3, "distill.batch_size": 16, "distill.warmup_ratio": 0.0,
            "distill.logging_steps": 20, "data.calibration_samples": 32, "workdir": str(workdir), "threads": 1}
    base.update(overrides)
    return load_config(overrides=base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ner_teacher_source, conll_dir):
    """The teacher fine-tuned on the tiny CoNLL data and its student and baseline: (config, data, results)."""
    from edgedistill.tasks import load_data
    from edgedistill.training.distill import run_distill
    from edgedistill.training.teacher import run_teacher

    config = ner_config(tmp_path_factory.mktemp("ner_run"), ner_teacher_source, conll_dir)
    data = load_data(config)
    teacher = run_teacher(config, data=data)
    return config, data, teacher, {r.role: r for r in run_distill(config, teacher, data)}


# -- data -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["iob1", "iob2", "bioes"])
def test_every_tag_scheme_is_detected_and_read_as_iob2(tmp_path, scheme):
    from edgedistill.core.config import DataConfig
    from edgedistill.data.conll import load_tagged_data

    sentences = tagged_sentences(30, seed=7)
    write_conll(tmp_path / "train.txt", sentences, scheme)
    write_conll(tmp_path / "valid.txt", sentences[:10], scheme)
    data = load_tagged_data(DataConfig(dataset=str(tmp_path), eval_split="valid"))
    assert data.label_names == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    for row, sentence in enumerate(sentences[:10]):
        assert data.eval.words(row) == [w for w, _ in sentence]
        assert [data.label_names[i] for i in data.eval.labels[row]] == [t for _, t in sentence]


def test_two_column_and_jsonl_files_read_the_same_sentences(tmp_path):
    from edgedistill.data.conll import read_tagged_file

    sentences = tagged_sentences(5, seed=3)
    (tmp_path / "two.tsv").write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in s) for s in sentences),
                                      encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"tokens": [w for w, _ in s], "tags": [t for _, t in s]})
                                                 + "\n" for s in sentences), encoding="utf-8")
    two, rows = read_tagged_file(tmp_path / "two.tsv"), read_tagged_file(tmp_path / "rows.jsonl")
    assert [s.words for s in two] == [s.words for s in rows] == [[w for w, _ in s] for s in sentences]
    assert [s.tags for s in two] == [s.tags for s in rows]


@pytest.mark.parametrize("content, scheme, message", [
    ("EU NNP B-NP B-ORG\nrejects\n", "auto", r"line 2: one column \('rejects'\)"),
    ("EU NNP B-NP B-ORG\nrejects VBZ B-VP X-ORG\n", "auto", "line 2: tag 'X-ORG' is outside the IOB2 scheme"),
    ("EU NNP B-NP S-ORG\n", "iob2", "line 1: tag 'S-ORG' is outside the IOB2 scheme"),
    ("", "auto", "is empty"),
    ("-DOCSTART- -X- -X- O\n\n", "auto", "holds no tagged sentences"),
])
def test_bad_tagged_files_name_the_file_and_line(tmp_path, content, scheme, message):
    from edgedistill.core.config import DataConfig
    from edgedistill.data.conll import load_tagged_data

    path = tmp_path / "train.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as raised:
        load_tagged_data(DataConfig(dataset=str(path), tag_scheme=scheme))
    assert str(path) in str(raised.value)


def test_labels_sit_on_each_words_first_sub_token(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    from edgedistill.data.conll import WordSplit

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    split = WordSplit("eval", ["the zorp was good", "quix"], [[0, 3, 0, 5], [3]], None, "x", [1, 6])
    aligned = split.token_labels(tokenizer, 32)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("the zorp was good")["input_ids"])
    assert tokens == ["[CLS]", "the", "z", "##o", "##r", "##p", "was", "good", "[SEP]"]
    assert aligned[0] == [-100, 0, 3, -100, -100, -100, 0, 5, -100]
    assert aligned[1] == [-100, 3, -100, -100, -100, -100]


def test_a_sentence_longer_than_the_model_is_truncated_and_counted_or_refused(tiny_tokenizer_dir, caplog):
    from transformers import AutoTokenizer

    from edgedistill.data.conll import WordSplit

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    words = ["the"] * 20
    split = WordSplit("eval", [" ".join(words)], [[0] * 20], None, "long.txt", [7])
    aligned = split.token_labels(tokenizer, 12)
    assert sum(label != -100 for label in aligned[0]) == 10
    assert "1 sentence(s) longer than 12 tokens truncated; their last 10 word(s)" in caplog.text
    split.long_sentences = "refuse"
    with pytest.raises(DataError, match="long.txt, line 7: the sentence's last 10 word"):
        split.token_labels(tokenizer, 12)


def test_entity_scores_are_seqevals_strict_spans():
    from edgedistill.tasks.token_classification import TASK

    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    labels = np.array([[-100, 1, 2, 0, 3, -100]])
    right = np.eye(5)[[0, 1, 2, 0, 3, 0]][None]
    half = np.eye(5)[[0, 1, 0, 0, 3, 0]][None]  # PER cut short: a wrong span under strict matching
    assert TASK.metrics(right, labels, names)["f1"] == 1.0
    scores = TASK.metrics(half, labels, names)
    assert scores["entity_precision"] == 0.5 and scores["entity_recall"] == 0.5 and scores["f1_LOC"] == 1.0
    assert scores["f1_PER"] == 0.0 and scores["word_accuracy"] == 0.75


# -- models -----------------------------------------------------------------------------------------


def test_teacher_and_student_learn_the_entities_and_beat_nothing(trained):
    _, data, teacher, results = trained
    assert teacher.metrics["eval_f1"] > 0.75 and "eval_f1_LOC" in teacher.metrics, teacher.metrics
    student = results["student"].metrics
    assert student["eval_f1"] > 0.8 and "eval_f1_ORG" in student, student
    assert 0 < student["retention_of_teacher_f1"] and "baseline" in results
    assert json.loads((results["student"].path / "config.json").read_text())["architectures"] == [
        "DistilBertForTokenClassification"]


def test_the_students_entities_are_the_pipelines(trained):
    """predict groups word tags exactly as transformers' pipeline(aggregation_strategy="first")."""
    from transformers import pipeline

    from edgedistill.bench.predict import open_model

    folder = trained[3]["student"].path
    texts = ["the zorp was good", "great lovely film and awful bleak plot quix", "really the vask"]
    tagger = pipeline("token-classification", model=str(folder), aggregation_strategy="first", device="cpu")
    predictor = open_model(folder, threads=1)
    ours = predictor.predict(texts)
    for text, row in zip(texts, ours):
        theirs = tagger(text)
        assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in theirs] == [
            (e["entity_group"], e["word"], e["start"], e["end"]) for e in row["entities"]], text
        assert np.allclose([e["score"] for e in theirs], [e["score"] for e in row["entities"]], atol=1e-5)
    assert any(row["entities"] for row in ours)


def test_the_tag_gate_counts_real_words_and_names_each_broken_bound():
    from edgedistill.core.config import Tolerance
    from edgedistill.tasks.token_classification import TASK

    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    rng = np.random.default_rng(0)
    tags = rng.integers(0, 5, size=(40, 12))
    labels = np.where(rng.random((40, 12)) < 0.6, tags, -100)
    reference = (np.eye(5)[tags] * 4).astype(np.float32)
    close = reference + rng.normal(scale=1e-3, size=reference.shape).astype(np.float32)
    report = TASK.judge(reference, close, labels, TASK.tolerance("int8-static", Tolerance()), names)
    assert report.passed and report.measures["agreement"] == 1.0
    assert report.measures["words"] == int((labels != -100).sum())
    changed = reference.copy()
    changed[:, :, :] = np.eye(5)[0] * 4  # every word tagged O
    report = TASK.judge(reference, changed, labels, TASK.tolerance("int8-static", Tolerance()), names)
    assert any(f.startswith("tag agreement") for f in report.failures)
    assert any(f.startswith("entity F1 drop") for f in report.failures)
    fp32 = TASK.judge(reference, close, labels, TASK.tolerance("fp32", Tolerance()), names)
    assert fp32.failures == [f"max |logit difference| {fp32.max_abs:.3g} > 0.0001"]


# -- exports ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The student exported to ONNX fp32 and full-integer int8, TFLite fp32 and int8 (buckets), Core ML fp32."""
    from edgedistill.core.targets import load_target
    from edgedistill.export.stage import ExportSettings, export_target

    config, data, _, results = trained
    out = tmp_path_factory.mktemp("ner_artifacts")
    settings = ExportSettings.from_config(config)
    buckets = {"options": {"buckets": [8, 16, 32]}}
    targets = {"onnx-fp32": load_target("onnx-fp32"), "onnx-int8-static": load_target("onnx-int8-static"),
               "tflite-fp32": load_target("tflite-fp32").model_copy(update=buckets),
               "tflite-int8-dynamic": load_target("tflite-int8-dynamic").model_copy(update=buckets),
               "coreml-fp32": load_target("coreml-fp32")}
    return {name: export_target(results["student"].path, target, data, out / name, settings)
            for name, target in targets.items()}


def test_every_backend_returns_a_tag_row_per_token_and_passes_the_tag_gate(exported, trained):
    import onnx

    _, data, _, results = trained
    labels = json.loads((results["student"].path / "config.json").read_text())["id2label"]
    for name, artifact in exported.items():
        parity = artifact.info["parity"]
        assert artifact.info["task"] == "token-classification" and parity["passed"], (name, parity)
        assert parity["words"] > 200 and parity["agreement"] >= 0.99, name
        golden = json.loads((artifact.path / "golden.json").read_text())
        case = golden["cases"][0]
        assert len(case["logits"]) == len(case["input_ids"]) and len(case["logits"][0]) == len(labels)
        assert len(case["tags"]) == case["tokens"] and set(case["tags"]) <= set(labels.values())
        card = (artifact.path / "README.md").read_text()
        assert "pipeline_tag: token-classification" in card and "first sub-token" in card
    graph = onnx.load(str(exported["onnx-fp32"].path / "model.onnx")).graph
    assert [o.name for o in graph.output] == ["logits"]


def test_a_bucketed_runner_returns_the_rows_of_the_tokens_fed(exported, trained):
    """TFLite runs a sentence in a larger bucket; the runner hands back one row per token fed, equal to ONNX's."""
    from transformers import AutoTokenizer

    from edgedistill.data.encoding import token_ids
    from edgedistill.export.backends.base import get_backend

    _, data, _, results = trained
    tokenizer = AutoTokenizer.from_pretrained(results["student"].path)
    ids = np.asarray([token_ids(tokenizer, data.eval.texts[0], 32)], dtype=np.int64)
    mask = np.ones_like(ids)
    tflite = get_backend("tflite").load(exported["tflite-fp32"], 1).predict(ids, mask)
    onnx = get_backend("onnx").load(exported["onnx-fp32"], 1).predict(ids, mask)
    assert tflite.shape == onnx.shape == (1, ids.shape[1], len(data.label_names))
    assert np.abs(tflite - onnx).max() < 1e-4


def test_predict_prints_entities_from_an_artifact(exported, capsys):
    from edgedistill.cli import main

    artifact = exported["tflite-fp32"].path
    assert main(["predict", str(artifact), "great lovely film and the zorp", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert record["text"] == "great lovely film and the zorp"
    assert all({"entity_group", "score", "word", "start", "end"} == set(e) for e in record["entities"])
    for entity in record["entities"]:
        assert record["text"][entity["start"]:entity["end"]] == entity["word"]
    assert main(["predict", str(artifact), "great lovely film and the zorp"]) == 0
    assert "great lovely film and the zorp" in capsys.readouterr().out


def test_the_data_verb_counts_word_tags(conll_dir, capsys):
    from edgedistill.cli import main

    assert main(["data", "--task", "token-classification", "--data", str(conll_dir)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["eval"]["rows"] == 60 and summary["eval"]["source"].endswith("valid.txt")
    assert summary["train"]["labels"]["O"] > summary["train"]["labels"]["B-PER"] > 0
