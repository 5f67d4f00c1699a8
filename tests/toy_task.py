"""A second task for the seam tests: one score per text (regression), implemented only against ``Task``.

Not a feature: it exists to show that a task is a module and a registry row, and that the stages around the
contract need nothing else (``tests/test_seams.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgedistill.core.config import Tolerance
from edgedistill.tasks.base import GateReport, Task, output_difference


class ScoreTask(Task):
    name = "score"
    optimum_task = "text-classification"
    pipeline_tag = "text-classification"
    title = "text scorer"
    headline = "mae"
    agreement_label = "within 0.1"  # what :meth:`agreement` measures
    metric_names = ("mae",)
    architecture_suffix = "ForSequenceClassification"
    reads_first_row_only = True
    head_linear_layers = 1

    def load_data(self, data_config: Any, seed: int) -> Any:
        from edgedistill.data.task_data import load_task_data

        return load_task_data(data_config, seed=seed)

    def load_model(self, location: Any, **kwargs: Any) -> Any:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification.from_pretrained(location, num_labels=1, **kwargs)

    def head_settings(self, label_names: list[str]) -> dict[str, Any]:
        return {"num_labels": 1}

    def label_names(self, model_config: dict[str, Any]) -> list[str]:
        return ["score"]

    def student_model(self, student_config: Any, teacher_config: Any) -> Any:
        from transformers import DistilBertForSequenceClassification

        student_config.num_labels = 1
        return DistilBertForSequenceClassification(student_config)

    def copy_head(self, student: Any, teacher: Any) -> None:
        student.classifier.load_state_dict(teacher.classifier.state_dict())

    def output_names(self) -> tuple[str, ...]:
        return ("score",)

    def output_descriptions(self, label_names: list[str]) -> dict[str, str]:
        return {"score": "one score per text"}

    def training_output(self, model_outputs: Any) -> Any:
        return model_outputs.logits

    def metrics(self, outputs: np.ndarray, labels: np.ndarray, label_names: list[str] | None = None
                ) -> dict[str, float]:
        return {"mae": float(np.mean(np.abs(np.asarray(outputs)[:, 0] - np.asarray(labels))))}

    def agreement(self, outputs: np.ndarray, other: np.ndarray, labels: np.ndarray | None = None) -> float:
        return float(np.mean(np.abs(np.asarray(outputs) - np.asarray(other)) < 0.1))

    def prediction_loss(self, student: Any, teacher: Any | None, labels: Any, alpha_soft: float, alpha_hard: float,
                        temperature: float) -> tuple[Any, dict[str, float]]:
        import torch.nn.functional as F

        loss = alpha_hard * F.mse_loss(student[:, 0], labels.float())
        if alpha_soft and teacher is not None:
            loss = loss + alpha_soft * F.mse_loss(student, teacher)
        return loss, {"loss_mse": loss.item()}

    def learnt_nothing(self, metrics: dict[str, float], labels: np.ndarray) -> str | None:
        spread = float(np.mean(np.abs(labels - np.mean(labels))))
        return None if metrics["mae"] < spread else f"mae {metrics['mae']:.3f} is no better than the mean's {spread:.3f}"

    def export_module(self, model: Any, output_name: str | None, sep_token_id: int | None) -> Any:
        from edgedistill.tasks.classification import logits_only

        return logits_only(model, output_name, sep_token_id)

    def tolerance(self, precision: str, override: Tolerance) -> Tolerance:
        return Tolerance(max_abs=1e-4 if precision == "fp32" else 0.1).model_copy(
            update=override.model_dump(exclude_none=True))

    def judge(self, reference: np.ndarray, output: np.ndarray, labels: np.ndarray, tolerance: Tolerance,
              label_names: list[str] | None = None) -> GateReport:
        max_abs, mean_abs, failures = output_difference(reference, output)
        if not failures and tolerance.max_abs is not None and max_abs > tolerance.max_abs:
            failures.append(f"max |score difference| {max_abs:.3g} > {tolerance.max_abs:g}")
        return GateReport(len(reference), max_abs, mean_abs, {}, tolerance.model_dump(exclude_none=True), failures)

    def describe_gate(self, report: GateReport) -> str:
        return f"max |diff| {report.max_abs:.2g}"

    def summarize(self, outputs: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        return {"mean_score": float(np.mean(outputs)) if len(outputs) else None}

    def describe_output(self, output: np.ndarray, label_names: list[str]) -> dict[str, Any]:
        return {"rounded": round(float(output[0]), 2)}

    def predictions(self, texts: list[Any], outputs: np.ndarray, label_names: list[str],
                    tokenizer: Any = None) -> list[dict[str, Any]]:
        return [{"text": text, "score": round(float(out[0]), 6)} for text, out in zip(texts, outputs, strict=True)]

    def render_predictions(self, rows: list[dict[str, Any]]) -> str:
        return "\n".join(f"{row['score']:+.4f}  {row['text']}" for row in rows)

    def card(self, info: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        return {"title": self.title, "metrics": ["mae"], "outputs": [f"| `score` (output) | float32 | ({values['batch']}, 1) |"],
                "outputs_text": "One score per text.", "verification": "", "snippets": {values["backend"]: {}},
                "text_snippet": "", "optimum_note": ""}


TASK = ScoreTask()
