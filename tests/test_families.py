"""Every encoder family: the student taken from it, its exports on each backend (the support matrix of
benchmarks/results/families.json, re-measured here for classification), the README table generated from the
matrix, and the refusals before any training."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch

from family_models import (CELLS, FAMILY_SETTINGS, IDENTITY_ATOL, LAYERS, backend_cell, student_cell, support_table,
                           tiny_family_model, toy_task_data)
from edgedistill.core.errors import ModelError
from edgedistill.core.families import FAMILIES, UNSUPPORTED

ROOT = Path(__file__).resolve().parents[1]
MATRIX = json.loads((ROOT / "benchmarks" / "results" / "families.json").read_text(encoding="utf-8"))
sys.path.insert(1, str(ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_tokenizer_dir):
    """A tiny model of every family and task, built on first use: ``models(family, task) -> folder``."""
    root = tmp_path_factory.mktemp("families")
    built: dict[tuple[str, str], Path] = {}

    def get(family: str, task: str = "classification") -> Path:
        if (family, task) not in built:
            built[family, task] = tiny_family_model(family, task, root / task / family, tiny_tokenizer_dir)
        return built[family, task]

    return get


def test_the_matrix_covers_every_family_task_and_cell():
    assert set(FAMILY_SETTINGS) == set(FAMILIES)
    assert set(MATRIX) == {"classification", "token-classification", "embedding"}
    for task, families in MATRIX.items():
        assert list(families) == list(FAMILIES), task
        for family, cells in families.items():
            assert set(cells) == set(CELLS), (task, family)
            assert all(value == "pass" or (value and "\n" not in value) for value in cells.values())
    required = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta-v2", "mpnet", "albert",
                "mobilebert"}
    assert required <= set(MATRIX["classification"])
    for family in required:  # the bar: classification converts on ONNX and TFLite for every family
        assert MATRIX["classification"][family]["onnx"] == "pass" == MATRIX["classification"][family]["tflite"]


def test_the_failing_cells_are_the_ones_the_pipeline_refuses():
    failing = {(task, family, cell): reason for task, families in MATRIX.items()
               for family, cells in families.items() for cell, reason in cells.items()
               if reason != "pass" and cell != "student"}
    assert set(failing) == set(UNSUPPORTED)


def test_the_readme_table_is_generated_from_the_matrix():
    from families import END, START

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert START in readme and END in readme
    assert readme.split(START, 1)[1].split(END, 1)[0].strip() == support_table(MATRIX).strip(), \
        "README's family table differs from benchmarks/results/families.json: run benchmarks/families.py --readme-only"


@pytest.mark.parametrize("task", ["classification", "token-classification", "embedding"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_familys_student_reproduces_its_teacher_with_every_layer_kept(models, family, task):
    assert student_cell(models(family, task), task) == MATRIX[task][family]["student"] == "pass"


@pytest.mark.parametrize("backend", ["onnx", "tflite", "coreml"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_classification_exports_of_each_family_are_what_the_matrix_says(models, family, backend, tmp_path):
    data = toy_task_data("classification", tmp_path)
    assert backend_cell(models(family), backend, data, tmp_path / "out") == MATRIX["classification"][family][backend]


def test_the_automatic_student_is_distilbert_only_where_exact(models, caplog):
    """RoBERTa as published (layer norm eps 1e-5) keeps its own class; with BERT's 1e-12 (the MiniLM converted
    by benchmarks/roberta_teacher.py) its layers map onto DistilBERT exactly, positions shifted past padding;
    forcing DistilBERT on the 1e-5 model is allowed, logged as approximate, and measurably so."""
    from transformers import AutoModelForSequenceClassification

    from edgedistill.training.distill.student import build_student

    published = AutoModelForSequenceClassification.from_pretrained(models("roberta")).eval()
    assert type(build_student(published, 1)[0]).__name__ == "RobertaForSequenceClassification"
    with caplog.at_level(logging.INFO, logger="edgedistill.training.distill.student"):
        forced, _ = build_student(published, LAYERS, list(range(LAYERS)), architecture="distilbert")
    assert "approximate: its layer norms use eps 1e-05" in caplog.text
    exact_config = published.config
    exact_config.layer_norm_eps = 1e-12
    exact = AutoModelForSequenceClassification.from_config(exact_config).eval()
    student, _ = build_student(exact, LAYERS, list(range(LAYERS)))
    assert type(student).__name__ == "DistilBertForSequenceClassification"
    ids = torch.tensor([[2, 10, 11, 12, 3, 0, 0], [2, 13, 14, 15, 16, 17, 3]])
    mask = (ids != 0).long()
    with torch.no_grad():
        want = exact.roberta(input_ids=ids, attention_mask=mask).last_hidden_state
        got = student.distilbert(input_ids=ids, attention_mask=mask).last_hidden_state
        approximate = forced.distilbert(input_ids=ids, attention_mask=mask).last_hidden_state
        reference = published.roberta(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask[..., None].bool()
    assert float((want - got).masked_fill(~real, 0).abs().max()) <= 1e-5
    assert float((reference - approximate).masked_fill(~real, 0).abs().max()) > IDENTITY_ATOL  # not exact


def test_the_roberta_teacher_conversion_computes_what_the_bert_computes(tiny_encoder_dir):
    from roberta_teacher import bert_to_roberta
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(tiny_encoder_dir).eval()
    roberta = bert_to_roberta(bert)
    ids = torch.tensor([[2, 10, 11, 12, 3, 0, 0], [2, 13, 14, 15, 16, 17, 3]])
    mask = (ids != 0).long()
    with torch.no_grad():
        want = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        got = roberta(input_ids=ids, attention_mask=mask).last_hidden_state
    assert roberta.config.model_type == "roberta" and roberta.config.type_vocab_size == 1
    assert float((want - got).masked_fill(~mask[..., None].bool(), 0).abs().max()) <= 1e-6


def test_a_teacher_class_student_distils_end_to_end(models, tmp_path, toy_data_dir):
    """An ALBERT teacher (one shared layer): its student is ALBERT running the layer fewer times; the distill stage
    trains it with token types and saves a folder the exporters load."""
    from conftest import distill_config, run_distill

    config = distill_config(tmp_path, models("albert"), toy_data_dir, **{"teacher.epochs": 2, "distill.epochs": 2,
                                                                          "distill.baseline": False,
                                                                          "distill.qat.enabled": False,
                                                                          "require_learning": False})
    (student,) = run_distill(config)
    saved = json.loads((student.path / "config.json").read_text())
    assert saved["model_type"] == "albert" and saved["num_hidden_layers"] == 2
    assert student.metrics["layer_map"] == [0, 1]


def test_a_layer_map_for_albert_is_refused(models):
    from transformers import AutoModelForSequenceClassification

    from edgedistill.training.distill.student import build_student

    teacher = AutoModelForSequenceClassification.from_pretrained(models("albert"))
    with pytest.raises(ModelError, match=r"one shared layer 2 times: its student runs it 1 times .* drop "
                                         r"distill.layer_map \[1\]"):
        build_student(teacher, 1, [1])


def test_distilbert_cannot_be_forced_on_a_family_whose_layers_differ(models):
    from transformers import AutoModelForSequenceClassification

    from edgedistill.training.distill.student import build_student

    teacher = AutoModelForSequenceClassification.from_pretrained(models("deberta-v2"))
    with pytest.raises(ModelError, match="distilbert is not possible for this DeBERTa-v2/v3 teacher: DeBERTa-v2/v3 "
                                         "layers are not DistilBERT's; use auto or teacher"):
        build_student(teacher, 1, architecture="distilbert")


def test_a_family_a_backend_cannot_convert_is_refused_before_training(models, tmp_path, toy_data_dir, monkeypatch):
    from conftest import distill_config

    from edgedistill import pipeline
    from edgedistill.core import families

    monkeypatch.setitem(families.UNSUPPORTED, ("classification", "mobilebert", "coreml"), "no converter for op x")
    config = distill_config(tmp_path, models("mobilebert"), toy_data_dir,
                            **{"targets": ["onnx-fp32", "coreml-fp16"]})
    with pytest.raises(ModelError, match=r"^the student would be a MobileBERT \(mobilebert\) model, and coreml cannot "
                                         r"take it for classification: no converter for op x"):
        pipeline.run_pipeline(config)
    assert not (tmp_path / "teacher").exists()


def test_an_unknown_family_is_refused_with_the_supported_list(tmp_path, toy_data_dir):
    from conftest import distill_config

    from edgedistill import pipeline

    folder = tmp_path / "gpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    config = distill_config(tmp_path / "run", folder, toy_data_dir)
    with pytest.raises(ModelError, match="is a 'gpt2' model; edgedistill handles BERT-family encoders: bert, "
                                         "roberta, xlm-roberta, camembert, distilbert, electra, deberta-v2, mpnet, "
                                         "albert, mobilebert"):
        pipeline.run_pipeline(config)
    assert not (tmp_path / "run" / "teacher").exists()
