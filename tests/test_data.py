"""Task data: every format, the SST-2 files as shipped, and each bad-input case with its message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import SHARED_SST2, requires_shared_sst2, toy_rows, write_tsv
from edgedistill.core.config import DataConfig
from edgedistill.data.task_data import DATA_DIR_ENV, load_task_data
from edgedistill.core.errors import DataError


def cfg(dataset: Path | str, **kwargs) -> DataConfig:
    kwargs.setdefault("label_names", None)
    return DataConfig(dataset=str(dataset), **kwargs)


def test_tsv_quotes_are_text_and_trailing_spaces_go(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text('sentence\tlabel\nhe said "wow \t1\nit \'s "odd \t0\n', encoding="utf-8")
    data = load_task_data(cfg(path, eval_fraction=0.5), seed=0)
    texts = sorted(data.train.texts + data.eval.texts)
    assert texts == ['he said "wow', 'it \'s "odd']
    assert data.label_names == ["0", "1"]


def test_csv_with_string_labels_and_custom_columns(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text('review,stars\n"great, really",pos\nawful,neg\n"fine ""ok""",pos\nbad,neg\n')
    dev = tmp_path / "dev.csv"
    dev.write_text("review,stars\nlovely,pos\n")
    data = load_task_data(cfg(tmp_path, text_column="review", label_column="stars"))
    assert data.label_names == ["neg", "pos"]  # sorted string labels
    assert data.train.texts == ["great, really", "awful", 'fine "ok"', "bad"]
    assert data.train.labels == [1, 0, 1, 0]
    assert data.eval.labels == [1]


def test_jsonl_with_label_names_and_pairs(tmp_path):
    rows = [{"q": f"q{i}", "a": f"a{i}", "y": "yes" if i % 2 else "no"} for i in range(6)]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tmp_path / "validation.jsonl").write_text(json.dumps({"q": "x", "a": "y", "y": 1}) + "\n")
    data = load_task_data(cfg(tmp_path, text_column="q", text_pair_column="a", label_column="y",
                              label_names=["no", "yes"]))
    assert data.train.labels == [0, 1, 0, 1, 0, 1]
    assert data.train.text_pairs == [f"a{i}" for i in range(6)]
    assert data.eval.labels == [1]  # integer ids index into label_names


def test_eval_split_carved_from_train_is_seeded_and_disjoint(tmp_path):
    path = write_tsv(tmp_path / "all.tsv", [(f"sentence {i}", i % 2) for i in range(50)])
    first = load_task_data(cfg(path, eval_fraction=0.2), seed=7)
    again = load_task_data(cfg(path, eval_fraction=0.2), seed=7)
    other = load_task_data(cfg(path, eval_fraction=0.2), seed=8)
    assert len(first.eval) == 10 and len(first.train) == 40
    assert not set(first.eval.texts) & set(first.train.texts)
    assert first.eval.texts == again.eval.texts and first.eval.texts != other.eval.texts
    assert first.fingerprint == again.fingerprint != other.fingerprint


def test_subsampling_and_calibration_sample_are_seeded(toy_data_dir):
    data = load_task_data(cfg(toy_data_dir, max_train_samples=10), seed=3)
    assert len(data.train) == 10
    assert data.calibration_inputs(5, seed=1) == data.calibration_inputs(5, seed=1)
    assert len(data.calibration_inputs(500, seed=1)) == 10
    assert set(data.calibration_inputs(5, seed=1)) <= set(data.train.texts)


def test_encode_leaves_padding_to_the_collator(toy_data_dir, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    data = load_task_data(cfg(toy_data_dir))
    features = data.train.features(tokenizer, max_length=6)
    assert len(features) == len(data.train)
    assert set(features[0]) == {"input_ids", "attention_mask", "labels"}
    assert {len(f["input_ids"]) for f in features} == {6}  # 7 tokens truncated to max_length
    assert [f["labels"] for f in features] == data.train.labels


@requires_shared_sst2()
def test_sst2_as_shipped_by_glue():
    data = load_task_data(cfg(SHARED_SST2))  # no label names given: SST-2 is recognised by its train file
    assert (len(data.train), len(data.eval)) == (67349, 872)
    assert data.summary()["eval"]["labels"] == {"negative": 428, "positive": 444}
    assert not any(t.endswith(" ") for t in data.eval.texts)
    # the names SST-2 brings are the ones it would be given: the same data, the same fingerprint
    assert data.fingerprint == load_task_data(cfg(SHARED_SST2, label_names=["negative", "positive"])).fingerprint


@requires_shared_sst2()
def test_sst2_alias_resolves_through_the_environment(monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(SHARED_SST2.parent))
    data = load_task_data(cfg("sst2", max_train_samples=5))
    assert len(data.eval) == 872 and data.sources[0].endswith("sst2/train.tsv")


# --- bad input: each names the file and line, or the field, and says what to do ----------------

def test_missing_file():
    with pytest.raises(DataError, match=r"data path ./nowhere/train.tsv does not exist"):
        load_task_data(cfg("./nowhere/train.tsv"))


def test_folder_without_train_file_lists_its_contents(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"no train file .* the folder holds: notes.txt"):
        load_task_data(cfg(tmp_path))


def test_missing_column_lists_existing_columns(tmp_path):
    path = write_tsv(tmp_path / "train.tsv", toy_rows(4))
    with pytest.raises(DataError, match=r"train.tsv: no column 'text' \(set it with --text-column\); "
                                        r"the columns are: sentence, label"):
        load_task_data(cfg(path, text_column="text"))


def test_missing_field_in_jsonl_names_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"sentence": "a", "label": 1}\n{"sentence": "b"}\n')
    with pytest.raises(DataError, match=r"train.jsonl, line 2: no field 'label' .* the fields are: sentence"):
        load_task_data(cfg(path))


def test_invalid_json_names_line(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"sentence": "a", "label": 1}\n{"sentence": "b", label: 0}\n')
    with pytest.raises(DataError, match=r"train.jsonl, line 2: invalid JSON"):
        load_task_data(cfg(path))


def test_empty_split(tmp_path):
    write_tsv(tmp_path / "train.tsv", toy_rows(4))
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\n")
    with pytest.raises(DataError, match=r"dev.tsv: the eval split has no rows"):
        load_task_data(cfg(tmp_path))


def test_empty_file(tmp_path):
    (tmp_path / "train.tsv").write_text("")
    with pytest.raises(DataError, match=r"train.tsv is empty"):
        load_task_data(cfg(tmp_path))


def test_label_outside_label_set_names_line_and_value(tmp_path):
    write_tsv(tmp_path / "train.tsv", toy_rows(4))
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\nfine\t1\nodd\t7\n")
    with pytest.raises(DataError, match=r"dev.tsv, line 3: label '7' is not in the label set "
                                        r"\['negative', 'positive'\]"):
        load_task_data(cfg(tmp_path, label_names=["negative", "positive"]))


def test_undecodable_bytes_name_line_and_byte(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes(b"sentence\tlabel\ngood\t1\ncaf\xe9 bad\t0\n")
    with pytest.raises(DataError, match=r"train.tsv, line 3: not valid UTF-8 \(byte 0xe9 at column 4\)"):
        load_task_data(cfg(path))


def test_wrong_number_of_fields_names_line(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\ngood\t1\nbad\t0\textra\n")
    with pytest.raises(DataError, match=r"train.tsv, line 3: expected 2 fields \(sentence, label\), found 3"):
        load_task_data(cfg(path))


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "train.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(DataError, match=r"unsupported file type '.parquet'"):
        load_task_data(cfg(path))


def test_alias_with_bad_environment_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DataError, match=r"EDGEDISTILL_DATA_DIR=.* holds no sst2/train.tsv"):
        load_task_data(cfg("sst2"))


def test_offline_hub_id_says_how_to_go_local(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"could not load 'no-such-org/no-such-data' .* pass a local folder"):
        load_task_data(cfg("no-such-org/no-such-data"))
