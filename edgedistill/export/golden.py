"""Golden vectors: fixed texts, the exact inputs an artifact takes for them, and the logits it gave.

Every exported artifact carries ``golden.json``: a few real eval sentences and the cases tokenizers get
wrong (accents, emoji, CJK, URLs, numbers, text longer than the model takes, the empty string, whitespace
only), each with its token ids and attention mask as the artifact's runtime is fed them (padded to the
bucket a fixed-shape file uses) and the logits the artifact returned at export, with the tolerance a
re-run must meet. It is what an Android or iOS integrator runs in a unit test on the device: feed the
recorded ids, compare the logits; tokenize the recorded text with their own tokenizer, compare the ids.
``edgedistill verify ARTIFACT`` re-runs both here and names every case that no longer reproduces.

The logits are the artifact's own (its runtime's, or for Core ML off macOS the labelled emulation's),
not the PyTorch model's: the parity gate has already compared those.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.core.errors import EdgeDistillError
from edgedistill.data.encoding import Example, pad_to, token_ids
from edgedistill.data.segments import segment_ids
from edgedistill.tasks.base import Task

GOLDEN_FILE = "golden.json"
SCHEMA = "edgedistill.golden/1"
EVAL_CASES = 8

HARD_CASES: tuple[tuple[str, str], ...] = (
    ("accents", "Un café crème brûlée, très délicieux: naïve but charming, à la Amélie."),
    ("emoji", "loved every minute 😍🔥👏 would watch again"),
    ("cjk", "这部电影非常好看，演员很出色。映画はとても面白かった。"),
    ("url", "full review at https://example.com/reviews/42?ref=edge#top (spoilers)"),
    ("numbers", "3.5 out of 10 -- worse than the 1999 original, and 2x as long at 142 minutes"),
    ("long", " ".join(["a quietly devastating film that earns every one of its tears"] * 40)),
    ("empty", ""),
    ("whitespace", " \t \n  "),
)

# How far a re-run's logits may move (absolute, logit units). The same runtime on the same file repeats
# to ~1e-6; another CPU's kernels or another Core ML compute unit round differently, more so in reduced
# precision, so the bound is loose enough for a device and tight enough to catch a wrong input.
TOLERANCE = {"fp32": 1e-3}
REDUCED_TOLERANCE = 0.1
# The integer type of the token inputs each backend's file declares.
INPUT_DTYPE = {"pytorch": "int64", "onnx": "int64", "tflite": "int32", "coreml": "int32"}


def golden_cases(eval_inputs: Sequence[Example]) -> list[tuple[str, Example]]:
    """The first real eval rows, then the hard cases: ``(kind, text or sentence pair)``."""
    return [("eval", x) for x in eval_inputs[:EVAL_CASES]] + list(HARD_CASES)


def build_golden(runner: Any, tokenizer: Any, eval_inputs: Sequence[Example], *, task: Task, backend: str,
                 precision: str, max_length: int, label_names: list[str]) -> dict[str, Any]:
    """Run every golden case through ``runner`` (the artifact's own) and record inputs and logits."""
    longest = min(max_length, getattr(runner, "max_length", max_length))
    sep = getattr(runner, "sep_token_id", None)
    cases = []
    for kind, example in golden_cases(eval_inputs):
        ids = token_ids(tokenizer, example, longest)
        width = runner.bucket_for(len(ids)) if hasattr(runner, "bucket_for") else len(ids)
        row, mask = pad_to(ids, width, dtype=np.int64)
        output = np.asarray(runner.predict(row, mask), dtype=np.float32)[0]
        text, pair = (example if isinstance(example, tuple) else (example, None))
        case: dict[str, Any] = {"kind": kind, "text": text, **({"text_pair": pair} if pair is not None else {}),
                                "tokens": len(ids), "input_ids": row[0].tolist(), "attention_mask": mask[0].tolist()}
        if sep is not None:  # a BERT-type ONNX file takes them as an input: segment 1 after the first [SEP]
            case["token_type_ids"] = segment_ids(row, sep)[0].tolist()
        case[task.output_names()[0]] = _rounded(output)
        # an output per token describes the real tokens, not the bucket's padding rows
        case.update(task.describe_output(output[: len(ids)] if output.ndim > 1 else output, label_names))
        cases.append(case)
    return {"schema": SCHEMA, "backend": backend, "precision": precision,
            "runtime": getattr(runner, "runtime", backend), "input_dtype": INPUT_DTYPE.get(backend, "int64"),
            "max_length": longest, "tolerance": {"max_abs": TOLERANCE.get(precision, REDUCED_TOLERANCE)},
            "labels": label_names, "cases": cases}


def write_golden(folder: Path, golden: dict[str, Any]) -> Path:
    path = Path(folder) / GOLDEN_FILE
    path.write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_golden(folder: Path) -> dict[str, Any] | None:
    path = Path(folder) / GOLDEN_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise EdgeDistillError(f"{path} is not valid JSON: {exc}") from None


def check_golden(golden: dict[str, Any], runner: Any, tokenizer: Any, task: Task) -> list[str]:
    """Every case whose recorded ids the tokenizer no longer produces, or whose logits the runner no longer
    returns within the recorded tolerance, named by its text; empty when all reproduce."""
    tolerance = float(golden["tolerance"]["max_abs"])
    problems = []
    for number, case in enumerate(golden["cases"]):
        example: Example = (case["text"], case["text_pair"]) if "text_pair" in case else case["text"]
        where = f"golden case {number} ({case['kind']}) {_quote(case['text'])}"
        ids = token_ids(tokenizer, example, golden["max_length"])
        if ids != case["input_ids"][: case["tokens"]]:
            problems.append(f"{where}: the tokenizer gives {len(ids)} ids that differ from the recorded ones")
            continue
        got = np.asarray(runner.predict(np.asarray([case["input_ids"]], dtype=np.int64),
                                        np.asarray([case["attention_mask"]], dtype=np.int64)), dtype=np.float32)[0]
        name = task.output_names()[0]
        want = np.asarray(case[name], dtype=np.float32)
        diff = golden_difference(case, got, task)
        if not diff <= tolerance:
            problems.append(f"{where}: {name} {np.round(got, 4).tolist()} differ from the recorded "
                            f"{np.round(want, 4).tolist()} by {diff:.3g} > {tolerance:g}")
    return problems


def golden_difference(case: dict[str, Any], output: np.ndarray, task: Task) -> float:
    """Max |difference| of one run's output for a golden case from the recorded one (infinite for another shape)."""
    want = np.asarray(case[task.output_names()[0]], dtype=np.float32)
    output = np.asarray(output, dtype=np.float32)
    return float(np.max(np.abs(output - want))) if output.shape == want.shape else float("inf")


def _rounded(output: np.ndarray) -> list[Any]:
    """An output as nested lists of floats rounded to 6 decimals (Python's rounding, as JSON keeps them)."""
    return [round(float(v), 6) for v in output] if output.ndim == 1 else [_rounded(row) for row in output]


def _quote(text: str, limit: int = 60) -> str:
    return json.dumps(text if len(text) <= limit else text[:limit] + "…", ensure_ascii=False)
