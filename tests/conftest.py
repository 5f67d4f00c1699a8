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


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    from transformers import BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny_tokenizer")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *FILLER]
    vocab += [chr(c) for c in range(ord("a"), ord("z") + 1)] + [f"##{chr(c)}" for c in range(ord("a"), ord("z") + 1)]
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True).save_pretrained(folder)
    return folder


def make_tiny_bert(folder: Path, tokenizer_dir: Path, *, layers: int = 4, hidden: int = 32,
                   with_head: bool = False, seed: int = 0) -> Path:
    """A random BERT encoder (like the packaged MiniLM: no classification head) or a classifier."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification, BertModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=4, intermediate_size=hidden * 2, max_position_embeddings=128,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
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
