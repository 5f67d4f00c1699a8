"""Token classification: a tag for every word (named entities on CoNLL-2003, or any word-tagged data).

Models are ``AutoModelForTokenClassification`` checkpoints; the student is a ``DistilBertForTokenClassification``.
Outputs are logits ``[batch, tokens, tags]``, one row per token (the [CLS]-only rewrite never applies). A word's
tag is read from its first sub-token (labels sit there in training: :mod:`edgedistill.data.conll`), so every
comparison runs on *real word positions*: the gold labels aligned to tokens (-100 on the rest) say which.

Entities are scored one way everywhere, as seqeval scores them: IOB2 tags (every split is converted on
reading), strict span matching (an entity counts when its type and both ends match). The gate holds fp32
artifacts to ``max_abs`` on the logits and reduced precisions to per-word tag agreement with the checkpoint and
the entity F1 drop. ``predict`` groups word tags into entities the way transformers' token-classification
pipeline does with ``aggregation_strategy="first"`` (:mod:`edgedistill.tasks.entities`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from edgedistill.core.config import Tolerance
from edgedistill.data.conll import IGNORED
from edgedistill.tasks.base import (GateReport, Task, head_settings_for, id2label_names, load_pretrained,
                                    output_difference, soft_target_loss)

DEFAULT_TOLERANCES: dict[str, Tolerance] = {"fp32": Tolerance(max_abs=1e-4)}
REDUCED_DEFAULT = Tolerance(min_agreement=0.99, max_accuracy_drop=0.5)  # drop: entity F1 points


def word_positions(labels: np.ndarray) -> np.ndarray:
    """The mask of real word positions (first sub-tokens) in token-aligned labels."""
    return np.asarray(labels) != IGNORED


def same_width(outputs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outputs ``[n, tokens, tags]`` and labels ``[n, tokens]`` cut to their common width (a batch runner pads
    to its own width; beyond a row's tokens there is nothing to compare)."""
    width = min(outputs.shape[1], labels.shape[1])
    if np.any(word_positions(labels[:, width:])):
        raise ValueError(f"the outputs cover {outputs.shape[1]} tokens, the labels tag words beyond them")
    return outputs[:, :width], labels[:, :width]


def word_tags(outputs: np.ndarray, labels: np.ndarray, label_names: list[str]) -> tuple[list[list[str]],
                                                                                        list[list[str]]]:
    """Per sentence, the predicted and the gold tag of each word, in order (seqeval's input)."""
    outputs, labels = same_width(np.asarray(outputs), np.asarray(labels))
    predicted = outputs.argmax(-1)
    gold_rows, predicted_rows = [], []
    for row_labels, row_predicted in zip(labels, predicted, strict=True):
        real = word_positions(row_labels)
        gold_rows.append([label_names[i] for i in row_labels[real]])
        predicted_rows.append([label_names[i] for i in row_predicted[real]])
    return predicted_rows, gold_rows


def entity_scores(predicted: list[list[str]], gold: list[list[str]]) -> dict[str, float]:
    """seqeval's entity precision / recall / F1 (IOB2, strict spans), and F1 per entity type."""
    try:
        from seqeval.metrics import classification_report
        from seqeval.scheme import IOB2
    except ImportError:
        from edgedistill.core.errors import MissingDependencyError

        raise MissingDependencyError("entity F1 is scored with seqeval: pip install 'edgedistill[ner]'") from None

    report = classification_report(gold, predicted, mode="strict", scheme=IOB2, output_dict=True,
                                   zero_division=0)
    micro = report["micro avg"]
    scores = {"f1": float(micro["f1-score"]), "entity_precision": float(micro["precision"]),
              "entity_recall": float(micro["recall"])}
    for kind, values in report.items():
        if not kind.endswith(" avg"):
            scores[f"f1_{kind}"] = float(values["f1-score"])
    return scores


class TokenClassificationTask(Task):
    name = "token-classification"
    optimum_task = "token-classification"
    pipeline_tag = "token-classification"
    title = "token classifier"
    headline = "f1"
    # entity_*: a bench row's "precision" is the artifact's numeric precision (fp32, int8-static, ...)
    metric_names = ("f1", "entity_precision", "entity_recall", "word_accuracy")
    agreement_label = "tag agreement"
    architecture_suffix = "ForTokenClassification"
    reads_first_row_only = False  # every token's row is an output
    outputs_per_token = True
    head_linear_layers = 1  # the classifier on each token
    default_tolerances = DEFAULT_TOLERANCES
    reduced_tolerance = REDUCED_DEFAULT

    # -- data ---------------------------------------------------------------------------------------

    def load_data(self, data_config: Any, seed: int) -> Any:
        from edgedistill.data.conll import load_tagged_data

        return load_tagged_data(data_config, seed=seed)

    def gold(self, split: Any, tokenizer: Any, max_length: int) -> np.ndarray:
        """The tag ids on each row's tokens (-100 off real word positions), padded to ``max_length``."""
        aligned = split.token_labels(tokenizer, max_length)
        out = np.full((len(aligned), max_length), IGNORED, dtype=np.int64)
        for row, labels in enumerate(aligned):
            out[row, : len(labels)] = labels
        return out

    def collator(self, tokenizer: Any) -> Any:
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer)

    # -- models -------------------------------------------------------------------------------------

    def load_model(self, location: Any, **kwargs: Any) -> Any:
        return load_pretrained("AutoModelForTokenClassification", location, "a token classifier", **kwargs)

    def head_settings(self, label_names: list[str]) -> dict[str, Any]:
        return head_settings_for(label_names)

    def label_names(self, model_config: dict[str, Any]) -> list[str]:
        return id2label_names(model_config)

    def student_model(self, student_config: Any, teacher_config: Any) -> Any:
        from transformers import DistilBertForTokenClassification

        student_config.id2label = dict(teacher_config.id2label)
        student_config.label2id = dict(teacher_config.label2id)
        return DistilBertForTokenClassification(student_config)

    def copy_head(self, student: Any, teacher: Any) -> None:
        """The teacher's token classifier, where the widths match (a narrower student learns its own)."""
        if student.classifier.weight.shape == teacher.classifier.weight.shape:
            student.classifier.load_state_dict(teacher.classifier.state_dict())

    def output_names(self) -> tuple[str, ...]:
        return ("logits",)

    def output_descriptions(self, label_names: list[str]) -> dict[str, str]:
        return {"logits": f"Unnormalized tag scores for every token, tags {label_names}; a word's tag is read "
                          "from its first sub-token"}

    # -- training -----------------------------------------------------------------------------------

    def training_output(self, model_outputs: Any) -> Any:
        return model_outputs.logits

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, label_names: list[str] | None = None
                ) -> dict[str, float]:
        """Entity F1 / precision / recall (seqeval, strict IOB2 spans), F1 per type, and word accuracy."""
        if not label_names:
            raise ValueError("token classification metrics need the tag names")
        predicted, gold = word_tags(outputs, labels, list(label_names))
        words = sum(len(g) for g in gold)
        correct = sum(p == g for ps, gs in zip(predicted, gold, strict=True) for p, g in zip(ps, gs, strict=True))
        return {**entity_scores(predicted, gold), "word_accuracy": correct / words if words else 0.0}

    def agreement(self, outputs: np.ndarray, other: np.ndarray, labels: np.ndarray | None = None) -> float:
        """The share of real word positions where the two give the same tag (every token without labels)."""
        outputs, other = np.asarray(outputs), np.asarray(other)
        width = min(outputs.shape[1], other.shape[1])
        same = outputs[:, :width].argmax(-1) == other[:, :width].argmax(-1)
        if labels is None:
            return float(np.mean(same))
        real = word_positions(np.asarray(labels)[:, :width])
        return float(np.mean(same[real])) if real.any() else 1.0

    def prediction_loss(self, student: Any, teacher: Any | None, labels: Any, alpha_soft: float, alpha_hard: float,
                        temperature: float) -> tuple[Any, dict[str, float]]:
        """On real word positions only: α_kd · T² · KL(teacher ‖ student at T) per word + α_ce · CE."""
        import torch.nn.functional as F

        real = labels != IGNORED
        total = student.new_zeros(())
        parts: dict[str, float] = {}
        if alpha_soft and real.any():
            kd = soft_target_loss(student[real], teacher[real], temperature)
            total = total + alpha_soft * kd
            parts["loss_kd"] = kd.item()
        if alpha_hard and real.any():
            ce = F.cross_entropy(student[real], labels[real])
            total = total + alpha_hard * ce
            parts["loss_ce"] = ce.item()
        return total, parts

    def learnt_nothing(self, metrics: dict[str, float], labels: Any) -> str | None:
        if metrics["f1"] > 0:
            return None
        return "eval entity F1 is 0: no entity found (tagging every word O scores 0)"

    # -- export and the gate ------------------------------------------------------------------------

    def export_module(self, model: Any, output_name: str | None, sep_token_id: int | None) -> Any:
        from edgedistill.tasks.classification import logits_only

        return logits_only(model, output_name, sep_token_id)

    def judge(self, reference: np.ndarray, output: np.ndarray, labels: np.ndarray, tolerance: Tolerance,
              label_names: list[str] | None = None) -> GateReport:
        n = len(reference)
        max_abs, mean_abs, failures = output_difference(reference, output)
        if reference.shape != output.shape:
            return GateReport(n, max_abs, mean_abs, {}, tolerance.model_dump(exclude_none=True), failures)
        labels = np.asarray(labels)[:n]
        real = word_positions(labels[:, : reference.shape[1]])
        source = self.metrics(reference, labels, label_names)
        artifact = self.metrics(output, labels, label_names)
        agreement = self.agreement(reference, output, labels)
        drop = round(100 * (source["f1"] - artifact["f1"]), 4)
        measures = {"agreement": agreement, "words": int(real.sum()), "source_f1": source["f1"],
                    "artifact_f1": artifact["f1"], "f1_drop_points": drop}
        if tolerance.max_abs is not None and max_abs > tolerance.max_abs:
            failures.append(f"max |logit difference| {max_abs:.3g} > {tolerance.max_abs:g}")
        if tolerance.min_agreement is not None and agreement < tolerance.min_agreement:
            failures.append(f"tag agreement {agreement:.2%} < {tolerance.min_agreement:.2%} "
                            f"({round((1 - agreement) * int(real.sum()))} of {int(real.sum())} word tags changed)")
        if tolerance.max_accuracy_drop is not None and drop > tolerance.max_accuracy_drop + 1e-9:
            failures.append(f"entity F1 drop {drop:.2f} points ({source['f1']:.4f} -> {artifact['f1']:.4f}) > "
                            f"{tolerance.max_accuracy_drop:g}")
        return GateReport(n, max_abs, mean_abs, measures, tolerance.model_dump(exclude_none=True), failures)

    def describe_gate(self, report: GateReport) -> str:
        m = report.measures
        if not m:
            return f"max |diff| {report.max_abs:.2g}"
        return (f"max |diff| {report.max_abs:.2g}, tag agreement {m['agreement']:.2%} on {m['words']} words, "
                f"entity F1 {m['source_f1']:.4f} -> {m['artifact_f1']:.4f}")

    def summarize(self, outputs: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        return {"rows": int(len(outputs)), "tokens": int(outputs.shape[1]) if np.ndim(outputs) == 3 else 0}

    # -- what people read ---------------------------------------------------------------------------

    def describe_output(self, output: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        """Each token's tag (argmax), in token order."""
        return {"tags": [label_names[int(i)] if len(label_names) == output.shape[-1] else int(i)
                         for i in np.asarray(output).argmax(-1)]}

    def predictions(self, texts: list[Any], outputs: np.ndarray, label_names: list[str],
                    tokenizer: Any = None) -> list[dict[str, Any]]:
        """Each text's entities (type, text, character offsets, score), grouped from word tags as transformers'
        pipeline groups them with ``aggregation_strategy="first"``."""
        from edgedistill.tasks.entities import group_entities

        if tokenizer is None:
            raise ValueError("token classification predictions need the tokenizer (character offsets)")
        rows = []
        for text, logits in zip(texts, outputs, strict=True):
            if isinstance(text, tuple):
                from edgedistill.core.errors import DataError

                raise DataError("token classification tags one text, not a pair: remove the tab from the input")
            rows.append({"text": text, "entities": group_entities(text, np.asarray(logits), tokenizer, label_names)})
        return rows

    def render_predictions(self, rows: list[dict[str, Any]]) -> str:
        """Each text, then one line per entity: type, score, character span, text."""
        blocks = []
        for row in rows:
            lines = [row["text"]]
            lines += [f"  {e['entity_group']:<6s} {e['score']:.4f}  [{e['start']}:{e['end']}]  {e['word']}"
                      for e in row["entities"]] or ["  (no entities)"]
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    def card(self, info: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        from edgedistill.tasks.token_classification_snippets import SNIPPETS

        labels = list(info.get("label_names") or [])
        parity = info.get("parity") or {}
        batch = values["batch"]
        verification = ""
        if parity and "agreement" in parity:
            verification = (f"Parity gate on {parity.get('samples')} eval sentences ({parity.get('words')} words) "
                            f"against the source model ({parity.get('runtime', values['backend'])}): tag agreement "
                            f"{parity['agreement']:.2%}, entity F1 {parity['source_f1']:.4f} → "
                            f"{parity['artifact_f1']:.4f}, max |logit difference| {parity['max_abs']:.3g}; gate "
                            f"{json.dumps(parity.get('gate', {}))}.")
        return {"title": self.title, "metrics": ["f1", "agreement"],
                "outputs": [f"| `logits` (output) | float32 | ({batch}, tokens, {len(labels)}) |"],
                "outputs_text": (f"Tags, in logit order: {', '.join(f'`{x}`' for x in labels)}. A word's tag is the "
                                 "argmax of its first sub-token's row; entities are runs of B-/I- tags of one type "
                                 "(IOB2)."),
                "verification": verification, "snippets": SNIPPETS, "text_snippet": None,
                "optimum_note": "optimum's `ORTModelForTokenClassification` loads `model.onnx` as it is."}


TASK = TokenClassificationTask()
