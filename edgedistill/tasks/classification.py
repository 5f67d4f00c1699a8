"""Text classification: one label per text or text pair (SST-2, MRPC, QNLI, a user's own labels).

Models are ``AutoModelForSequenceClassification`` checkpoints; the student is a
``DistilBertForSequenceClassification``. Outputs are logits ``[batch, labels]``. The gate holds fp32 artifacts
to ``max_abs`` on the logits and reduced precisions to label agreement and the accuracy drop, each stated
together with the resolution the eval split allows: one changed label on ``n`` sentences moves agreement and
accuracy by ``1/n``, so a bound finer than a few sentences is read as that many sentences
(:data:`MIN_RESOLVED_SENTENCES`), and the report says so.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from edgedistill.core.config import Tolerance
from edgedistill.tasks.base import (GateReport, Task, head_settings_for, id2label_names, load_pretrained,
                                    output_difference, soft_target_loss)

DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "fp32": Tolerance(max_abs=1e-4),
    "fp16": Tolerance(min_agreement=0.99, max_accuracy_drop=1.0),
    # Full-integer int8 is what an accelerator runs: held to its checkpoint's answers, not just near them.
    "int8-static": Tolerance(min_agreement=0.99, max_accuracy_drop=0.5),
}
REDUCED_DEFAULT = Tolerance(min_agreement=0.98, max_accuracy_drop=1.0)
# The fewest eval sentences a bound on agreement or accuracy drop may come down to: on a small eval split
# (139 sentence pairs: one sentence is 0.72 points) "at most 0.5 points" would otherwise fail on any change.
MIN_RESOLVED_SENTENCES = 2
# A trained model is "clearly better than the majority class" when its accuracy beats the majority class's
# rate by more than this many standard errors of that rate on the eval split.
LEARNING_MARGIN_SE = 2.0


class ClassificationTask(Task):
    name = "classification"
    optimum_task = "text-classification"
    pipeline_tag = "text-classification"
    title = "text classifier"
    headline = "accuracy"
    agreement_label = "label agreement"  # what :meth:`agreement` measures
    metric_names = ("accuracy", "f1_macro")
    architecture_suffix = "ForSequenceClassification"
    # The head reads the [CLS] row alone: an exporter may compute the last layer for that row only.
    reads_first_row_only = True
    head_linear_layers = 2  # DistilBERT's pre-classifier and classifier; BERT's pooler dense and classifier
    default_tolerances = DEFAULT_TOLERANCES
    reduced_tolerance = REDUCED_DEFAULT

    # -- data ---------------------------------------------------------------------------------------

    def load_data(self, data_config: Any, seed: int) -> Any:
        from edgedistill.data.task_data import load_task_data

        return load_task_data(data_config, seed=seed)

    # -- models -------------------------------------------------------------------------------------

    def load_model(self, location: Any, **kwargs: Any) -> Any:
        return load_pretrained("AutoModelForSequenceClassification", location, "a sequence classifier", **kwargs)

    def head_settings(self, label_names: list[str]) -> dict[str, Any]:
        return head_settings_for(label_names)

    def label_names(self, model_config: dict[str, Any]) -> list[str]:
        return id2label_names(model_config)

    def student_model(self, student_config: Any, teacher_config: Any) -> Any:
        from transformers import DistilBertForSequenceClassification

        student_config.id2label = dict(teacher_config.id2label)
        student_config.label2id = dict(teacher_config.label2id)
        return DistilBertForSequenceClassification(student_config)

    def copy_head(self, student: Any, teacher: Any) -> None:
        """Warm start for the student's head: the teacher's dense layer on the first token (BERT's pooler; the
        ``classifier.dense`` of RoBERTa's and ELECTRA's heads) feeds DistilBERT's pre-classifier (ReLU there
        instead of tanh / GELU, so a starting point, not the same function); the output layer is copied."""
        head = teacher.classifier
        if hasattr(head, "out_proj"):  # RoBERTa / XLM-R / CamemBERT / ELECTRA: dense -> out_proj on <s>
            student.pre_classifier.load_state_dict(head.dense.state_dict())
            student.classifier.load_state_dict(head.out_proj.state_dict())
            return
        base = getattr(teacher, teacher.base_model_prefix)
        if getattr(base, "pooler", None) is not None:
            student.pre_classifier.load_state_dict(base.pooler.dense.state_dict())
        student.classifier.load_state_dict(head.state_dict())

    def output_names(self) -> tuple[str, ...]:
        return ("logits",)

    def output_descriptions(self, label_names: list[str]) -> dict[str, str]:
        return {"logits": f"Unnormalized class scores for labels {label_names}"}

    # -- training -----------------------------------------------------------------------------------

    def training_output(self, model_outputs: Any) -> Any:
        return model_outputs.logits

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, label_names: list[str] | None = None
                ) -> dict[str, float]:
        """Accuracy and macro F1 (F1 matters where labels are imbalanced)."""
        predictions = np.asarray(outputs).argmax(-1)
        labels = np.asarray(labels)
        f1s = []
        for label in np.unique(np.concatenate([labels, predictions])):
            tp = np.sum((predictions == label) & (labels == label))
            fp = np.sum((predictions == label) & (labels != label))
            fn = np.sum((predictions != label) & (labels == label))
            f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
        return {"accuracy": float(np.mean(predictions == labels)), "f1_macro": float(np.mean(f1s))}

    def agreement(self, outputs: np.ndarray, other: np.ndarray, labels: np.ndarray | None = None) -> float:
        return float(np.mean(np.asarray(outputs).argmax(-1) == np.asarray(other).argmax(-1)))

    def prediction_loss(self, student: Any, teacher: Any | None, labels: Any, alpha_soft: float, alpha_hard: float,
                        temperature: float) -> tuple[Any, dict[str, float]]:
        """α_kd · T² · KL(teacher ‖ student at T) on the logits + α_ce · CE on the rows with a label (teacher-
        labelled augmentation rows carry -100)."""
        import torch.nn.functional as F

        total = student.new_zeros(())
        parts: dict[str, float] = {}
        if alpha_soft:
            kd = soft_target_loss(student, teacher, temperature)
            total = total + alpha_soft * kd
            parts["loss_kd"] = kd.item()
        labelled = labels != -100
        if alpha_hard and labelled.any():
            ce = F.cross_entropy(student[labelled], labels[labelled])
            total = total + alpha_hard * ce
            parts["loss_ce"] = ce.item()
        return total, parts

    def learnt_nothing(self, metrics: dict[str, float], labels: np.ndarray) -> str | None:
        labels = np.asarray(labels)
        if not labels.size:
            return None
        majority = float(np.bincount(labels).max() / labels.size)
        margin = LEARNING_MARGIN_SE * math.sqrt(majority * (1 - majority) / labels.size)
        if metrics["accuracy"] > majority + margin:
            return None
        return (f"eval accuracy {metrics['accuracy']:.4f} is not clearly above the majority class's "
                f"{majority:.4f} (needs > {majority + margin:.4f}: {LEARNING_MARGIN_SE:g} standard errors on "
                f"{labels.size} eval rows)")

    # -- export and the gate ------------------------------------------------------------------------

    def export_module(self, model: Any, output_name: str | None, sep_token_id: int | None) -> Any:
        """``(input_ids, attention_mask) -> logits`` around a classifier (:func:`logits_only`)."""
        return logits_only(model, output_name, sep_token_id)

    def judge(self, reference: np.ndarray, output: np.ndarray, labels: np.ndarray, tolerance: Tolerance,
              label_names: list[str] | None = None) -> GateReport:
        n = len(reference)
        max_abs, mean_abs, failures = output_difference(reference, output)
        y = np.asarray(labels[:n])
        if reference.shape != output.shape:  # nothing else can be compared
            return GateReport(n, max_abs, mean_abs, {}, tolerance.model_dump(exclude_none=True), failures)
        source_accuracy = float(np.mean(reference.argmax(-1) == y))
        artifact_accuracy = float(np.mean(output.argmax(-1) == y))
        agreement = self.agreement(reference, output)
        drop = round(100 * (source_accuracy - artifact_accuracy), 4)
        resolution = 100.0 / n if n else float("inf")  # points one sentence moves agreement and accuracy by
        floor = MIN_RESOLVED_SENTENCES * resolution
        measures = {"agreement": agreement, "source_accuracy": source_accuracy,
                    "artifact_accuracy": artifact_accuracy, "accuracy_drop_points": drop,
                    "resolution_points": round(resolution, 4)}
        gate = tolerance.model_dump(exclude_none=True)
        if tolerance.max_abs is not None and max_abs > tolerance.max_abs:
            failures.append(f"max |logit difference| {max_abs:.3g} > {tolerance.max_abs:g}")
        if tolerance.min_agreement is not None:
            bound = min(tolerance.min_agreement, 1 - floor / 100)
            if bound < tolerance.min_agreement:
                gate["min_agreement_resolved"] = round(bound, 6)
            if agreement < bound:
                failures.append(f"label agreement {agreement:.2%} < {bound:.2%} "
                                f"({round((1 - agreement) * n)} of {n} labels changed)")
        if tolerance.max_accuracy_drop is not None:
            bound = max(tolerance.max_accuracy_drop, floor)
            if bound > tolerance.max_accuracy_drop:
                gate["max_accuracy_drop_resolved"] = round(bound, 4)
            if drop > bound + 1e-9:
                failures.append(f"accuracy drop {drop:.2f} points ({source_accuracy:.4f} -> {artifact_accuracy:.4f})"
                                f" > {bound:g}")
        if "min_agreement_resolved" in gate or "max_accuracy_drop_resolved" in gate:
            gate["resolution"] = (f"{n} eval sentences: one changed label is {resolution:.2f} points; bounds finer "
                                  f"than {MIN_RESOLVED_SENTENCES} sentences are read as {MIN_RESOLVED_SENTENCES}")
        return GateReport(n, max_abs, mean_abs, measures, gate, failures)

    def describe_gate(self, report: GateReport) -> str:
        m = report.measures
        if not m:
            return f"max |diff| {report.max_abs:.2g}"
        return (f"max |diff| {report.max_abs:.2g}, agreement {m['agreement']:.2%}, "
                f"accuracy {m['source_accuracy']:.4f} -> {m['artifact_accuracy']:.4f}")

    def summarize(self, outputs: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        predicted = np.asarray(outputs).argmax(-1) if len(outputs) else np.zeros(0, dtype=int)
        return {"label_counts": {name: int((predicted == i).sum()) for i, name in enumerate(label_names)}}

    # -- what people read ---------------------------------------------------------------------------

    def describe_output(self, output: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        best = int(np.argmax(output))
        return {"label": label_names[best] if len(label_names) == len(output) else best}

    def predictions(self, texts: list[Any], outputs: np.ndarray, label_names: list[str],
                    tokenizer: Any = None) -> list[dict[str, Any]]:
        rows = []
        for text, logits in zip(texts, np.asarray(outputs, dtype=np.float64), strict=True):
            probabilities = np.exp(logits - logits.max())
            probabilities /= probabilities.sum()
            row: dict[str, Any] = {"text": text[0], "text_pair": text[1]} if isinstance(text, tuple) else {"text": text}
            row["label"] = label_names[int(np.argmax(logits))]
            row["probabilities"] = {name: round(float(p), 6) for name, p in zip(label_names, probabilities, strict=True)}
            rows.append(row)
        return rows

    def render_predictions(self, rows: list[dict[str, Any]]) -> str:
        """One aligned line per text: label, its probability, the text (a pair's two texts joined by ' ||| ')."""
        width = max(len(row["label"]) for row in rows)
        return "\n".join(f"{row['label']:{width}s}  {row['probabilities'][row['label']]:.4f}  "
                         f"{row['text']}{' ||| ' + row['text_pair'] if 'text_pair' in row else ''}" for row in rows)

    def card(self, info: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        from edgedistill.tasks.classification_snippets import SNIPPETS, TEXT_SNIPPET

        labels = list(info.get("label_names") or [])
        parity = info.get("parity") or {}
        batch = values["batch"]
        verification = ""
        if parity:
            verification = (f"Parity gate on {parity.get('samples')} eval sentences against the source model "
                            f"({parity.get('runtime', values['backend'])}): label agreement {parity['agreement']:.2%}, "
                            f"accuracy {parity['source_accuracy']:.4f} → {parity['artifact_accuracy']:.4f}, max "
                            f"|logit difference| {parity['max_abs']:.3g}; gate {json.dumps(parity.get('gate', {}))}.")
        return {"title": self.title, "metrics": ["accuracy", "agreement"],
                "outputs": [f"| `logits` (output) | float32 | ({batch}, {len(labels)}) |"],
                "outputs_text": f"Labels, in logit order: {', '.join(f'`{x}`' for x in labels)}.",
                "verification": verification, "snippets": SNIPPETS, "text_snippet": TEXT_SNIPPET,
                "optimum_note": ("optimum's `ORTModelForSequenceClassification` keeps working on `model.onnx` "
                                 "(token ids in); it cannot load this file, whose input is text.")}


def logits_only(model: Any, output_name: str | None, sep_token_id: int | None) -> Any:
    """``(input_ids, attention_mask) -> logits`` around a classifier, in eval mode, for tracing and conversion.

    Core ML traces a plain tensor output; litert-torch names a signature's outputs after the keys of a returned
    dict, so ``output_name="logits"`` returns ``{"logits": ...}``. With ``sep_token_id`` (a model that embeds
    token types) the graph derives the token types from the ids (:func:`edgedistill.data.segments.segment_ids`),
    so the file keeps two inputs and reads a pair as trained. Defined inside the function so that importing the
    task imports no torch (the benchmark worker of an ONNX or TFLite row must not carry it).
    """
    import torch

    from edgedistill.data.segments import segment_ids

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            types = {} if sep_token_id is None else {"token_type_ids": segment_ids(input_ids, sep_token_id)}
            logits = self.inner(input_ids=input_ids, attention_mask=attention_mask, **types).logits
            return logits if output_name is None else {output_name: logits}

    return LogitsOnly(model).eval()


TASK = ClassificationTask()
