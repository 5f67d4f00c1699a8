"""The teacher stage: load a BERT-family classifier, fine-tuning it first when its head is untrained.

Output: ``<workdir>/teacher/``, a ``save_pretrained`` folder (model + tokenizer) with the config used
(``edgedistill_config.yaml``), ``metrics.json``, ``stage.json`` (the cache key) and ``teacher.log``.
With ``teacher.born_again`` the fine-tuned model goes to ``<workdir>/teacher-fine-tuned/`` instead and the
teacher is its born-again copy (:mod:`edgedistill.training.born_again`).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

from edgedistill.core.cache import run_cached_stage
from edgedistill.core.config import Config, dump_config
from edgedistill.core.errors import ModelError
from edgedistill.core.host import host_info
from edgedistill.core.models import ModelSource, load_model_config, resolve_model
from edgedistill.data.task_data import TaskData
from edgedistill.tasks import get_task, load_data
from edgedistill.tasks.base import Task
from edgedistill.training.common import MODEL_OUTPUTS, SCHEDULE_KEYS, TeacherResult, fit_schedule, own_recipe

log = logging.getLogger("edgedistill.teacher")

STAGE = "teacher"
FINE_TUNED_DIR = "teacher-fine-tuned"  # with born-again self-distillation: the fine-tuned teacher it starts from


def teacher_dir(config: Config) -> Path:
    return Path(config.workdir) / STAGE


def run_teacher(config: Config, *, force: bool = False, data: TaskData | None = None) -> TeacherResult:
    """Produce the fine-tuned teacher, or reuse the cached one when no input changed.

    Under torchrun / accelerate launch every process trains (the Trainer's DDP) and the first writes. With
    ``teacher.born_again`` the fine-tuned model then teaches its born-again copy
    (:mod:`edgedistill.training.born_again`, which this stage hands the fine-tuned teacher to).
    """
    task = get_task(config.task)
    data = data if data is not None else load_data(config)
    recipe = own_recipe(task)
    if recipe is not None:
        return recipe.run_teacher(config, force=force, data=data)
    source = resolve_model(config.teacher.model)
    model_config = load_model_config(source)
    recipe = fit_schedule(config.teacher, len(data.train), "teacher")
    inputs = {
        "model": source.fingerprint(),
        "data": data.fingerprint,
        "max_length": config.data.max_length,
        # the schedule as it will run (epochs, learning rate), not the rule that chose it
        "teacher": recipe.model_dump(exclude={"model", "eval_batch_size", "logging_steps", "born_again",
                                              *SCHEDULE_KEYS}),
        "seed": config.seed,
    }
    born_again = config.teacher.born_again.enabled
    # with born-again self-distillation, the fine-tuned model is its first step, kept beside the teacher
    out = Path(config.workdir) / FINE_TUNED_DIR if born_again else teacher_dir(config)
    metrics, cached = run_cached_stage(
        STAGE, out, inputs, MODEL_OUTPUTS, lambda tmp: _build(config, recipe, task, source, model_config, data, tmp),
        dump_config(config), force=force)
    if born_again:
        from edgedistill.training.born_again import run_born_again

        metrics, cached = run_born_again(config, TeacherResult(out, metrics, cached), data, teacher_dir(config),
                                         force=force)
        out = teacher_dir(config)
    if not cached:
        log.info("teacher: saved to %s (eval %s %.4f)", out, task.headline, metrics[f"eval_{task.headline}"])
    return TeacherResult(out, metrics, cached=cached)


def _build(config: Config, tcfg: Any, task: Task, source: ModelSource, model_config: Any, data: TaskData,
           out: Path) -> dict:
    """Fine-tune (or only evaluate) the teacher with ``tcfg``, the recipe :func:`fit_schedule` chose."""
    import torch
    from transformers import set_seed

    from edgedistill.training.common import stop_if_nothing_learnt

    torch.set_num_threads(config.threads)
    set_seed(config.seed)
    log.info("teacher: %s (%s, %d layers, hidden %d) from %s", source.reference, model_config.model_type,
             getattr(model_config, "num_hidden_layers", -1), getattr(model_config, "hidden_size", -1),
             source.location)
    log.info("data: %d train / %d eval rows, labels %s", len(data.train), len(data.eval), data.label_names)
    model, untrained = _load_with_head(task, source, data.label_names, tcfg.train)
    train_needed = tcfg.train == "always" or bool(untrained)
    trainer = _trainer(config, tcfg, task, source, model, data, out)
    before = trainer.evaluate()
    log.info("before training: eval loss %.4f, %s %.4f", before["eval_loss"], task.headline,
             before[f"eval_{task.headline}"])
    train_stats: dict[str, Any] = {"train_time_s": 0.0}
    if train_needed:
        log.info("fine-tuning (%s)", f"untrained weights: {', '.join(untrained)}" if untrained
                 else "teacher.train is 'always'")
        started = time.perf_counter()
        result = trainer.train()
        train_stats = {"train_loss": result.training_loss, "steps": result.global_step,
                       "eval_history": _eval_history(trainer.state.log_history, task.headline),
                       "train_time_s": round(time.perf_counter() - started, 2)}
    else:
        log.info("the %s head is trained: evaluating only", task.name)
    after = trainer.evaluate() if train_needed else before
    # the task's metrics and their breakdowns (token classification: f1_PER, ...), not the Trainer's own
    scores = {key: value for key, value in after.items()
              if key.startswith("eval_") and key.removeprefix("eval_").startswith(task.metric_names)}
    if train_needed:
        stop_if_nothing_learnt(task, scores, data.eval.labels, "teacher",
                               "teacher.epochs, teacher.learning_rate, teacher.min_steps", config.require_learning)
    model.config.edgedistill = {"task": task.name, "role": "teacher"}
    trainer.save_model(str(out))
    _remove_checkpoints(out / "checkpoints")
    return {
        "role": "teacher",
        "model": source.reference,
        "model_type": model_config.model_type,
        "parameters": sum(p.numel() for p in model.parameters()),
        "label_names": data.label_names,
        "fine_tuned": train_needed,
        **scores,
        "eval_loss": after["eval_loss"],
        f"initial_eval_{task.headline}": before[f"eval_{task.headline}"],
        "initial_eval_loss": before["eval_loss"],
        **train_stats,
        "epochs": tcfg.epochs if train_needed else 0,
        "train_samples": len(data.train),
        "eval_samples": len(data.eval),
        "data_sources": data.sources,
        "command": sys.argv,
        "host": host_info(config.threads),
    }


def _load_with_head(task: Task, source: ModelSource, names: list[str], train: str) -> tuple[Any, list[str]]:
    """The checkpoint with the task's head for ``names``, and the weights that head left untrained (a new head,
    or one sized for other labels); refused when ``teacher.train`` is ``never`` and some are."""
    model, loading = task.load_model(source.location, local_files_only=source.is_local, ignore_mismatched_sizes=True,
                                     output_loading_info=True, **task.head_settings(names))
    untrained = sorted(set(loading["missing_keys"]) | {k for k, *_ in loading["mismatched_keys"]})
    if train == "never" and untrained:
        raise ModelError(
            f"{source.reference} has no trained {task.name} head for {len(names)} labels "
            f"(untrained weights: {', '.join(untrained)}), and teacher.train is 'never'; "
            "set teacher.train to auto to fine-tune it"
        )
    return model, untrained


def _trainer(config: Config, tcfg: Any, task: Task, source: ModelSource, model: Any, data: TaskData,
             out: Path) -> Any:
    """transformers' Trainer on the encoded splits, evaluated after every epoch too (the log shows where more
    epochs stop paying)."""
    from transformers import AutoTokenizer, Trainer

    from edgedistill.training.common import LogToFileCallback, trainer_metrics, training_arguments

    tokenizer = AutoTokenizer.from_pretrained(source.location, local_files_only=source.is_local)
    with_types = data.train.text_pairs is not None
    return Trainer(
        model=model,
        args=training_arguments(out / "checkpoints", tcfg, seed=config.seed, eval_strategy="epoch"),
        train_dataset=data.train.features(tokenizer, config.data.max_length, with_token_type_ids=with_types),
        eval_dataset=data.eval.features(tokenizer, config.data.max_length, with_token_type_ids=with_types),
        data_collator=task.collator(tokenizer),
        processing_class=tokenizer,
        compute_metrics=trainer_metrics(task, data.label_names),
        callbacks=[LogToFileCallback()],
    )


def _eval_history(log_history: list[dict[str, Any]], headline: str) -> list[dict[str, float]]:
    """The headline eval metric after each epoch, from the Trainer's log (the final evaluation repeats the last
    epoch's)."""
    key = f"eval_{headline}"
    by_epoch = {round(e["epoch"], 2): e[key] for e in log_history if key in e and "epoch" in e}
    return [{"epoch": epoch, key: value} for epoch, value in by_epoch.items()]


def _remove_checkpoints(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
