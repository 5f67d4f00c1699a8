"""Pieces shared by every stage that trains with transformers' Trainer (teacher and students)."""

from __future__ import annotations

import inspect
import logging
import math
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback, TrainingArguments

from edgedistill.core.errors import TrainingError
from edgedistill.data.encoding import stack_rows
from edgedistill.tasks.base import Task

log = logging.getLogger("edgedistill.training")

# What a trained model's stage folder must hold to be reused (teacher, born-again teacher, student roles).
MODEL_OUTPUTS = ("config.json", "metrics.json", "edgedistill_config.yaml")
# A task's training recipe (``Task.recipe``) -> the module whose run_teacher / run_distill train it; "logits" is
# edgedistill.training.teacher's and edgedistill.training.distill's own.
RECIPES = {"embedding": "edgedistill.training.embedding"}


def own_recipe(task: Task) -> Any | None:
    """The module of ``task``'s training recipe when it is not the logits recipe, else None."""
    import importlib

    return importlib.import_module(RECIPES[task.recipe]) if task.recipe in RECIPES else None


@dataclass
class TeacherResult:
    """The teacher stage's folder, its metrics, and whether it came from the cache: what the stages that
    learn from a teacher are handed."""

    path: Path
    metrics: dict[str, Any]
    cached: bool


def trainer_metrics(task: Task, label_names: list[str]) -> Callable[[Any], dict[str, float]]:
    """The Trainer's ``compute_metrics`` hook for ``task``: ``EvalPrediction`` -> the task's metrics."""

    def compute(prediction: Any) -> dict[str, float]:
        outputs = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        return task.metrics(outputs, prediction.label_ids, label_names)

    return compute


def eval_scores(task: Task, outputs: np.ndarray, labels: np.ndarray, label_names: list[str]) -> dict[str, float]:
    """The task's metrics on the eval split, named as the Trainer names them (``eval_accuracy``, ...)."""
    return {f"eval_{name}": value for name, value in task.metrics(outputs, labels, label_names).items()}


def feature_labels(features: list[dict]) -> np.ndarray:
    """The ``labels`` of encoded rows as one array: per-token label lists padded with -100 to the longest."""
    labels = [f["labels"] for f in features]
    if not labels or np.ndim(labels[0]) == 0:
        return np.array(labels)
    out = np.full((len(labels), max(len(x) for x in labels)), -100, dtype=np.int64)
    for row, values in enumerate(labels):
        out[row, : len(values)] = values
    return out


def stop_if_nothing_learnt(task: Task, scores: dict[str, float], labels: np.ndarray, role: str, settings: str,
                           required: bool) -> None:
    """Refuse a trained model no better than the task's trivial answer (``require_learning``), naming the
    settings that change its training; with ``required`` false, only warn."""
    reason = task.learnt_nothing({k.removeprefix("eval_"): v for k, v in scores.items()}, labels)
    if reason is None:
        return
    message = (f"the {role} did not learn: {reason}. Train longer or differently ({settings}), give more or "
               "cleaner data, or set require_learning: false to go on with it anyway")
    if required:
        raise TrainingError(message)
    log.warning("%s", message)


class LogToFileCallback(TrainerCallback):
    """Send the Trainer's periodic logs (loss, learning rate, epoch) to our logger and log file."""

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: D102 - Trainer API
        if logs:
            shown = {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in logs.items()}
            log.info("step %d/%d: %s", state.global_step, state.max_steps, shown)


SCHEDULE_KEYS = frozenset({"min_steps", "max_epochs", "small_data_learning_rate"})  # what fit_schedule resolves


def fit_schedule(recipe: Any, train_rows: int, role: str) -> Any:
    """The recipe this many training rows get: as configured, or, when ``epochs`` gives fewer than
    ``min_steps`` optimizer steps, stretched to reach them (at most ``max_epochs``) at
    ``small_data_learning_rate``, said in the log. On 1,244 sentence pairs one epoch is 39 steps: too few
    for the teacher to leave the majority class."""
    steps_per_epoch = math.ceil(train_rows / recipe.batch_size)
    if not recipe.min_steps or not steps_per_epoch or recipe.epochs * steps_per_epoch >= recipe.min_steps:
        return recipe
    epochs = min(recipe.max_epochs, math.ceil(recipe.min_steps / steps_per_epoch))
    learning_rate = recipe.small_data_learning_rate or recipe.learning_rate
    log.info("%s: %d training rows are %d optimizer steps an epoch; %g epoch(s) would be %d steps, under min_steps "
             "%d: training %g epochs (%d steps) at learning rate %g instead", role, train_rows, steps_per_epoch,
             recipe.epochs, round(recipe.epochs * steps_per_epoch), recipe.min_steps, epochs,
             round(epochs * steps_per_epoch), learning_rate)
    return recipe.model_copy(update={"epochs": float(epochs), "learning_rate": learning_rate})


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
def predict_outputs(model: torch.nn.Module, features: list[dict], collator: Any, batch_size: int, task: Task,
                    progress: str | None = None) -> np.ndarray:
    """The task's outputs of ``model`` (a classifier's logits) over tokenized features, in their order, in eval
    mode (no dropout).

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
        chunks.append(task.training_output(model(**batch)).float().cpu().numpy())
    model.train(was_training)
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    stacked = stack_rows(chunks)
    outputs = np.empty_like(stacked)
    outputs[order] = stacked
    return outputs
