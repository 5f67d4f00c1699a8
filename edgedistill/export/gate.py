"""The verification gate: an artifact against the PyTorch model it came from, on real task text.

Both run on the same eval rows, in their natural order, in padded batches (lengths vary inside and across
batches as in real use); the model's task judges the two outputs (:meth:`edgedistill.tasks.base.Task.judge`:
for a classifier, max |logit diff| for fp32, label agreement and accuracy drop for reduced precisions).
Every way an artifact can fail (a bound broken, NaN or infinite outputs, a wrong shape) is a one-line reason
in the report, never an exception: the caller decides what a failure means (no artifact is written).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.core.config import TargetConfig
from edgedistill.data.encoding import padded_batches, stack_rows, without_padding
from edgedistill.export.backends.base import Runner
from edgedistill.tasks import task_of_model
from edgedistill.tasks.base import GateReport


def run_both(source: Runner, artifact: Runner, batches: Sequence[tuple[np.ndarray, np.ndarray]],
             width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The two models' outputs on the same batches, row after row (per-token outputs padded to ``width``:
    :func:`~edgedistill.data.encoding.stack_rows`, padding rows zeroed); a shape that differs is the judge's to
    name."""
    reference, output = [], []
    for ids, mask in batches:  # per-token outputs: the padding tokens' rows zeroed (nothing reads them)
        reference.append(without_padding(source.predict(ids, mask), mask))
        output.append(without_padding(np.asarray(artifact.predict(ids, mask), dtype=np.float32), mask))
    return stack_rows(reference, width), stack_rows(output, width)


def check_parity(source_dir: Path, artifact: Runner, target: TargetConfig, data: Any, *, max_length: int,
                 threads: int, verify_samples: int | None = None) -> GateReport:
    """The gate for one artifact: its runner against the PyTorch model in ``source_dir`` on the eval split."""
    from transformers import AutoTokenizer

    from edgedistill.export.backends.pytorch import PyTorchRunner

    task = task_of_model(Path(source_dir))
    inputs = data.eval.inputs[:verify_samples] if verify_samples else data.eval.inputs
    tokenizer = AutoTokenizer.from_pretrained(source_dir)
    batches = list(padded_batches(inputs, tokenizer, max_length))
    reference, output = run_both(PyTorchRunner(source_dir, threads), artifact, batches, max_length)
    return task.judge(reference, output, task.gold(data.eval, tokenizer, max_length)[: len(inputs)],
                      task.tolerance(target.precision, target.tolerance), data.label_names)
