"""Pieces shared by every stage that trains with transformers' Trainer (teacher and students)."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback, TrainingArguments

log = logging.getLogger("edgedistill.training")


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 (F1 matters where labels are imbalanced)."""
    predictions = np.asarray(logits).argmax(-1)
    labels = np.asarray(labels)
    f1s = []
    for label in np.unique(np.concatenate([labels, predictions])):
        tp = np.sum((predictions == label) & (labels == label))
        fp = np.sum((predictions == label) & (labels != label))
        fn = np.sum((predictions != label) & (labels == label))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return {"accuracy": float(np.mean(predictions == labels)), "f1_macro": float(np.mean(f1s))}


def compute_metrics(prediction: Any) -> dict[str, float]:
    """Trainer hook: ``EvalPrediction`` -> metrics."""
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return classification_metrics(logits, prediction.label_ids)


class LogToFileCallback(TrainerCallback):
    """Send the Trainer's periodic logs (loss, learning rate, epoch) to our logger and log file."""

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102 - Trainer API
        if logs:
            shown = {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in logs.items()}
            log.info("step %d/%d: %s", state.global_step, state.max_steps, shown)


def training_arguments(output_dir: Path, recipe: Any, *, seed: int, **extra: Any) -> TrainingArguments:
    """TrainingArguments for a ``TrainingRecipe`` (AdamW, linear decay after warm-up); no checkpoints
    unless ``extra`` asks for them."""
    defaults: dict[str, Any] = {
        "save_strategy": "no",
        "eval_strategy": "no",
        "report_to": [],
        "dataloader_num_workers": 0,
        "disable_tqdm": False,
        "dataloader_pin_memory": torch.cuda.is_available(),
    }
    defaults.update(extra)
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=recipe.epochs,
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        warmup_ratio=recipe.warmup_ratio,
        lr_scheduler_type="linear",
        per_device_train_batch_size=recipe.batch_size,
        per_device_eval_batch_size=recipe.eval_batch_size,
        logging_steps=recipe.logging_steps,
        group_by_length=recipe.group_by_length,
        seed=seed,
        data_seed=seed,
        **defaults,
    )


@torch.no_grad()
def predict_logits(model: torch.nn.Module, features: list[dict], collator: Any, batch_size: int,
                   progress: str | None = None) -> np.ndarray:
    """Logits of ``model`` over tokenized features, in their order, in eval mode (no dropout).

    Batches are formed from rows of similar length (then put back in order), so little time goes to padding.
    ``progress``: a description for a progress bar (long passes, such as labelling augmented rows).
    """
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    accepted = set(inspect.signature(model.forward).parameters)
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    chunks = []
    for start in tqdm(range(0, len(order), batch_size), desc=progress, unit="batch", disable=progress is None):
        rows = [features[i] for i in order[start:start + batch_size]]
        batch = collator([{k: v for k, v in f.items() if k not in ("labels", "teacher_logits")} for f in rows])
        batch = {k: v.to(next(model.parameters()).device) for k, v in batch.items() if k in accepted}
        chunks.append(model(**batch).logits.float().cpu().numpy())
    model.train(was_training)
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    logits = np.empty((len(order), chunks[0].shape[-1]), dtype=np.float32)
    logits[order] = np.concatenate(chunks)
    return logits
