"""Teacher-labelled augmentation: reading unlabelled text, embedding-neighbour variants, the stage and training."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from edgedistill.core.config import DataConfig
from edgedistill.training.distill.augment import make_variants, replace_words, word_neighbours
from edgedistill.training.distill.losses import LossWeights, distillation_loss
from edgedistill.core.errors import DataError
from edgedistill.data.unlabelled import read_unlabelled
from conftest import distill_config

# --- reading unlabelled text ---------------------------------------------------------------------


def test_reads_txt_jsonl_tsv_and_folders(tmp_path):
    cfg = DataConfig()
    (tmp_path / "a.txt").write_text("one good film\n\n  \nanother dull one\n", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text('{"sentence": "from json"}\n\n{"sentence": "and more", "label": 1}\n')
    (tmp_path / "c.tsv").write_text("id\tsentence\n1\tfrom tsv\n")
    (tmp_path / "skipped.md").write_text("not read")
    assert read_unlabelled(tmp_path / "a.txt", cfg) == (["one good film", "another dull one"], None)
    texts, pairs = read_unlabelled(tmp_path, cfg)
    assert texts == ["one good film", "another dull one", "from json", "and more", "from tsv"] and pairs is None


def test_pair_task_reads_both_columns_and_refuses_txt(tmp_path):
    cfg = DataConfig(text_column="question", text_pair_column="sentence")
    (tmp_path / "p.csv").write_text('question,sentence\n"why, then?",because\n')
    assert read_unlabelled(tmp_path / "p.csv", cfg) == (["why, then?"], ["because"])
    (tmp_path / "p.txt").write_text("a line\n")
    with pytest.raises(DataError, match=r"p\.txt: a pair task needs both texts"):
        read_unlabelled(tmp_path / "p.txt", cfg)


@pytest.mark.parametrize("name, content, message", [
    ("empty.txt", b"", r"empty\.txt holds no text"),
    ("blank.txt", b"\n  \n", r"blank\.txt holds no text"),
    ("binary.txt", b"PK\x03\x04\x00\x00zip", r"binary\.txt is not a text file \(a NUL byte at offset 4\)"),
    ("latin1.txt", "ok\ncaf\xe9\n".encode("latin-1"), r"latin1\.txt, line 2: not valid UTF-8 \(byte 0xe9"),
    ("cols.tsv", b"text\tlabel\nhello\t1\n", r"cols\.tsv: no column 'sentence'.*the columns are: text, label"),
    ("rows.jsonl", b'{"text": "x"}\n', r"rows\.jsonl, line 1: no field 'sentence'"),
    ("model.bin", b"abc", r"model\.bin: unsupported type '\.bin'"),
])
def test_bad_augmentation_files_are_named(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_unlabelled(tmp_path / name, DataConfig())


def test_missing_file_and_empty_folder_are_named(tmp_path):
    with pytest.raises(DataError, match=r"augmentation file .*nope\.txt does not exist"):
        read_unlabelled(tmp_path / "nope.txt", DataConfig())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"augmentation folder .*empty holds no \.txt"):
        read_unlabelled(tmp_path / "empty", DataConfig())


# --- embedding-neighbour variants ----------------------------------------------------------------


def test_neighbours_are_the_nearest_whole_words_by_cosine():
    vocab = {"[PAD]": 0, "good": 1, "great": 2, "bad": 3, "##ish": 4, "table": 5, "a": 6, "[unused1]": 7}
    embeddings = torch.tensor([
        [1.0, 1.0, 1.0], [1.0, 0.1, 0.0], [0.9, 0.2, 0.0], [0.7, 0.5, 0.0],
        [1.0, 0.1, 0.0], [0.1, 0.0, 1.0], [1.0, 0.1, 0.0], [1.0, 0.1, 0.0]])
    found = word_neighbours(vocab, embeddings, ["good", "table", "unknown", "a"], k=2)
    # "##ish", "a" (one letter) and the special tokens are never candidates, even with identical vectors
    assert found == {"good": ["great", "bad"], "table": ["good", "great"]}


def test_variants_are_seeded_distinct_and_only_replace_known_words():
    neighbours = {"good": ["great", "fine"], "film": ["movie"]}
    texts = ["a good film . ", "nothing to replace here"]  # SST-2's trailing space: never a "variant" itself
    first = make_variants(texts, None, neighbours, 3, 0.5, random.Random(0))
    assert first == make_variants(texts, None, neighbours, 3, 0.5, random.Random(0))
    variants, pairs = first
    assert pairs is None and 1 <= len(variants) <= 3  # at most 3 of the row with words, none of the other
    assert len(set(variants)) == len(variants) and "a good film ." not in variants
    for variant in variants:
        words = variant.split()
        assert words[0] == "a" and words[3] == "." and words[1] in ("good", "great", "fine")
        assert words[2] in ("film", "movie")
    assert replace_words("GOOD film", {"good": ["great"]}, 1.0, random.Random(0)) == "great film"
    assert replace_words("GOOD", {"good": ["great"]}, 1.0, random.Random(0)) == "great"  # uncased lookup


# --- rows without a label ----------------------------------------------------------------------


def test_rows_without_a_label_skip_the_hard_label_term():
    student = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    teacher = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    weights = LossWeights(alpha_cos=0.0)
    _, parts = distillation_loss(student, teacher, torch.tensor([0, -100, -100]), weights)
    expected = torch.nn.functional.cross_entropy(student[:1], torch.tensor([0])).item()
    assert parts["loss_ce"] == pytest.approx(expected)
    total, parts = distillation_loss(student, teacher, torch.tensor([-100, -100, -100]), weights)
    assert "loss_ce" not in parts and torch.isfinite(total) and total.item() == pytest.approx(parts["loss_kd"])


# --- the stage and the student it trains ---------------------------------------------------------


def test_augmented_student_trains_on_teacher_labelled_rows(tmp_path, distilled, toy_data_dir, caplog):
    from conftest import run_distill

    config, _ = distilled
    unlabelled = tmp_path / "reviews.txt"
    unlabelled.write_text("a truly great film\nboring and dull\nwhat a delight\n", encoding="utf-8")
    augmented = distill_config(tmp_path / "w", Path(config.workdir) / "teacher", toy_data_dir, **{
        "distill.augment.file": str(unlabelled), "distill.augment.variants": 2, "distill.epochs": 4,
        "distill.baseline": False, "distill.qat.enabled": False})
    (student,) = run_distill(augmented)
    stage = json.loads((tmp_path / "w" / "augment" / "metrics.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "w" / "augment" / "augmented.jsonl").read_text().splitlines()]
    assert stage["from_file"] == 3 and stage["variants"] > 0 and stage["rows"] == len(rows)
    assert [r["text"] for r in rows[:3]] == ["a truly great film", "boring and dull", "what a delight"]
    assert all(len(r["teacher_logits"]) == 2 and r["source"] in ("file", "variant") for r in rows)
    assert student.metrics["augmented_samples"] == len(rows)
    assert student.metrics["eval_accuracy"] >= 0.7
    with caplog.at_level("INFO", logger="edgedistill"):
        (again,) = run_distill(augmented)
    assert again.cached and "augment: cache hit" in caplog.text
    assert "augment: reusing" in caplog.text and "nan" not in caplog.text  # it has no accuracy to report
    capped = augmented.model_copy(deep=True)
    capped.distill.augment.max_samples = 4
    capped.workdir = str(tmp_path / "capped")
    (small,) = run_distill(capped)
    assert small.metrics["augmented_samples"] == 4


def test_a_bad_augmentation_file_fails_before_training(tmp_path, distilled, toy_data_dir):
    from conftest import run_distill

    config, _ = distilled
    (tmp_path / "empty.txt").write_text("")
    bad = distill_config(tmp_path / "w", Path(config.workdir) / "teacher", toy_data_dir, **{
        "distill.augment.file": str(tmp_path / "empty.txt"), "distill.baseline": False,
        "distill.qat.enabled": False})
    with pytest.raises(DataError, match=r"empty\.txt holds no text"):
        run_distill(bad)
    assert not (tmp_path / "w" / "student").exists()


def test_predict_outputs_batches_by_length_but_answers_in_order(tiny_teacher_and_tokenizer):
    """Rows are batched by length for speed; each row's logits must still come back at its own index."""
    from transformers import DataCollatorWithPadding

    from edgedistill.tasks.classification import TASK
    from edgedistill.training.common import predict_outputs

    model, tokenizer = tiny_teacher_and_tokenizer
    texts = ["a", "a great film with a dull and long plot", "dull", "great great film", "film"]
    features = [dict(tokenizer(t)) for t in texts]
    collator = DataCollatorWithPadding(tokenizer)
    batched = predict_outputs(model, features, collator, batch_size=2, task=TASK)
    with torch.no_grad():
        one_by_one = [model(**tokenizer(t, return_tensors="pt")).logits[0].numpy() for t in texts]
    for i, row in enumerate(one_by_one):
        assert abs(batched[i] - row).max() < 1e-5, texts[i]


@pytest.fixture(scope="module")
def tiny_teacher_and_tokenizer(distilled):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    config, _ = distilled
    folder = Path(config.workdir) / "teacher"
    return AutoModelForSequenceClassification.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def test_cli_augment_file_error_is_one_line_naming_the_file(tmp_path, distilled, toy_data_dir):
    import subprocess
    import sys

    config, _ = distilled
    (tmp_path / "notes.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    result = subprocess.run(
        [sys.executable, "-m", "edgedistill", "distill", "--data", str(toy_data_dir), "--workdir", str(tmp_path / "w"),
         "--threads", "1", "--set", f"teacher.model={Path(config.workdir) / 'teacher'}",
         "--augment-file", str(tmp_path / "notes.txt")],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert errors == [f"edgedistill distill: error: {tmp_path / 'notes.txt'} is not a text file (a NUL byte at offset 8)"]
    assert "Traceback" not in result.stderr
