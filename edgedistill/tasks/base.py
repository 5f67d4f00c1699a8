"""The contract every task meets, and the record the gate keeps of one artifact.

A task is what a model computes and how its answers are judged. One module per task (registered in
:mod:`edgedistill.tasks`) owns every task-specific fact, so the stages around it never branch on a task:

* the data: how its splits are read (:meth:`Task.load_data`), the gold its metrics read beside the outputs
  (:meth:`Task.gold`: a tagger's labels on each word's first sub-token), the Trainer's collator
  (:meth:`Task.collator`);
* the models: which ``AutoModelFor...`` class a teacher and a checkpoint load as (:meth:`Task.load_model`),
  the head a teacher is fine-tuned with (:meth:`Task.head_settings`), the student's class and head
  (:meth:`Task.student_model`), the names of its outputs (:meth:`Task.output_names`);
* training: the metrics the Trainer reports (:meth:`Task.metrics`), the distillation's prediction terms
  (:meth:`Task.prediction_loss`), when a trained model learnt nothing (:meth:`Task.learnt_nothing`);
* export: the module a converter traces (:meth:`Task.export_module`), the name optimum's exporter knows the
  task by (``optimum_task``);
* the gate: what it compares between an artifact and its checkpoint and how it judges that
  (:meth:`Task.judge`), with each precision's default tolerance (:meth:`Task.tolerance`);
* the outputs people read: golden vectors (:meth:`Task.describe_output`), ``predict``
  (:meth:`Task.predictions`, :meth:`Task.render_predictions`), and the model card's wording
  (:meth:`Task.card`).

Outputs cross every boundary as numpy arrays: a runner's ``predict(input_ids, attention_mask)`` returns the
task's output for each row (classification: logits ``[batch, labels]``; token classification: ``[batch, tokens,
tags]``, one row per token fed, stacked across batches by :func:`edgedistill.data.encoding.stack_rows`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class GateReport:
    """The gate's verdict on one artifact: the numbers it compared, the bounds, and every bound it broke."""

    samples: int
    max_abs: float
    mean_abs: float
    measures: dict[str, float]  # the task's comparisons (classification: agreement, accuracies, drop)
    gate: dict[str, Any]
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {"samples": self.samples, "max_abs": self.max_abs, "mean_abs": self.mean_abs, **self.measures,
                "gate": self.gate, "passed": self.passed, "failures": list(self.failures)}


def output_difference(reference: np.ndarray, output: np.ndarray) -> tuple[float, float, list[str]]:
    """Max and mean |difference| of two output arrays, and the failures every task shares: a shape that is
    not the reference's, and NaN or infinite values (either makes the differences infinite)."""
    if reference.shape != output.shape:
        return float("inf"), float("inf"), [f"the artifact's output has shape {output.shape}, the checkpoint's "
                                            f"{reference.shape}"]
    if not np.isfinite(output).all():
        bad = int(np.sum(~np.isfinite(output)))
        return float("inf"), float("inf"), [f"the artifact produced {bad} NaN or infinite output value(s)"]
    diff = np.abs(reference - output)
    return float(diff.max()) if diff.size else 0.0, float(diff.mean()) if diff.size else 0.0, []


def load_pretrained(auto_class: str, location: Any, what: str, **kwargs: Any) -> Any:
    """``transformers.<auto_class>.from_pretrained(location, **kwargs)``; a ``ModelError`` naming the folder and
    what it was to be loaded as when it cannot be."""
    import transformers

    from edgedistill.core.errors import ModelError

    try:
        return getattr(transformers, auto_class).from_pretrained(location, **kwargs)
    except Exception as exc:  # safetensors, torch and transformers each raise their own types
        raise ModelError(f"cannot load {location} as {what}: {type(exc).__name__}: {exc}") from None


def head_settings_for(label_names: list[str]) -> dict[str, Any]:
    """The ``from_pretrained`` / config kwargs of a new head with one output per label, named."""
    return {"num_labels": len(label_names), "id2label": dict(enumerate(label_names)),
            "label2id": {name: i for i, name in enumerate(label_names)}}


def id2label_names(model_config: dict[str, Any]) -> list[str]:
    """The output names a ``config.json`` (as a dict) records in ``id2label``, in output order."""
    id2label = model_config.get("id2label") or {}
    return [str(id2label.get(str(i), id2label.get(i, i))) for i in range(len(id2label) or 2)]


def soft_target_loss(student: Any, teacher: Any, temperature: float) -> Any:
    """T² · KL(p_teacher ‖ p_student) at temperature T over the last axis, averaged over the rows (Hinton et al.,
    2015: T² keeps the soft-target gradients on the hard-label scale): the distillation term of any task whose
    outputs are logits. Torch tensors in and out."""
    import torch.nn.functional as F

    log_p_s = F.log_softmax(student / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * temperature**2


class Task(ABC):
    """One task: the facts and judgements every stage asks of it (see the module docstring)."""

    name: str
    # optimum's exporter and ``optimum-cli --task``; None where optimum exports something else than the task's
    # output (its feature extraction returns token states): the ONNX file is traced from :meth:`export_module`
    optimum_task: str | None
    pipeline_tag: str  # the Hugging Face model card's
    title: str  # what the model is, in a card's or a Core ML package's description ("text classifier")
    headline: str  # the metric reported first and logged (``eval_<headline>`` in metrics.json)
    metric_names: tuple[str, ...]  # every metric :meth:`metrics` returns
    agreement_label: str  # what :meth:`agreement` measures, for a report's columns
    architecture_suffix: str  # how transformers names this task's model classes (``BertFor...``)
    reads_first_row_only: bool  # the output reads the [CLS] row alone (the last-layer [CLS]-only rewrite applies)
    outputs_per_token: bool = False  # one output row per token ([batch, tokens, ...]) rather than per text
    head_linear_layers: int  # linear layers after the encoder (a ``float_head`` export keeps them float)
    # How its teacher and students are trained (edgedistill.training.common.RECIPES): "logits" (a fine-tuned
    # teacher's soft targets with the Trainer) or "embedding" (a teacher's vectors, learnt on unlabelled text).
    recipe: str = "logits"
    default_tolerances: dict[str, Any] = {}  # the gate's bounds by precision (``Tolerance`` objects)
    reduced_tolerance: Any = None  # the bounds of any reduced precision without its own

    # -- data ---------------------------------------------------------------------------------------

    @abstractmethod
    def load_data(self, data_config: Any, seed: int) -> Any:
        """The task's train and eval splits (a :class:`edgedistill.data.task_data.TaskData`) from ``data``."""

    def gold(self, split: Any, tokenizer: Any, max_length: int) -> np.ndarray:
        """A split's labels as :meth:`metrics` and :meth:`judge` read them beside the outputs of its rows
        (tokenized by ``tokenizer``): the labels as they are, unless the task's outputs are per token."""
        return np.asarray(split.labels)

    def collator(self, tokenizer: Any) -> Any:
        """The Trainer's batch collator for this task's features (padding the labels where they are per token)."""
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    # -- models -------------------------------------------------------------------------------------

    @abstractmethod
    def load_model(self, location: Any, **kwargs: Any) -> Any:
        """A checkpoint as this task's model (``from_pretrained`` kwargs pass through); a ``ModelError``
        naming the folder when it cannot be loaded."""

    @abstractmethod
    def head_settings(self, label_names: list[str]) -> dict[str, Any]:
        """The ``from_pretrained`` / config kwargs that size and name a new head."""

    @abstractmethod
    def label_names(self, model_config: dict[str, Any]) -> list[str]:
        """The output names a saved model's ``config.json`` (as a dict) records, in output order."""

    @abstractmethod
    def student_model(self, student_config: Any, teacher_config: Any) -> Any:
        """A new, untrained student of this task with ``student_config``'s body and the teacher's head size."""

    @abstractmethod
    def copy_head(self, student: Any, teacher: Any) -> None:
        """Initialise a new student's head from the teacher's, where the two heads correspond."""

    @abstractmethod
    def output_names(self) -> tuple[str, ...]:
        """The exported graph's outputs, by name."""

    @abstractmethod
    def output_descriptions(self, label_names: list[str]) -> dict[str, str]:
        """One line per output, for a file's own metadata (a Core ML package's output descriptions)."""

    # -- training -----------------------------------------------------------------------------------

    @abstractmethod
    def training_output(self, model_outputs: Any) -> Any:
        """The tensor the losses and metrics read from a model's forward output (a classifier's logits)."""

    @abstractmethod
    def metrics(self, outputs: np.ndarray, labels: np.ndarray, label_names: list[str] | None = None
                ) -> dict[str, float]:
        """The eval metrics of ``outputs`` against the gold ``labels`` (:meth:`gold`; the first is the headline);
        ``label_names`` name the outputs where a metric needs them (entities from tags)."""

    @abstractmethod
    def agreement(self, outputs: np.ndarray, other: np.ndarray, labels: np.ndarray | None = None) -> float:
        """How often two models give the same answer on the same rows (0..1); ``labels`` (:meth:`gold`) say
        which positions count where the outputs are per token."""

    def differing_rows(self, outputs: np.ndarray, other: np.ndarray, labels: np.ndarray | None = None) -> list[int]:
        """The rows two models answer differently (a label, a tag on a word): what a difference between two
        runtimes names. Rows whose :meth:`agreement` is below 1."""
        return [row for row in range(len(outputs))
                if self.agreement(outputs[row:row + 1], other[row:row + 1],
                                  None if labels is None else labels[row:row + 1]) < 1.0]

    @abstractmethod
    def prediction_loss(self, student: Any, teacher: Any | None, labels: Any, alpha_soft: float, alpha_hard: float,
                        temperature: float) -> tuple[Any, dict[str, float]]:
        """The distillation's prediction terms on the outputs (soft targets, hard labels), and their values."""

    @abstractmethod
    def learnt_nothing(self, metrics: dict[str, float], labels: np.ndarray) -> str | None:
        """Why a trained model is no better than a trivial answer on the eval split, or None when it is."""

    # -- export and the gate ------------------------------------------------------------------------

    @abstractmethod
    def export_module(self, model: Any, output_name: str | None, sep_token_id: int | None) -> Any:
        """``(input_ids, attention_mask) -> output`` around a loaded model, for tracing and conversion."""

    def tolerance(self, precision: str, override: Any) -> Any:
        """The precision's default gate (``default_tolerances``, else ``reduced_tolerance``: ``Tolerance``
        objects), with the values the target sets in their place."""
        base = self.default_tolerances.get(precision, self.reduced_tolerance)
        return base.model_copy(update=override.model_dump(exclude_none=True))

    @abstractmethod
    def judge(self, reference: np.ndarray, output: np.ndarray, labels: np.ndarray, tolerance: Any,
              label_names: list[str] | None = None) -> GateReport:
        """The artifact's ``output`` against its checkpoint's ``reference`` on the same eval rows."""

    @abstractmethod
    def describe_gate(self, report: GateReport) -> str:
        """A short line of the gate's numbers, for the log and for a failure's message."""

    @abstractmethod
    def summarize(self, outputs: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        """What a set of outputs looks like, for a stage's metrics (classification: rows per predicted label)."""

    # -- what people read ---------------------------------------------------------------------------

    @abstractmethod
    def describe_output(self, output: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        """What a golden case records beside one row's raw output (classification: its label)."""

    @abstractmethod
    def predictions(self, texts: list[Any], outputs: np.ndarray, label_names: list[str],
                    tokenizer: Any = None) -> list[dict[str, Any]]:
        """``predict``'s records, one per text (``tokenizer``: what encoded them, for character offsets)."""

    @abstractmethod
    def render_predictions(self, rows: list[dict[str, Any]]) -> str:
        """``predict``'s plain-text output."""

    def rank(self, queries: np.ndarray, corpus: np.ndarray, top: int) -> list[list[tuple[int, float]]]:
        """``predict --corpus``: for each query's output, the ``top`` corpus rows it is closest to, best first, as
        ``(row, score)``. Only tasks whose outputs are comparable vectors rank."""
        from edgedistill.core.errors import ConfigError

        raise ConfigError(f"the {self.name} task does not rank a corpus (--corpus): its outputs are not vectors")

    @abstractmethod
    def card(self, info: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        """The model card's task wording: ``title`` noun, ``outputs`` table rows, ``outputs_text``,
        ``verification`` sentence, ``metrics`` tags and ``snippets`` (templates by backend and language)."""
