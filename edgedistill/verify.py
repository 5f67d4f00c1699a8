"""The verification gate: an artifact against the PyTorch model it came from, on real task text.

fp32 artifacts must match logits within ``max_abs``; reduced precisions must keep the labels
(``min_agreement``) and the accuracy (``max_accuracy_drop`` points). The text is the eval split in
its natural order, in padded batches, so lengths vary inside and across batches as in real use.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgedistill.backends.base import ParityError, Runner
from edgedistill.config import TargetConfig, Tolerance
from edgedistill.data import Example

DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs=1e-4),
    "fp16": Tolerance(min_agreement=0.99, max_accuracy_drop=1.0),
    # Full-integer int8 is what an accelerator runs: held to its checkpoint's answers, not just near them.
    "int8-static": Tolerance(min_agreement=0.99, max_accuracy_drop=0.5),
}
REDUCED_DEFAULT = Tolerance(min_agreement=0.98, max_accuracy_drop=1.0)


def tolerance_for(precision: str, override: Tolerance) -> Tolerance:
    """The precision's default gate, with any values the target sets in their place."""
    base = DEFAULT_TOLERANCES.get(precision, REDUCED_DEFAULT)
    return base.model_copy(update=override.model_dump(exclude_none=True))


@dataclass
class ParityReport:
    samples: int
    max_abs: float
    mean_abs: float
    agreement: float
    source_accuracy: float
    artifact_accuracy: float
    accuracy_drop_points: float
    gate: dict[str, float]
    passed: bool
    failures: list[str]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def padded_batches(inputs: list[Example], tokenizer: Any, max_length: int, batch_size: int = 16,
                   padding: bool | str = True) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(input_ids, attention_mask) int64 batches of sentences or sentence pairs, each padded to its own
    longest row (``padding="max_length"``: every batch to ``max_length``)."""
    for start in range(0, len(inputs), batch_size):
        encoded = tokenizer(inputs[start:start + batch_size], padding=padding, truncation=True,
                            max_length=max_length, return_tensors="np", return_token_type_ids=False)
        yield encoded["input_ids"].astype(np.int64), encoded["attention_mask"].astype(np.int64)


def compare(source: Runner, artifact: Runner, batches: list[tuple[np.ndarray, np.ndarray]],
            labels: list[int], tolerance: Tolerance) -> ParityReport:
    """Run both models on the same batches and judge the artifact by the gate."""
    ref, out = [], []
    for ids, mask in batches:
        ref.append(source.predict(ids, mask))
        out.append(artifact.predict(ids, mask))
    ref_logits, out_logits = np.concatenate(ref), np.concatenate(out)
    if ref_logits.shape != out_logits.shape:
        raise ParityError(f"the artifact's logits have shape {out_logits.shape}, the source's {ref_logits.shape}")
    y = np.asarray(labels[: len(ref_logits)])
    diff = np.abs(ref_logits - out_logits)
    finite = bool(np.isfinite(out_logits).all())
    src_acc = float(np.mean(ref_logits.argmax(-1) == y))
    art_acc = float(np.mean(out_logits.argmax(-1) == y))
    report = ParityReport(
        samples=len(ref_logits),
        max_abs=float(diff.max()) if finite else float("inf"),
        mean_abs=float(diff.mean()) if finite else float("inf"),
        agreement=float(np.mean(ref_logits.argmax(-1) == out_logits.argmax(-1))),
        source_accuracy=src_acc,
        artifact_accuracy=art_acc,
        accuracy_drop_points=round(100 * (src_acc - art_acc), 4),
        gate=tolerance.model_dump(exclude_none=True),
        passed=True,
        failures=[],
    )
    if not finite:
        report.failures.append("the artifact produced NaN or infinite logits")
    if tolerance.max_abs is not None and report.max_abs > tolerance.max_abs:
        report.failures.append(f"max |logit difference| {report.max_abs:.3g} > {tolerance.max_abs:g}")
    if tolerance.min_agreement is not None and report.agreement < tolerance.min_agreement:
        report.failures.append(f"label agreement {report.agreement:.2%} < {tolerance.min_agreement:.2%}")
    if tolerance.max_accuracy_drop is not None and report.accuracy_drop_points > tolerance.max_accuracy_drop:
        report.failures.append(f"accuracy drop {report.accuracy_drop_points:.2f} points "
                               f"({src_acc:.4f} -> {art_acc:.4f}) > {tolerance.max_accuracy_drop:g}")
    report.passed = not report.failures
    return report


def check_parity(source_dir: Any, artifact: Runner, target: TargetConfig, data: Any, *, max_length: int,
                 threads: int, verify_samples: int | None = None) -> ParityReport:
    """The gate for one artifact: its runner against the PyTorch model in ``source_dir`` on the eval split."""
    from transformers import AutoTokenizer

    from edgedistill.backends.pytorch import PyTorchRunner

    inputs = data.eval.inputs[:verify_samples] if verify_samples else data.eval.inputs
    batches = list(padded_batches(inputs, AutoTokenizer.from_pretrained(source_dir), max_length))
    return compare(PyTorchRunner(source_dir, threads), artifact, batches, data.eval.labels[: len(inputs)],
                   tolerance_for(target.precision, target.tolerance))
