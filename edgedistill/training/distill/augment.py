"""Teacher-labelled augmentation: more training text for the student, labelled by the teacher's soft targets.

Two sources, either or both (``distill.augment``):

- unlabelled in-domain text the user gives (``file``: a file or a folder, :mod:`edgedistill.data.unlabelled`);
- ``variants`` of each training sentence with words replaced by their nearest neighbours in the teacher's
  word-embedding space: TinyBERT's augmentation (each word replaced with probability 0.4 by one of its 15
  neighbours), with the teacher's own input embeddings in place of GloVe, since nothing is downloaded here.
  A replacement may flip the sentiment ("good" sits next to "bad"); that is the point: the teacher labels
  every variant, so the student sees the teacher's answer on text near the training distribution.

The teacher runs over the augmented rows once; its logits are stored with them. The rows carry no hard
label (``labels`` -100): the student learns them through the soft-target and layer losses only, and the
labels-only baseline never sees them.

Output: ``<workdir>/augment/augmented.jsonl`` (``text``, ``text_pair`` for a pair task, ``source``: ``file`` or
``variant``, ``teacher_logits``), ``metrics.json`` and ``stage.json``; cached like the other stages.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedistill.core.atomic import write_text_atomic
from edgedistill.core.cache import run_cached_stage, stage_key
from edgedistill.core.config import Config, dump_config
from edgedistill.core.hashing import sha256_tree
from edgedistill.data.task_data import Split, TaskData
from edgedistill.data.unlabelled import read_unlabelled
from edgedistill.tasks import get_task

log = logging.getLogger("edgedistill.augment")

STAGE = "augment"
ROWS_FILE = "augmented.jsonl"
OUTPUTS = (ROWS_FILE, "metrics.json")
NO_LABEL = -100  # cross-entropy's ignore_index: the row teaches through the teacher alone


@dataclass
class AugmentResult:
    path: Path
    key: str
    metrics: dict[str, Any]
    cached: bool

    def rows(self) -> list[dict[str, Any]]:
        with (self.path / ROWS_FILE).open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle]


def run_augment(config: Config, teacher_dir: Path, teacher_hash: str, data: TaskData, *, force: bool = False
                ) -> AugmentResult | None:
    """Build (or reuse) the teacher-labelled rows; ``None`` when ``distill.augment`` asks for none."""
    settings = config.distill.augment
    if not settings.enabled:
        return None
    source = None
    if settings.file:
        path = Path(settings.file)
        read_unlabelled(path, config.data)  # bad input fails here, before anything runs, naming the file
        source = sha256_tree(path)
    inputs = {"teacher": teacher_hash, "data": data.fingerprint, "max_length": config.data.max_length,
              "augment": settings.model_dump(), "file": source, "seed": config.seed}
    out = Path(config.workdir) / STAGE
    metrics, cached = run_cached_stage(STAGE, out, inputs, OUTPUTS,
                                       lambda tmp: _build(config, teacher_dir, data, tmp), dump_config(config),
                                       force=force)
    return AugmentResult(out, stage_key(STAGE, inputs), metrics, cached)


def word_neighbours(vocab: dict[str, int], embeddings: Any, words: Iterable[str], k: int,
                    chunk: int = 2048) -> dict[str, list[str]]:
    """The ``k`` nearest whole words (cosine of the embedding rows) of each of ``words`` found in ``vocab``.

    Candidates are the vocabulary's ASCII alphabetic whole words of two or more letters (no ``##`` pieces,
    no ``[unused]`` or special tokens, no single characters or scripts of the multilingual tail), so a
    replacement is always a word a reader of the training text would recognise.
    """
    import torch

    candidates = sorted((t for t in vocab if t.isalpha() and len(t) > 1 and t.isascii()), key=vocab.__getitem__)
    if not candidates:
        return {}
    table = torch.nn.functional.normalize(embeddings[[vocab[t] for t in candidates]].float(), dim=-1)
    index = {t: i for i, t in enumerate(candidates)}
    queries = sorted({w for w in words if w in index}, key=index.__getitem__)
    found: dict[str, list[str]] = {}
    for start in range(0, len(queries), chunk):
        block = queries[start:start + chunk]
        rows = torch.tensor([index[w] for w in block])
        scores = table[rows] @ table.T
        scores[torch.arange(len(block)), rows] = -2.0  # never the word itself
        top = scores.topk(min(k, len(candidates) - 1), dim=-1).indices
        found.update({w: [candidates[j] for j in top_row] for w, top_row in zip(block, top.tolist())})
    return found


def teacher_neighbours(tokenizer: Any, teacher: Any, texts: Iterable[str], k: int) -> dict[str, list[str]]:
    """The ``k`` neighbours (:func:`word_neighbours`) of every word of ``texts``, as written and lower-cased, in
    the teacher's own input-embedding space."""
    words = {w for text in texts for w in text.split()}
    return word_neighbours(tokenizer.get_vocab(), teacher.get_input_embeddings().weight.detach(),
                           words | {w.lower() for w in words}, k)


def replace_words(text: str, neighbours: dict[str, list[str]], replace_prob: float, rng: random.Random) -> str:
    """``text`` with each known word replaced, with probability ``replace_prob``, by a random neighbour."""
    words = text.split()
    for i, word in enumerate(words):
        options = neighbours.get(word) or neighbours.get(word.lower())
        if options and rng.random() < replace_prob:
            words[i] = rng.choice(options)
    return " ".join(words)


def make_variants(texts: list[str], pairs: list[str] | None, neighbours: dict[str, list[str]], count: int,
                  replace_prob: float, rng: random.Random) -> tuple[list[str], list[str] | None]:
    """Up to ``count`` distinct variants per row (a pair task varies both texts); a row with no replaceable
    word, or whose draws only repeat it, gives fewer."""
    out_texts: list[str] = []
    out_pairs: list[str] | None = [] if pairs is not None else None
    for i, text in enumerate(texts):
        seen = {(" ".join(text.split()), " ".join(pairs[i].split()) if pairs is not None else "")}  # as re-joined
        for _ in range(count * 3):  # a few extra draws for short rows that often come back unchanged
            if len(seen) > count:
                break
            variant = (replace_words(text, neighbours, replace_prob, rng),
                       replace_words(pairs[i], neighbours, replace_prob, rng) if pairs is not None else "")
            if variant not in seen:
                seen.add(variant)
                out_texts.append(variant[0])
                if out_pairs is not None:
                    out_pairs.append(variant[1])
    return out_texts, out_pairs


def _build(config: Config, teacher_dir: Path, data: TaskData, out: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from edgedistill.training.common import predict_outputs

    torch.set_num_threads(config.threads)
    settings = config.distill.augment
    rng = random.Random(config.seed)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    task = get_task(config.task)
    teacher = task.load_model(teacher_dir).eval()
    texts: list[str] = []
    pairs: list[str] | None = [] if data.train.text_pairs is not None else None
    sources: list[str] = []
    if settings.file:
        file_texts, file_pairs = read_unlabelled(settings.file, config.data)
        texts += file_texts
        if pairs is not None:
            pairs += file_pairs
        sources += ["file"] * len(file_texts)
        log.info("augment: %d rows of unlabelled text from %s", len(file_texts), settings.file)
    if settings.variants:
        neighbours = teacher_neighbours(tokenizer, teacher, data.train.texts + (data.train.text_pairs or []),
                                        settings.neighbours)
        variant_texts, variant_pairs = make_variants(data.train.texts, data.train.text_pairs, neighbours,
                                                     settings.variants, settings.replace_prob, rng)
        texts += variant_texts
        if pairs is not None:
            pairs += variant_pairs
        sources += ["variant"] * len(variant_texts)
        log.info("augment: %d variants of %d training rows (%d words with neighbours)", len(variant_texts),
                 len(data.train), len(neighbours))
    keep = list(range(len(texts)))
    if settings.max_samples is not None and len(keep) > settings.max_samples:
        keep = sorted(rng.sample(keep, settings.max_samples))
    texts, sources = [texts[i] for i in keep], [sources[i] for i in keep]
    pairs = [pairs[i] for i in keep] if pairs is not None else None
    log.info("augment: the teacher labels %d rows", len(texts))
    split = Split("augment", texts, [NO_LABEL] * len(texts), pairs, "augment")
    features = split.features(tokenizer, config.data.max_length, with_token_type_ids=pairs is not None)
    logits = predict_outputs(teacher, features, DataCollatorWithPadding(tokenizer), config.distill.eval_batch_size, task,
                            progress="teacher labels")
    lines = []
    for i, text in enumerate(texts):
        row: dict[str, Any] = {"text": text, "source": sources[i], "teacher_logits": logits[i].tolist()}
        if pairs is not None:
            row["text_pair"] = pairs[i]
        lines.append(json.dumps(row, ensure_ascii=False))
    write_text_atomic(out / ROWS_FILE, "\n".join(lines) + "\n")
    return {
        "rows": len(texts),
        "from_file": sources.count("file"),
        "variants": sources.count("variant"),
        "teacher_outputs": task.summarize(logits, data.label_names),
        "settings": settings.model_dump(),
        "build_time_s": round(time.perf_counter() - started, 2),
    }


def augmented_features(result: AugmentResult, tokenizer: Any, max_length: int, with_token_type_ids: bool
                       ) -> list[dict[str, Any]]:
    """The augmented rows as training features: token ids, no hard label, the teacher's stored logits."""
    rows = result.rows()
    pairs = [row["text_pair"] for row in rows] if rows and "text_pair" in rows[0] else None
    split = Split("augment", [row["text"] for row in rows], [NO_LABEL] * len(rows), pairs, "augment")
    features = split.features(tokenizer, max_length, with_token_type_ids=with_token_type_ids)
    return [{**f, "teacher_logits": row["teacher_logits"]} for f, row in zip(features, rows)]
