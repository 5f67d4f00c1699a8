"""Where quantization hurts: per-tensor error tables and integer coverage, shared by the ONNX and TFLite backends.

Two questions an int8 user asks, answered the same way for every backend:

* **Which tensors lose the signal?** For each quantized tensor, the signal-to-quantization-noise ratio
  (SQNR, dB) of its integer version against the float value it replaces *in the same run* (the noise this
  one quantization step adds, whatever happened upstream), the SQNR against the float model's tensor of
  the same name (the error accumulated up to here), and the share of values clipped by its range. The
  table is sorted worst first: a badly calibrated or damaged tensor heads it, not the tensors downstream
  of it. The backends collect the numbers (``backends/onnx_quant.py``, ``backends/tflite_quant.py``).
* **How much of the model is integer?** The share of matrix-multiply MACs (at batch 1 x 128 tokens)
  with int8 weights *and* int8 activations whose scales are fixed in the file — what an NPU can run —
  and the op types left in float.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

COVERAGE_SEQ = 128  # integer coverage is counted at batch 1 x this many tokens


@dataclass
class SqnrAccumulator:
    """Signal and noise energy summed over batches: SQNR over the whole eval text, not a mean of ratios."""

    signal: float = 0.0
    noise: float = 0.0

    def add(self, reference: np.ndarray, test: np.ndarray) -> None:
        reference = np.asarray(reference, dtype=np.float64)
        self.signal += float(np.square(reference).sum())
        self.noise += float(np.square(np.asarray(test, dtype=np.float64) - reference).sum())

    @property
    def db(self) -> float:
        if self.noise == 0.0:
            return math.inf
        ratio = self.signal / self.noise  # 0 for a zero signal, or against an overflowing (inf) noise
        return 10.0 * math.log10(ratio) if ratio > 0 else -math.inf


@dataclass
class ClipCounter:
    clipped: int = 0
    total: int = 0

    def add(self, values: np.ndarray, low: float, high: float) -> None:
        values = np.asarray(values)
        self.clipped += int(np.count_nonzero((values < low) | (values > high)))
        self.total += values.size

    @property
    def fraction(self) -> float | None:
        return self.clipped / self.total if self.total else None


@dataclass
class TensorError:
    """One quantized tensor's error (see the module docstring for what each number means)."""

    tensor: str
    kind: str  # "activation" | "weight" | "output" (an integer op's requantized result)
    ops: str  # the op types that read it (or, for an output, the op that wrote it)
    bits: int
    sqnr_db: float | None
    sqnr_vs_float_db: float | None = None
    clipped: float | None = None
    layers: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        record = asdict(self)
        for key in ("sqnr_db", "sqnr_vs_float_db"):
            if record[key] is not None and math.isinf(record[key]):
                record[key] = "inf" if record[key] > 0 else "-inf"
        return record

    @property
    def rank_key(self) -> float:
        """Worst first: the local SQNR where it was measured, else the accumulated one."""
        value = self.sqnr_db if self.sqnr_db is not None else self.sqnr_vs_float_db
        return math.inf if value is None else value


def rank(rows: list[TensorError]) -> list[TensorError]:
    return sorted(rows, key=lambda row: row.rank_key)


def short_name(name: str) -> str:
    """Readable tensor names: litert-torch's ``pkg.mod.Class_attr/...`` module paths become ``attr/...``."""
    name = name.split(";;")[0]  # a fused op lists every source location; the first names it
    parts = [re.sub(r"^(?:[\w<>]+\.)+_?[A-Za-z0-9]+_", "", part) for part in name.split("/")]
    parts = [p for p in parts if p and not re.fullmatch(r"(?:[\w<>]+\.){2,}[A-Z]\w*", p)]  # wrapper classes
    return "/".join(parts) or name


def _db(value: float | None) -> str:
    if value is None:
        return "–"
    return "inf" if math.isinf(value) and value > 0 else f"{value:.1f}"


def render_table(rows: list[TensorError], limit: int | None = None) -> str:
    """The ranked table as Markdown (what ``edgedistill verify --layers`` prints)."""
    ranked = rank(rows)
    shown = ranked[:limit] if limit else ranked
    lines = ["| # | tensor | kind | read by | bits | SQNR dB (this step) | SQNR dB (vs float model) | clipped |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for i, row in enumerate(shown, 1):
        clipped = "–" if row.clipped is None else f"{100 * row.clipped:.3f}%"
        lines.append(f"| {i} | {short_name(row.tensor)} | {row.kind} | {row.ops} | {row.bits} | {_db(row.sqnr_db)} "
                     f"| {_db(row.sqnr_vs_float_db)} | {clipped} |")
    if limit and len(ranked) > limit:
        lines.append(f"\n({len(ranked) - limit} more tensors; `--layers 0` lists them all)")
    return "\n".join(lines)


def worst_summary(rows: list[TensorError], count: int = 3) -> str:
    """One line for an error message: the worst tensors and their SQNR."""
    return "; ".join(f"{short_name(r.tensor)} ({r.kind} of {r.ops}, {_db(r.rank_key)} dB)"
                     for r in rank(rows)[:count])


@dataclass
class MatmulWork:
    """One matrix multiply of the graph at batch 1 x COVERAGE_SEQ, and the arithmetic it runs in."""

    macs: int
    arithmetic: str  # "int8" (weights and activations, fixed scales) | "dynamic-int8" | "int16" | "float"


def coverage(work: list[MatmulWork], float_op_types: set[str], extra: dict[str, Any] | None = None,
             seq: int = COVERAGE_SEQ) -> dict[str, Any]:
    """The record stored in ``artifact.json`` (``structure.integer``) and shown in reports; ``seq``: the tokens the
    shapes were taken at (fewer than COVERAGE_SEQ for a model whose positions stop earlier)."""
    total = sum(w.macs for w in work)
    by_kind: dict[str, int] = {}
    for item in work:
        by_kind[item.arithmetic] = by_kind.get(item.arithmetic, 0) + item.macs
    return {
        "shape": [1, seq],
        "matmul_macs": total,
        "int8_mac_fraction": round(by_kind.get("int8", 0) / total, 4) if total else 0.0,
        "mac_fraction_by_arithmetic": {k: round(v / total, 4) for k, v in sorted(by_kind.items())} if total else {},
        "float_op_types": sorted(float_op_types),
        **(extra or {}),
    }
