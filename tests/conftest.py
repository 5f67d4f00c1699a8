"""Shared fixtures: tiny random-weight BERT models and small data files, built in seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_SST2 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sst2"

POSITIVE = ["good", "great", "fine", "lovely", "superb", "wonderful", "charming", "moving"]
NEGATIVE = ["bad", "awful", "dull", "boring", "terrible", "bleak", "tedious", "messy"]
FILLER = ["the", "movie", "film", "was", "a", "very", "really", "plot", "acting", "story", "and", "it", "."]


def toy_rows(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """Sentences whose label is decided by one sentiment word: learnable in a few steps."""
    import random

    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        word = rng.choice(POSITIVE if label else NEGATIVE)
        words = rng.sample(FILLER, 4)
        words.insert(rng.randrange(len(words) + 1), word)
        rows.append((" ".join(words), label))
    return rows


def write_tsv(path: Path, rows: list[tuple[str, int]]) -> Path:
    path.write_text("sentence\tlabel\n" + "".join(f"{t} \t{y}\n" for t, y in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def toy_data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("toy_sst")
    write_tsv(folder / "train.tsv", toy_rows(64, seed=1))
    write_tsv(folder / "dev.tsv", toy_rows(32, seed=2))
    return folder


def write_tiny_tokenizer(folder: Path) -> Path:
    """A WordPiece tokenizer of the toy words plus single letters (any word spells out), saved in ``folder``."""
    from transformers import BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *FILLER]
    vocab += [chr(c) for c in range(ord("a"), ord("z") + 1)] + [f"##{chr(c)}" for c in range(ord("a"), ord("z") + 1)]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    return write_tiny_tokenizer(tmp_path_factory.mktemp("tiny_tokenizer"))


def make_tiny_bert(folder: Path, tokenizer_dir: Path, *, layers: int = 4, hidden: int = 32,
                   with_head: bool = False, seed: int = 0, initializer_range: float = 0.02) -> Path:
    """A random BERT encoder (like the packaged MiniLM: no classification head) or a classifier."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=4, intermediate_size=hidden * 2, max_position_embeddings=128,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config) if with_head else BertModel(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny_encoder"), tiny_tokenizer_dir)


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.delenv("EDGEDISTILL_DATA_DIR", raising=False)
    yield


def requires_shared_sst2() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not SHARED_SST2.is_dir(), reason=f"{SHARED_SST2} not present")


os.environ.setdefault("WANDB_DISABLED", "true")
# No test reaches the network: the hub libraries read these when first imported, so they are set here, before any.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# The arm64 emulation environment the tests replay in is the user's (`edgedistill arm64 setup`), found before
# the cache moves: XNNPACK weight caches of the test artifacts go to a scratch folder, not the user's ~/.cache.
os.environ.setdefault("EDGEDISTILL_ARM64_ENV", str(Path(os.environ.get(
    "EDGEDISTILL_CACHE", Path.home() / ".cache" / "edgedistill")) / "emulation" / "arm64"))
os.environ.setdefault("EDGEDISTILL_CACHE", __import__("tempfile").mkdtemp(prefix="edgedistill-test-cache-"))


def train_tiny_classifier(folder: Path, tokenizer_dir: Path, data_dir: Path, *, steps: int = 120,
                          seed: int = 0) -> Path:
    """A tiny DistilBERT classifier trained on the toy task: confident logits, so int8 gates mean something."""
    import torch
    from transformers import AutoTokenizer, DistilBertConfig, DistilBertForSequenceClassification

    from edgedistill.core.config import DataConfig
    from edgedistill.data.task_data import load_task_data

    torch.set_num_threads(1)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, model_input_names=["input_ids", "attention_mask"])
    data = load_task_data(DataConfig(dataset=str(data_dir), label_names=["negative", "positive"]))
    torch.manual_seed(seed)
    model = DistilBertForSequenceClassification(DistilBertConfig(
        vocab_size=tokenizer.vocab_size, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
        max_position_embeddings=128, dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0,
        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}))
    batch = tokenizer(data.train.texts, padding=True, return_tensors="pt")
    labels = torch.tensor(data.train.labels)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for step in range(steps):
        rows = torch.randint(0, len(labels), (16,))
        loss = model(input_ids=batch["input_ids"][rows], attention_mask=batch["attention_mask"][rows],
                     labels=labels[rows]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def export_data_dir(tmp_path_factory) -> Path:
    """Toy data with a larger eval split (agreement steps of 0.5%, not 3%)."""
    folder = tmp_path_factory.mktemp("export_data")
    write_tsv(folder / "train.tsv", toy_rows(256, seed=3))
    write_tsv(folder / "dev.tsv", toy_rows(200, seed=4))
    return folder


@pytest.fixture(scope="session")
def data(export_data_dir):
    """The export tests' task data, loaded once (the 200-sentence eval split above)."""
    from edgedistill.core.config import DataConfig
    from edgedistill.data.task_data import load_task_data

    return load_task_data(DataConfig(dataset=str(export_data_dir), label_names=["negative", "positive"]))


@pytest.fixture(scope="session")
def tiny_student_dir(tmp_path_factory, tiny_tokenizer_dir, export_data_dir) -> Path:
    return train_tiny_classifier(tmp_path_factory.mktemp("tiny_student"), tiny_tokenizer_dir, export_data_dir)


TFLITE_SETTINGS_ARGS = {"max_length": 16, "threads": 1, "calibration_samples": 64, "seed": 0}
TFLITE_PROFILES = ["tflite-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8-weights", "tflite-int8-static"]
TFLITE_BUCKETS = [8, 16]


@pytest.fixture(scope="session")
def tiny_tflite_artifacts(tmp_path_factory, tiny_student_dir, data):
    """The tiny classifier exported to every TFLite precision (buckets 8 and 16): shared by the TFLite backend's
    tests and the arm64 replay's, which copy an artifact before changing it."""
    from edgedistill.core.targets import load_target
    from edgedistill.export.stage import ExportSettings, export_target

    root = tmp_path_factory.mktemp("tflite")
    out = {}
    for name in TFLITE_PROFILES:
        target = load_target(name)
        target = target.model_copy(update={"options": {**target.options, "buckets": TFLITE_BUCKETS}})
        out[name] = export_target(tiny_student_dir, target, data, root / name, ExportSettings(**TFLITE_SETTINGS_ARGS))
    return out


def distill_config(workdir: Path, teacher_model: Path, data: Path, **overrides):
    """A config for tiny, seconds-long distillation runs on the toy data."""
    base = {
        "teacher.model": str(teacher_model), "data.dataset": str(data), "data.max_length": 16,
        "data.label_names": ["negative", "positive"],
        "teacher.epochs": 16, "teacher.learning_rate": 1e-3, "teacher.batch_size": 8,
        "teacher.warmup_ratio": 0.0, "teacher.min_steps": 0, "distill.layers": 2, "distill.epochs": 8,
        "distill.learning_rate": 1e-3, "distill.batch_size": 8, "distill.warmup_ratio": 0.0,
        "distill.logging_steps": 8, "workdir": str(workdir), "threads": 1,
    }
    base.update(overrides)
    from edgedistill.core.config import load_config

    return load_config(overrides=base)


def run_distill(config, *, force: bool = False):
    """The teacher stage (cached), then the distill stage handed its teacher, as the pipeline runs them."""
    from edgedistill.data.task_data import load_task_data
    from edgedistill.training.distill import run_distill as distill_stage
    from edgedistill.training.teacher import run_teacher

    data = load_task_data(config.data, seed=config.seed)
    return distill_stage(config, run_teacher(config, data=data), data, force=force)


@pytest.fixture(scope="session")
def distilled(tmp_path_factory, tiny_encoder_dir, toy_data_dir):
    """A tiny teacher fine-tuned, and its student and baseline distilled: (config, results by role)."""
    config = distill_config(tmp_path_factory.mktemp("run"), tiny_encoder_dir, toy_data_dir)
    return config, {r.role: r for r in run_distill(config)}


def recheck(artifact, source_dir: Path, data, rows: int):
    """The artifact and its checkpoint run again here, outside the gate, on the first ``rows`` eval sentences one
    at a time: ``(label agreement, max |logit diff|)``. Tests compare the gate's record with these numbers, so a
    gate that computed the wrong thing (or compared the checkpoint with itself) fails them."""
    import numpy as np
    from transformers import AutoTokenizer

    from edgedistill.data.encoding import padded_batches
    from edgedistill.export.backends.base import get_backend
    from edgedistill.export.backends.pytorch import PyTorchRunner

    runner = get_backend(artifact.target.backend).load(artifact, 1)
    reference = PyTorchRunner(source_dir, 1)
    tokenizer = AutoTokenizer.from_pretrained(source_dir)
    ours, theirs = [], []
    for ids, mask in padded_batches(data.eval.inputs[:rows], tokenizer, 32, batch_size=1):
        ours.append(runner.predict(ids, mask)[0])
        theirs.append(reference.predict(ids, mask)[0])
    ours, theirs = np.array(ours), np.array(theirs)
    return float(np.mean(ours.argmax(-1) == theirs.argmax(-1))), float(np.abs(ours - theirs).max())
