"""``edgedistill predict``: labels and probabilities for a few texts, from any checkpoint or artifact.

A checkpoint folder (``config.json``) runs in PyTorch; an artifact folder (``artifact.json``) runs in its
own runtime (ONNX Runtime, LiteRT, Core ML, or off macOS the labelled Core ML emulation), tokenized by the
tokenizer files it carries, exactly as its gate and golden vectors were.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.errors import DataError, EdgeDistillError


@dataclass
class Predictor:
    """A loaded model: its runner, tokenizer, label names, longest input, and what runs it."""

    runner: Any
    tokenizer: Any
    label_names: list[str]
    max_length: int
    runtime: str
    note: str | None = None

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        rows = []
        for text in texts:
            ids = self.tokenizer(text, truncation=True, max_length=self.max_length)["input_ids"]
            logits = np.asarray(self.runner.predict(np.asarray([ids], dtype=np.int64),
                                                    np.ones((1, len(ids)), dtype=np.int64)), dtype=np.float64)[0]
            probabilities = np.exp(logits - logits.max())
            probabilities /= probabilities.sum()
            best = int(np.argmax(logits))
            rows.append({"text": text, "label": self.label_names[best],
                         "probabilities": {name: round(float(p), 6) for name, p in
                                           zip(self.label_names, probabilities, strict=True)}})
        return rows


def open_model(path: Path, threads: int) -> Predictor:
    """A checkpoint or an artifact folder, ready to predict; a one-line error for anything else."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.exists():
        raise EdgeDistillError(f"{path}: no such file or folder")
    if (path / "artifact.json").is_file():
        from edgedistill.backends.base import Artifact, get_backend

        artifact = Artifact.open(path)
        runner = get_backend(artifact.target.backend).load(artifact, threads)
        labels = list(artifact.info.get("label_names") or [])
        longest = min(int(artifact.info.get("max_length", 128)), getattr(runner, "max_length", 1 << 30))
    elif (path / "config.json").is_file() and any((path / f).is_file() for f in ("model.safetensors",
                                                                                  "pytorch_model.bin")):
        from edgedistill.backends.pytorch import PyTorchRunner

        runner = PyTorchRunner(path, threads)
        id2label = runner.model.config.id2label
        labels = [id2label.get(i, str(i)) for i in range(len(id2label))]
        longest = min(512, int(getattr(runner.model.config, "max_position_embeddings", 512)))
    else:
        raise EdgeDistillError(f"{path}: neither an artifact folder (artifact.json) nor a save_pretrained "
                               "checkpoint (config.json and model.safetensors)")
    if not (path / "tokenizer.json").is_file() and not (path / "vocab.txt").is_file():
        raise EdgeDistillError(f"{path}: no tokenizer files (tokenizer.json or vocab.txt) beside the model")
    return Predictor(runner, AutoTokenizer.from_pretrained(path), labels, longest,
                     getattr(runner, "runtime", "pytorch"), getattr(runner, "note", None))


def read_texts(texts: list[str], file: str | None) -> list[str]:
    """The positional texts (``-``: one per line from stdin) and the lines of ``file`` (``-``: stdin)."""
    out: list[str] = []
    for text in texts:
        out += _lines(sys.stdin.buffer.read(), "standard input") if text == "-" else [text]
    if file is not None:
        if file == "-":
            out += _lines(sys.stdin.buffer.read(), "standard input")
        else:
            try:
                out += _lines(Path(file).read_bytes(), file)
            except OSError as exc:
                raise DataError(f"{file}: cannot read: {exc.strerror or exc}") from None
    if not out:
        raise DataError("no text to classify: give TEXT arguments, --file FILE, or - to read standard input")
    return out


def _lines(raw: bytes, name: str) -> list[str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{name}: not UTF-8 text (byte {exc.start}, line {line}); convert it, e.g. "
                        "iconv -f latin1 -t utf-8") from None
    return [line for line in text.splitlines() if line.strip()]


def render(rows: list[dict[str, Any]], as_json: bool) -> str:
    """JSON Lines, or one aligned line per text: label, its probability, the text."""
    if as_json:
        return "\n".join(json.dumps(row, ensure_ascii=False) for row in rows)
    width = max(len(row["label"]) for row in rows)
    return "\n".join(f"{row['label']:{width}s}  {row['probabilities'][row['label']]:.4f}  {row['text']}"
                     for row in rows)
