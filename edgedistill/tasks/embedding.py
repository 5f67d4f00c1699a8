"""Sentence embeddings: one unit vector per text, compared by cosine (semantic search, deduplication, clustering).

The teacher is a sentence-transformers model used as it is (all-MiniLM-L6-v2 by default): an encoder whose
token states are mean-pooled over the real tokens and L2-normalised. Checkpoints load as ``AutoModel`` (the bare
encoder, ``BertModel`` / ``DistilBertModel``); the pooling and the normalisation are part of what the task
computes (:func:`embedding_module`), so every exported file holds them and returns ``embedding [batch, dim]``.

Data are STS pairs with a gold score (:mod:`edgedistill.data.sts`): the eval rows are the pairs' sentences in
order, the labels the scores. The task metric is Spearman's rank correlation of the pair cosines with the gold
scores, x100 (the STS Benchmark's convention). The gate compares vectors: fp32 by ``max_abs``, reduced
precisions by the per-sentence cosine to the checkpoint's vector (mean and minimum), the overlap of each
sentence's 10 nearest neighbours in the eval pool, and the Spearman drop in points.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from edgedistill.core.config import Tolerance
from edgedistill.core.errors import ModelError
from edgedistill.data.sts import pair_rows
from edgedistill.tasks.base import GateReport, Task, load_pretrained, output_difference

DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs=1e-4),
}
REDUCED_DEFAULT = Tolerance(min_cosine_mean=0.99, min_cosine=0.95, min_neighbour_overlap=0.90,
                            max_accuracy_drop=0.5)
NEIGHBOURS = 10  # the neighbours compared per sentence (top-10 retrieval)
POOLING_MODES = ("mean", "cls")
# Spearman must beat zero by this many standard errors (~1/sqrt(n - 1) on n pairs) for a model to have learnt.
LEARNING_MARGIN_SE = 2.0


class EmbeddingTask(Task):
    name = "embedding"
    optimum_task = None  # optimum's feature-extraction export returns token states: traced with the pooling here
    pipeline_tag = "sentence-similarity"
    title = "sentence encoder"
    headline = "spearman"
    agreement_label = "mean cosine of the two models' vectors per sentence"  # what :meth:`agreement` measures
    metric_names = ("spearman", "pearson")
    architecture_suffix = "Model"
    reads_first_row_only = False  # mean pooling reads every row
    head_linear_layers = 0
    default_tolerances = DEFAULT_TOLERANCES
    reduced_tolerance = REDUCED_DEFAULT
    recipe = "embedding"

    # -- data ---------------------------------------------------------------------------------------

    def load_data(self, data_config: Any, seed: int) -> Any:
        """STS pairs, flattened: pair ``i`` at rows ``2i`` and ``2i + 1``, the scores as labels."""
        from edgedistill.data.sts import load_sts_data

        return load_sts_data(data_config, seed=seed)

    # -- models -------------------------------------------------------------------------------------

    def load_model(self, location: Any, **kwargs: Any) -> Any:
        return load_pretrained("AutoModel", location, "a sentence encoder", **kwargs)

    def head_settings(self, label_names: list[str]) -> dict[str, Any]:
        return {}

    def label_names(self, model_config: dict[str, Any]) -> list[str]:
        return []

    def student_model(self, student_config: Any, teacher_config: Any) -> Any:
        from transformers import DistilBertModel

        return DistilBertModel(student_config)

    def copy_head(self, student: Any, teacher: Any) -> None:
        """An encoder has no head: the pooling and the normalisation have no weights."""

    def output_names(self) -> tuple[str, ...]:
        return ("embedding",)

    def output_descriptions(self, label_names: list[str]) -> dict[str, str]:
        return {"embedding": "Sentence embedding: mean of the real tokens' states, L2-normalised (compare by dot "
                             "product = cosine)"}

    # -- training -----------------------------------------------------------------------------------

    def training_output(self, model_outputs: Any) -> Any:
        """The token states; the embedding recipe pools them with the mask (:func:`pool`)."""
        return model_outputs.last_hidden_state

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, label_names: list[str] | None = None
                ) -> dict[str, float]:
        """Spearman and Pearson (x100) of the pair cosines against the gold scores."""
        cosines = pair_cosines(outputs)
        gold = np.asarray(labels, dtype=np.float64)[: len(cosines)]
        return {"spearman": 100 * spearman(cosines, gold), "pearson": 100 * pearson(cosines, gold)}

    def agreement(self, outputs: np.ndarray, other: np.ndarray, labels: np.ndarray | None = None) -> float:
        """The mean cosine of the two models' vectors for the same sentence."""
        return float(np.mean(row_cosines(outputs, other)))

    def differing_rows(self, outputs: np.ndarray, other: np.ndarray, labels: np.ndarray | None = None) -> list[int]:
        """A vector has no label to change: the sentences whose two vectors are further apart than the gate lets
        one sentence be (cosine below the reduced precisions' per-sentence bound)."""
        return [int(row) for row in np.flatnonzero(row_cosines(outputs, other) < REDUCED_DEFAULT.min_cosine)]

    def prediction_loss(self, student: Any, teacher: Any | None, labels: Any, alpha_soft: float, alpha_hard: float,
                        temperature: float) -> tuple[Any, dict[str, float]]:
        """alpha_soft · ‖student - teacher‖² per sentence on the normalised embeddings (= 2 - 2 cos), the
        sentence-transformers distillation recipe's MSE summed over the dimensions; there are no hard labels."""
        loss = ((student - teacher) ** 2).sum(-1).mean()
        return alpha_soft * loss, {"loss_mse": loss.item()}

    def learnt_nothing(self, metrics: dict[str, float], labels: np.ndarray) -> str | None:
        pairs = len(labels)
        if pairs < 3:
            return None
        bound = 100 * LEARNING_MARGIN_SE / math.sqrt(pairs - 1)
        if metrics["spearman"] > bound:
            return None
        return (f"eval Spearman {metrics['spearman']:.2f} is not clearly above 0 (needs > {bound:.2f}: "
                f"{LEARNING_MARGIN_SE:g} standard errors on {pairs} pairs)")

    # -- export and the gate ------------------------------------------------------------------------

    def export_module(self, model: Any, output_name: str | None, sep_token_id: int | None) -> Any:
        return embedding_module(model, output_name)

    def judge(self, reference: np.ndarray, output: np.ndarray, labels: np.ndarray, tolerance: Tolerance,
              label_names: list[str] | None = None) -> GateReport:
        n = len(reference)
        max_abs, mean_abs, failures = output_difference(reference, output)
        gate = tolerance.model_dump(exclude_none=True)
        if failures:
            return GateReport(n, max_abs, mean_abs, {}, gate, failures)
        cosines = row_cosines(reference, output)
        source, artifact = self.metrics(reference, labels)["spearman"], self.metrics(output, labels)["spearman"]
        measures = {"cosine_mean": float(cosines.mean()), "cosine_min": float(cosines.min()),
                    "top10_overlap": neighbour_overlap(reference, output, NEIGHBOURS),
                    "source_spearman": source, "artifact_spearman": artifact,
                    "spearman_drop_points": round(source - artifact, 4), "pairs": n // 2}
        if tolerance.max_abs is not None and max_abs > tolerance.max_abs:
            failures.append(f"max |embedding difference| {max_abs:.3g} > {tolerance.max_abs:g}")
        if tolerance.min_cosine_mean is not None and measures["cosine_mean"] < tolerance.min_cosine_mean:
            failures.append(f"mean cosine to the checkpoint's vectors {measures['cosine_mean']:.4f} < "
                            f"{tolerance.min_cosine_mean:g}")
        if tolerance.min_cosine is not None and measures["cosine_min"] < tolerance.min_cosine:
            worst = int(np.argmin(cosines))
            failures.append(f"cosine to the checkpoint's vector {measures['cosine_min']:.4f} < {tolerance.min_cosine:g}"
                            f" (eval row {worst})")
        if tolerance.min_neighbour_overlap is not None and measures["top10_overlap"] < tolerance.min_neighbour_overlap:
            failures.append(f"top-{NEIGHBOURS} neighbour overlap {measures['top10_overlap']:.2%} < "
                            f"{tolerance.min_neighbour_overlap:.0%}")
        if tolerance.max_accuracy_drop is not None and measures["spearman_drop_points"] > tolerance.max_accuracy_drop:
            failures.append(f"Spearman drop {measures['spearman_drop_points']:.2f} points ({source:.2f} -> "
                            f"{artifact:.2f}) > {tolerance.max_accuracy_drop:g}")
        return GateReport(n, max_abs, mean_abs, measures, gate, failures)

    def describe_gate(self, report: GateReport) -> str:
        m = report.measures
        if not m:
            return f"max |diff| {report.max_abs:.2g}"
        return (f"max |diff| {report.max_abs:.2g}, cosine mean {m['cosine_mean']:.4f} / min {m['cosine_min']:.4f}, "
                f"top-10 overlap {m['top10_overlap']:.2%}, Spearman {m['source_spearman']:.2f} -> "
                f"{m['artifact_spearman']:.2f}")

    def summarize(self, outputs: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        outputs = np.asarray(outputs)
        return {"dimension": int(outputs.shape[-1]) if outputs.ndim == 2 else None,
                "mean_norm": float(np.linalg.norm(outputs, axis=-1).mean()) if len(outputs) else None}

    # -- what people read ---------------------------------------------------------------------------

    def describe_output(self, output: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        return {"dimension": int(output.shape[-1]), "norm": round(float(np.linalg.norm(output)), 6)}

    def predictions(self, texts: list[Any], outputs: np.ndarray, label_names: list[str],
                    tokenizer: Any = None) -> list[dict[str, Any]]:
        """One record per text: its vector, and its cosine to every text given (in order)."""
        outputs = np.asarray(outputs, dtype=np.float64)
        similarity = row_normalised(outputs) @ row_normalised(outputs).T
        return [{"text": _as_text(text), "dimension": int(outputs.shape[1]),
                 "cosines": [round(float(c), 6) for c in similarity[i]],
                 "embedding": [round(float(v), 6) for v in outputs[i]]} for i, text in enumerate(texts)]

    def render_predictions(self, rows: list[dict[str, Any]]) -> str:
        """The dimension, then the cosine matrix of the texts (each row labelled by its number and text)."""
        header = "      " + " ".join(f"{j + 1:>7d}" for j in range(len(rows)))
        lines = [f"{len(rows)} text(s), embedding dimension {rows[0]['dimension']}; cosine similarity:", header]
        for i, row in enumerate(rows):
            lines.append(f"{i + 1:>5d} " + " ".join(f"{c:7.4f}" for c in row["cosines"]) + f"  {row['text']}")
        return "\n".join(lines)

    def rank(self, queries: np.ndarray, corpus: np.ndarray, top: int) -> list[list[tuple[int, float]]]:
        """For each query, the ``top`` corpus rows by cosine, best first: ``(row, cosine)``."""
        similarity = row_normalised(np.asarray(queries, np.float64)) @ row_normalised(np.asarray(corpus, np.float64)).T
        order = np.argsort(-similarity, axis=1, kind="stable")[:, :top]
        return [[(int(j), float(similarity[i, j])) for j in order[i]] for i in range(len(similarity))]

    def card(self, info: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        from edgedistill.tasks.embedding_snippets import SNIPPETS, TEXT_SNIPPET

        parity = info.get("parity") or {}
        verification = ""
        if parity and "cosine_mean" in parity:
            verification = (f"Parity gate on {parity.get('samples')} eval sentences ({parity.get('pairs')} STS pairs) "
                            f"against the source model ({parity.get('runtime', values['backend'])}): cosine to the "
                            f"checkpoint's vectors mean {parity['cosine_mean']:.4f}, min {parity['cosine_min']:.4f}; "
                            f"top-10 neighbour overlap {parity['top10_overlap']:.2%}; STS Spearman "
                            f"{parity['source_spearman']:.2f} → {parity['artifact_spearman']:.2f}; max |difference| "
                            f"{parity['max_abs']:.3g}; gate {json.dumps(parity.get('gate', {}))}.")
        return {"title": self.title, "metrics": ["spearmanr", "cosine"],
                "outputs": [f"| `embedding` (output) | float32 | ({values['batch']}, dimension) |"],
                "outputs_text": ("One vector per text: the mean of its real tokens' states, L2-normalised inside the "
                                 "graph; the dot product of two vectors is their cosine similarity."),
                "verification": verification, "snippets": SNIPPETS, "text_snippet": TEXT_SNIPPET,
                "optimum_note": ("optimum's `ORTModelForFeatureExtraction` returns token states, not this file's "
                                 "pooled vector; `model.onnx` takes token ids, this file text.")}


def _as_text(text: Any) -> str:
    return " ||| ".join(text) if isinstance(text, tuple) else str(text)


def row_normalised(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The cosine of each row of ``a`` with the same row of ``b``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(row_normalised(a) * row_normalised(b), axis=-1)


def pair_cosines(outputs: np.ndarray) -> np.ndarray:
    """The cosine within each pair of a flattened STS split's outputs (:func:`edgedistill.data.sts.pair_rows`)."""
    first, second = pair_rows(np.asarray(outputs, np.float64))
    return row_cosines(first, second)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank (as Spearman's coefficient needs)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse = np.unique(x, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / np.bincount(inverse))[inverse]


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, np.float64) - np.mean(x), np.asarray(y, np.float64) - np.mean(y)
    denominator = math.sqrt(float(np.sum(x * x) * np.sum(y * y)))
    return float(np.sum(x * y) / denominator) if denominator else 0.0


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (Pearson's on average ranks, as ``scipy.stats.spearmanr``)."""
    return pearson(_ranks(np.asarray(x)), _ranks(np.asarray(y))) if len(x) > 1 else 0.0


def _distinct_rows(vectors: np.ndarray) -> np.ndarray:
    """The indices of each distinct row's first occurrence, in order (a repeated sentence would be its own
    nearest neighbour)."""
    _, first = np.unique(np.round(np.asarray(vectors, np.float64), 6), axis=0, return_index=True)
    return np.sort(first)


def _nearest(queries: np.ndarray, pool: np.ndarray, k: int) -> np.ndarray:
    """Each query row's ``k`` nearest pool rows by dot product (unit vectors: cosine), row ``i`` of the pool
    excluded for query ``i`` (the same sentence)."""
    similarity = queries @ pool.T
    np.fill_diagonal(similarity, -np.inf)
    return np.argpartition(-similarity, k, axis=1)[:, :k]


def _shared(first: np.ndarray, second: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(r) & set(s)) / k for r, s in zip(first, second, strict=True)]))


def neighbour_overlap(reference: np.ndarray, output: np.ndarray, k: int = NEIGHBOURS) -> float:
    """Mean share of each sentence's ``k`` nearest neighbours (by cosine, itself excluded) that the two sets of
    vectors agree on, over the distinct sentences of the pool."""
    keep = _distinct_rows(reference)
    if len(keep) <= k:
        return 1.0
    a, b = row_normalised(np.asarray(reference, np.float64)[keep]), row_normalised(np.asarray(output, np.float64)[keep])
    return _shared(_nearest(a, a, k), _nearest(b, b, k), k)


def cross_retrieval_overlap(student: np.ndarray, teacher: np.ndarray, k: int = NEIGHBOURS) -> float:
    """Queries embedded by the student against a pool embedded by the teacher: the mean share of each distinct
    sentence's ``k`` nearest pool neighbours (itself excluded) that teacher-only retrieval also returns. 1.0:
    an index the teacher built answers the student's queries as it answers the teacher's."""
    keep = _distinct_rows(teacher)
    if len(keep) <= k:
        return 1.0
    pool_vectors = row_normalised(np.asarray(teacher, np.float64)[keep])
    queries = row_normalised(np.asarray(student, np.float64)[keep])
    return _shared(_nearest(queries, pool_vectors, k), _nearest(pool_vectors, pool_vectors, k), k)


def pooling_of(model: Any) -> str:
    """The pooling a checkpoint records (``config.json``'s ``edgedistill.pooling``; mean when it says none)."""
    mode = (getattr(model.config, "edgedistill", None) or {}).get("pooling", "mean")
    if mode not in POOLING_MODES:
        raise ModelError(f"pooling {mode!r} is not supported (supported: {', '.join(POOLING_MODES)})")
    return mode


def pool(hidden: Any, attention_mask: Any, mode: str = "mean") -> Any:
    """The normalised sentence vector from token states: the mean over the real tokens (the mask's 1s), or the
    first ([CLS]) row; then L2 normalisation. Torch tensors; what sentence-transformers' Pooling and Normalize
    modules compute, with their clamps (x / max(‖x‖, 1e-12) written as x · rsqrt(max(‖x‖², 1e-24)): elementary
    ops every converter and the Core ML emulation know)."""
    import torch

    if mode == "cls":
        vector = hidden[:, 0]
    else:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        vector = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return vector * torch.rsqrt((vector * vector).sum(1, keepdim=True).clamp(min=1e-24))


def embedding_module(model: Any, output_name: str | None) -> Any:
    """``(input_ids, attention_mask) -> embedding`` around an encoder, in eval mode, for tracing and conversion:
    the encoder's token states pooled and normalised (:func:`pool`) inside the graph, so an app gets the vector
    without re-implementing either. ``output_name`` as in :func:`edgedistill.tasks.classification.logits_only`."""
    import torch

    mode = pooling_of(model)

    class Embedding(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            vector = pool(hidden, attention_mask, mode)
            return vector if output_name is None else {output_name: vector}

    return Embedding(model).eval()


TASK = EmbeddingTask()
