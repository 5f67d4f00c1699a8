"""Text to model inputs: encoding a sentence or a pair, padded batches, and fixed-shape buckets (one owner).

Everything that turns text into ``(input_ids, attention_mask)`` goes through here, so training, the gate,
calibration, golden vectors, ``predict`` and the benchmark all feed a model the same ids:

* :func:`encode_one` / :func:`encode`: one row, or a split for the Trainer (unpadded);
* :func:`padded_batches`: int64 batches padded to their longest row (or to ``max_length``);
* :func:`stack_rows`, :func:`without_padding`: outputs of batches of different widths in one array (per-token
  outputs padded), the rows of padding tokens zeroed;
* :func:`bucket_for`, :func:`pad_to`, :func:`bucket_feed`: fixed-shape backends (TFLite signatures, Core ML
  enumerated shapes) take the smallest bucket that holds a row, zero-padded; a TFLite signature is named
  :func:`signature_name` of its bucket.

Plain numpy; the tokenizer is whatever the caller loaded (Hugging Face ``transformers`` or ``tokenizers``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

# One row as a tokenizer takes it: a sentence, or a (sentence, pair) tuple. A list of them is one batch call
# (Hugging Face tokenizers encode a list of tuples as pairs); one of them goes through ``encode_one``.
Example = str | tuple[str, str]


def encode_one(tokenizer: Any, example: Example, **kwargs: Any) -> Any:
    """Tokenize one row, a sentence or a sentence pair, as training encoded it."""
    return tokenizer(*example, **kwargs) if isinstance(example, tuple) else tokenizer(example, **kwargs)


def token_ids(tokenizer: Any, example: Example, max_length: int) -> list[int]:
    """The ids of one row, truncated to ``max_length`` tokens."""
    return list(encode_one(tokenizer, example, truncation=True, max_length=max_length)["input_ids"])


def encode(texts: list[str], text_pairs: list[str] | None, labels: Sequence[Any], tokenizer: Any, max_length: int,
           *, with_token_type_ids: bool = False) -> list[dict]:
    """Tokenize without padding (the collator pads each batch to its own longest row): a list of feature dicts
    with ``labels``, which transformers' Trainer accepts as a dataset as it is."""
    args = (texts, text_pairs) if text_pairs is not None else (texts,)
    encoded = tokenizer(*args, truncation=True, max_length=max_length,
                        return_token_type_ids=with_token_type_ids or text_pairs is not None)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in encoded]
    return [{**{k: encoded[k][i] for k in keys}, "labels": label} for i, label in enumerate(labels)]


def padded_batches(inputs: Sequence[Example], tokenizer: Any, max_length: int, batch_size: int = 16,
                   padding: bool | str = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(input_ids, attention_mask) int64 batches of sentences or sentence pairs, each padded to its own
    longest row (``padding="max_length"``: every batch to ``max_length``; ``False``: batches of one, unpadded)."""
    for start in range(0, len(inputs), batch_size):
        encoded = tokenizer(list(inputs[start:start + batch_size]), padding=padding, truncation=True,
                            max_length=max_length, return_tensors="np", return_token_type_ids=False)
        yield encoded["input_ids"].astype(np.int64), encoded["attention_mask"].astype(np.int64)


def signature_name(bucket: int) -> str:
    """The TFLite signature of one sequence bucket: ``seq_<length>``."""
    return f"seq_{bucket}"


def signature_bucket(name: str) -> int | None:
    """The bucket a ``seq_<length>`` signature runs, or None for a signature of another name."""
    prefix, _, length = name.partition("_")
    return int(length) if prefix == "seq" and length.isdigit() else None


def bucket_for(length: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds ``length`` tokens (the largest when none does)."""
    return next((b for b in buckets if b >= length), buckets[-1])


def pad_to(ids: Sequence[int], width: int, rows: int = 1, dtype: Any = np.int32) -> tuple[np.ndarray, np.ndarray]:
    """``ids`` zero-padded (or cut) to ``width``, repeated on ``rows`` rows, and the attention mask that marks them."""
    used = min(len(ids), width)
    row_ids = np.zeros((rows, width), dtype=dtype)
    row_mask = np.zeros((rows, width), dtype=dtype)
    row_ids[:, :used] = list(ids)[:used]
    row_mask[:, :used] = 1
    return row_ids, row_mask


def bucket_feed(tokenizer: Any, example: Example, buckets: Sequence[int], rows: int = 1
                ) -> tuple[int, dict[str, np.ndarray]]:
    """One row encoded and padded to its bucket, as a fixed-shape signature's int32 feed: ``(bucket, feed)``."""
    ids = token_ids(tokenizer, example, buckets[-1])
    bucket = bucket_for(len(ids), buckets)
    row_ids, row_mask = pad_to(ids, bucket, rows)
    return bucket, {"input_ids": row_ids, "attention_mask": row_mask}


def stack_rows(chunks: Sequence[np.ndarray], width: int | None = None) -> np.ndarray:
    """Batches of outputs as one array, row after row. Outputs with a token axis (``[batch, tokens, ...]``: a
    tag per token) come from batches padded to their own widths: each is padded with zeros to ``width`` (the
    widest batch when None); what lies past a row's tokens is padding and carries no meaning."""
    chunks = [np.asarray(c) for c in chunks]
    if not chunks or chunks[0].ndim < 3:
        return np.concatenate(chunks) if chunks else np.zeros((0,), dtype=np.float32)
    width = width if width is not None else max(c.shape[1] for c in chunks)
    padded = []
    for chunk in chunks:
        if chunk.shape[1] > width:
            chunk = chunk[:, :width]
        pad = [(0, 0), (0, width - chunk.shape[1])] + [(0, 0)] * (chunk.ndim - 2)
        padded.append(np.pad(chunk, pad))
    return np.concatenate(padded)


def without_padding(output: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """An output with a token axis with the rows of padding tokens zeroed: they carry no meaning (nothing reads
    them), and runtimes compute them differently (a bucket's padding, a batch's), so a comparison of two
    models' per-token outputs reads the real tokens only. Any other output as it is."""
    output = np.asarray(output)
    if output.ndim < 3:
        return output
    mask = np.asarray(attention_mask)[:, : output.shape[1]].astype(bool)
    return np.where(mask.reshape(*mask.shape, *[1] * (output.ndim - 2)), output, 0).astype(output.dtype, copy=False)


def at_width(output: np.ndarray, width: int) -> np.ndarray:
    """A runner's output for a batch fed at ``width`` tokens: an output with a token axis cut or zero-padded to
    ``width`` (a fixed-shape runner computes its bucket's rows), any other output as it is."""
    output = np.asarray(output)
    if output.ndim < 3 or output.shape[1] == width:
        return output
    if output.shape[1] > width:
        return output[:, :width]
    return np.pad(output, [(0, 0), (0, width - output.shape[1])] + [(0, 0)] * (output.ndim - 2))
