"""One model, measured in this fresh process: load, accuracy pass, latency grid, real-length pass.

Run by the harness as ``python -m edgedistill.bench.worker SPEC.json``; writes the result JSON and the
eval logits (.npy) named in the spec. Being a process of its own, its peak RSS and load time are the
model's alone, and a crash here becomes an error row in the report instead of ending the benchmark.
Tokenization uses the ``tokenizers`` library directly (as an app would), so an ONNX or TFLite row
does not carry the memory of torch or transformers.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.bench.memory import current_rss_mb, peak_rss_mb
from edgedistill.bench.timing import measure
from edgedistill.data.encoding import stack_rows, without_padding


def _tokenizer(path: Path, max_length: int) -> Any:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.enable_truncation(max_length)
    tokenizer.no_padding()
    return tokenizer


def _batch(tokenizer: Any, texts: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Sentences, or sentence pairs (two-item lists, as JSON carries tuples), encoded as training did."""
    encodings = tokenizer.encode_batch([tuple(t) if isinstance(t, list) else t for t in texts])
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(texts), width), dtype=np.int64)
    mask = np.zeros((len(texts), width), dtype=np.int64)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    return ids, mask


def synthetic_inputs(tokenizer: Any, batch: int, seq: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Full-length rows of random ordinary word pieces between the tokenizer's [CLS] and [SEP].

    Latency depends on the shape, not on which tokens fill it; every position is attended.
    """
    vocab = tokenizer.get_vocab_size()
    rng = np.random.default_rng(seed)
    ids = rng.integers(min(1000, vocab // 2), vocab, size=(batch, seq), dtype=np.int64)
    ids[:, 0] = tokenizer.token_to_id("[CLS]") or 0
    ids[:, -1] = tokenizer.token_to_id("[SEP]") or 0
    return ids, np.ones((batch, seq), dtype=np.int64)


def load_checkpoint(path: Path, threads: int) -> Any:
    from edgedistill.export.backends.pytorch import PyTorchRunner

    return PyTorchRunner(path, threads)


def load_artifact(path: Path, threads: int) -> Any:
    from edgedistill.export.backends.base import Artifact, get_backend

    artifact = Artifact.open(path)
    return get_backend(artifact.target.backend).load(artifact, threads)


def _load_runner(spec: dict[str, Any]) -> Any:
    """The item's runner, from the ``module:function`` its maker named (checkpoints, artifacts, peers)."""
    import importlib

    module, _, function = spec["loader"].partition(":")
    return getattr(importlib.import_module(module), function)(Path(spec["path"]), spec["threads"])


def run(spec: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {"rss_before_load_mb": round(current_rss_mb(), 1)}
    started = time.perf_counter()
    runner = _load_runner(spec)
    result["load_s"] = round(time.perf_counter() - started, 4)
    result["peak_rss_after_load_mb"] = round(peak_rss_mb(), 1)

    path = Path(spec["path"])
    eval_set = json.loads(Path(spec["eval_file"]).read_text())
    tokenizer = _tokenizer(path, spec["max_length"])
    texts = eval_set["texts"]
    logits = []
    for start in range(0, len(texts), 32):
        ids, mask = _batch(tokenizer, texts[start:start + 32])
        logits.append(without_padding(runner.predict(ids, mask), mask))
    np.save(spec["logits_file"], stack_rows(logits, spec["max_length"]).astype(np.float32))
    result["runtime"] = getattr(runner, "runtime", None)
    if not getattr(runner, "measures_latency", True):  # an emulation: its timings would be a lie
        result["latency"] = []
        result["latency_note"] = getattr(runner, "note", "this runner does not measure latency")
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        return result

    knobs = spec["timing"]
    grid = []
    for batch in spec["batch_sizes"]:
        for seq in spec["seq_lengths"]:
            ids, mask = synthetic_inputs(tokenizer, batch, seq)
            stats = measure(lambda: runner.predict(ids, mask), batch=batch, **knobs)
            point = {"batch": batch, "seq": seq, **stats.as_dict()}
            if hasattr(runner, "bucket_for"):  # fixed-shape backends pad up to a bucket
                point["bucket"] = runner.bucket_for(seq)
            grid.append(point)
    result["latency"] = grid

    real = texts[: spec["real_samples"]]
    singles = [_batch(tokenizer, [t]) for t in real]
    for ids, mask in singles[:5]:
        runner.predict(ids, mask)
    per_sentence = []
    for ids, mask in singles:
        t0 = time.perf_counter()
        runner.predict(ids, mask)
        per_sentence.append((time.perf_counter() - t0) * 1000)
    from edgedistill.bench.timing import summarize

    lengths = [int(mask.sum()) for _, mask in singles]
    words = sum(len(part.split()) for t in real for part in (t if isinstance(t, list) else [t]))
    real_stats = summarize(per_sentence, first_ms=per_sentence[0], warmup_runs=5, batch=1)
    result["real_lengths"] = {
        "sentences": len(singles), "mean_tokens": round(float(np.mean(lengths)), 1),
        "max_tokens": int(max(lengths)), "sentences_per_s": round(1000 * len(singles) / sum(per_sentence), 2),
        # whitespace-separated words (a tagger's unit): the same sentences, one at a time
        "words_per_s": round(1000 * words / sum(per_sentence), 1),
        **real_stats.as_dict(),
    }
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    return result


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from edgedistill.core.logs import quiet_third_party

    quiet_third_party()
    result = run(spec)
    Path(spec["result_file"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
