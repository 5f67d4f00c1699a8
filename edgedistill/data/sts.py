"""Semantic textual similarity data: sentence pairs with a gold similarity score (the STS Benchmark).

Read as the embedding task needs it (:mod:`edgedistill.tasks.embedding`): a :class:`TaskData` whose splits hold
the pairs *flattened* — rows ``2i`` and ``2i + 1`` are pair ``i``'s two sentences — and whose labels are the
pairs' scores, one per pair. The gate, the golden vectors and the benchmark then run the eval sentences like
any task's rows, and the task's judge reads the pairs back from the row order (:func:`pair_rows`).

Formats:

* the STS Benchmark as distributed (``sts-train.csv``, ``sts-dev.csv``): tab-separated, no header, the fields
  genre, file, year, id, score (0-5), sentence 1, sentence 2; some rows carry extra trailing fields, which are
  ignored (the first seven are kept, no quote handling);
* ``.jsonl`` with ``sentence1`` / ``sentence2`` / ``score`` (the hub's ``sentence-transformers/stsb`` layout);
* a folder holding a train file and a dev file of either kind, or a hub dataset id with those columns.

A score that is not a number, or lies outside 0-5, is a :class:`DataError` naming the file and line. Plain
Python: no torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from edgedistill.core.config import DataConfig
from edgedistill.core.errors import DataError
from edgedistill.core.hashing import sha256_file, sha256_json
from edgedistill.data.task_data import Split, TaskData, carve_rows, find_split_file, hub_splits, sample_indices
from edgedistill.data.text_files import decode_lines, json_records

STS_FIELDS = 7  # genre, file, year, id, score, sentence 1, sentence 2
SCORE_RANGE = (0.0, 5.0)
TRAIN_NAMES = ("sts-train", "train")
EVAL_NAMES = ("sts-dev", "dev", "validation", "eval", "sts-test", "test")
SUFFIXES = (".csv", ".tsv", ".jsonl")  # the files a --data path names directly

Pairs = list[tuple[str, str, float]]


def _score(raw: Any, path: Path | str, line: int) -> float:
    try:
        score = float(raw)
    except (TypeError, ValueError):
        raise DataError(f"{path}, line {line}: score {raw!r} is not a number (STS scores are 0-5)") from None
    if not math.isfinite(score) or not SCORE_RANGE[0] <= score <= SCORE_RANGE[1]:
        raise DataError(f"{path}, line {line}: score {raw!r} is outside {SCORE_RANGE[0]:g}-{SCORE_RANGE[1]:g}")
    return score


def read_sts_file(path: Path) -> Pairs:
    """The ``(sentence 1, sentence 2, score)`` rows of one STS file (tab-separated or JSON Lines)."""
    pairs: Pairs = []
    if path.suffix.lower() == ".jsonl":
        for number, record in json_records(path):
            missing = [k for k in ("sentence1", "sentence2", "score") if k not in record]
            if missing:
                raise DataError(f"{path}, line {number}: no field {missing[0]!r}; an STS JSONL row needs "
                                f"sentence1, sentence2 and score (it has: {', '.join(record)})")
            pairs.append((str(record["sentence1"]), str(record["sentence2"]), _score(record["score"], path, number)))
    else:
        for number, line in enumerate(decode_lines(path), start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < STS_FIELDS:
                raise DataError(f"{path}, line {number}: {len(fields)} tab-separated fields, an STS row has "
                                f"{STS_FIELDS} (genre, file, year, id, score, sentence 1, sentence 2)")
            pairs.append((fields[5].strip(), fields[6].strip(), _score(fields[4], path, number)))
    if not pairs:
        raise DataError(f"{path} holds no sentence pairs")
    return pairs


def flatten(name: str, pairs: Pairs, source: str) -> Split:
    """A split whose rows are the pairs' sentences in order (pair ``i`` at rows ``2i``, ``2i + 1``) and whose
    labels are the pairs' scores."""
    texts = [sentence for first, second, _ in pairs for sentence in (first, second)]
    return Split(name, texts, [score for *_, score in pairs], None, source)


def pair_rows(outputs: Any) -> tuple[Any, Any]:
    """The first and second sentence's rows of every complete pair in a flattened split's outputs."""
    n = len(outputs) // 2 * 2
    return outputs[0:n:2], outputs[1:n:2]


def _local(path: Path, cfg: DataConfig, seed: int) -> tuple[Pairs, Pairs, list[str]]:
    if path.is_dir():
        train_file = find_split_file(path, (cfg.train_split, *TRAIN_NAMES))
        if train_file is None:
            listing = ", ".join(sorted(p.name for p in path.iterdir())) or "nothing"
            raise DataError(f"{path}: no STS train file (sts-train.csv, train.tsv or train.jsonl); the folder "
                            f"holds: {listing}")
        eval_file = find_split_file(path, (cfg.eval_split, *EVAL_NAMES))
    else:
        train_file, eval_file = path, None
    train = read_sts_file(train_file)
    if eval_file is not None:
        return train, read_sts_file(eval_file), [str(train_file), str(eval_file)]
    return (*carve_rows(train, cfg, seed, str(train_file), "pairs"), [str(train_file)])


def _hub(dataset: str, cfg: DataConfig) -> tuple[Pairs, Pairs, list[str]]:
    train, evaluation, source = hub_splits(dataset, cfg, "STS", ("sentence1", "sentence2", "score"))
    out = [[(str(a), str(b), _score(s, f"{dataset}[{name}]", i))
            for i, (a, b, s) in enumerate(zip(table["sentence1"], table["sentence2"], table["score"]), 1)]
           for name, table in ((cfg.train_split, train), (cfg.eval_split, evaluation))]
    return out[0], out[1], [source]


def load_sts_data(cfg: DataConfig, seed: int = 42) -> TaskData:
    """The STS train and eval pairs, flattened (:func:`flatten`); ``max_*_samples`` count pairs."""
    local = Path(cfg.dataset).expanduser()
    if local.exists():
        train, evaluation, sources = _local(local, cfg, seed)
    elif cfg.dataset.endswith(SUFFIXES) or cfg.dataset.startswith(("/", "./", "../", "~")):
        raise DataError(f"data path {cfg.dataset} does not exist")
    else:
        train, evaluation, sources = _hub(cfg.dataset, cfg)
    train = [train[i] for i in sample_indices(len(train), cfg.max_train_samples, seed)]
    evaluation = [evaluation[i] for i in sample_indices(len(evaluation), cfg.max_eval_samples, seed)]
    content = [sha256_file(Path(s)) if Path(s).is_file() else s for s in sources]
    settings = cfg.model_dump(include={"train_split", "eval_split", "eval_fraction", "max_train_samples",
                                       "max_eval_samples"})
    fingerprint = sha256_json({"content": content, "settings": settings, "seed": seed, "format": "sts-pairs"})
    return TaskData(flatten("train", train, sources[0]), flatten("eval", evaluation, sources[-1]), [], fingerprint,
                    sources)
