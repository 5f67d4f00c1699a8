"""``edgedistill predict``: a model's answers for a few texts or sentence pairs, from any checkpoint or artifact.

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

from edgedistill.core.errors import DataError, EdgeDistillError
from edgedistill.data.encoding import Example, stack_rows, token_ids
from edgedistill.tasks import task_of_artifact, task_of_config
from edgedistill.tasks.base import Task


@dataclass
class Predictor:
    """A loaded model: its runner, tokenizer, task, output names, longest input, and what runs it."""

    runner: Any
    tokenizer: Any
    task: Task
    label_names: list[str]
    max_length: int
    runtime: str
    note: str | None = None

    def outputs(self, texts: list[Example]) -> np.ndarray:
        """The raw outputs for each text or ``(text, pair)``, each run alone at its own length."""
        outputs = []
        for example in texts:
            ids = token_ids(self.tokenizer, example, self.max_length)
            outputs.append(np.asarray(self.runner.predict(np.asarray([ids], dtype=np.int64),
                                                          np.ones((1, len(ids)), dtype=np.int64))))
        return stack_rows(outputs)

    def predict(self, texts: list[Example]) -> list[dict[str, Any]]:
        """The task's records for each text or ``(text, pair)``."""
        return self.task.predictions(texts, self.outputs(texts), self.label_names, self.tokenizer)

    def search(self, texts: list[Example], corpus: list[str], top: int) -> list[list[tuple[int, float]]]:
        """For each text, the ``top`` corpus lines closest to it as ``(line index, score)`` (the task ranks:
        a sentence encoder by cosine; a task without vectors refuses)."""
        queries = self.outputs(texts)
        return self.task.rank(queries, self.outputs(list(corpus)), top)


def open_model(path: Path, threads: int) -> Predictor:
    """A checkpoint or an artifact folder, ready to predict; a one-line error for anything else."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.exists():
        raise EdgeDistillError(f"{path}: no such file or folder")
    if (path / "artifact.json").is_file():
        from edgedistill.export.backends.base import Artifact, get_backend

        artifact = Artifact.open(path)
        task = task_of_artifact(artifact.info)
        runner = get_backend(artifact.target.backend).load(artifact, threads)
        labels = list(artifact.info.get("label_names") or [])
        longest = min(int(artifact.info.get("max_length", 128)), getattr(runner, "max_length", 1 << 30))
    elif (path / "config.json").is_file() and any((path / f).is_file() for f in ("model.safetensors",
                                                                                  "pytorch_model.bin")):
        from edgedistill.export.backends.pytorch import PyTorchRunner

        runner = PyTorchRunner(path, threads)
        model_config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        task = task_of_config(model_config, str(path))
        labels = task.label_names(model_config)
        longest = min(512, int(model_config.get("max_position_embeddings", 512)))
    else:
        raise EdgeDistillError(f"{path}: neither an artifact folder (artifact.json) nor a save_pretrained "
                               "checkpoint (config.json and model.safetensors)")
    if not (path / "tokenizer.json").is_file() and not (path / "vocab.txt").is_file():
        raise EdgeDistillError(f"{path}: no tokenizer files (tokenizer.json or vocab.txt) beside the model")
    return Predictor(runner, AutoTokenizer.from_pretrained(path), task, labels, longest,
                     getattr(runner, "runtime", "pytorch"), getattr(runner, "note", None))


def read_texts(texts: list[str], file: str | None) -> list[Example]:
    """The positional texts (``-``: one per line from stdin) and the lines of ``file`` (``-``: stdin); a text
    holding a tab is a sentence pair, split at its first tab (as a pair task's TSV row reads)."""
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
        raise DataError("no text to run: give TEXT arguments, --file FILE, or - to read standard input")
    return [as_example(text) for text in out]


def read_corpus(file: str) -> list[str]:
    """The non-blank lines of ``file`` (UTF-8), to be ranked by ``predict --corpus``."""
    try:
        lines = _lines(Path(file).read_bytes(), file)
    except OSError as exc:
        raise DataError(f"{file}: cannot read: {exc.strerror or exc}") from None
    if not lines:
        raise DataError(f"{file}: the corpus holds no text")
    return lines


def render_search(texts: list[Example], corpus: list[str], ranked: list[list[tuple[int, float]]],
                  as_json: bool) -> str:
    """Each text and its closest corpus lines (rank, score, line number, line); JSON Lines with ``--json``."""
    if as_json:
        return "\n".join(json.dumps({"text": text, "results": [
            {"rank": r + 1, "line": i + 1, "text": corpus[i], "score": round(score, 6)}
            for r, (i, score) in enumerate(hits)]}, ensure_ascii=False) for text, hits in zip(texts, ranked))
    blocks = []
    for text, hits in zip(texts, ranked):
        blocks.append("\n".join([f"{text}"] + [f"  {r + 1:>2d}. {score:.4f}  line {i + 1}: {corpus[i]}"
                                                for r, (i, score) in enumerate(hits)]))
    return "\n\n".join(blocks)


def as_example(text: str) -> Example:
    """A line as a model input: ``a<TAB>b`` is the pair (a, b), anything else one text."""
    first, tab, second = text.partition("\t")
    return (first, second) if tab else text


def _lines(raw: bytes, name: str) -> list[str]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{name}: not UTF-8 text (byte {exc.start}, line {line}); convert it, e.g. "
                        "iconv -f latin1 -t utf-8") from None
    return [line for line in text.splitlines() if line.strip()]


def render(predictor: Predictor, rows: list[dict[str, Any]], as_json: bool) -> str:
    """JSON Lines, or the task's plain-text lines."""
    if as_json:
        return "\n".join(json.dumps(row, ensure_ascii=False) for row in rows)
    return predictor.task.render_predictions(rows)
