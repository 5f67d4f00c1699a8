"""The teacher stage: load a BERT-family classifier, fine-tuning it first when its head is untrained.

Output: ``<workdir>/teacher/``, a ``save_pretrained`` folder (model + tokenizer) with the config used
(``edgedistill_config.yaml``), ``metrics.json``, ``stage.json`` (the cache key) and ``teacher.log``.
With ``teacher.born_again`` the fine-tuned model goes to ``<workdir>/teacher-fine-tuned/`` instead and the
teacher is its born-again copy (:mod:`edgedistill.born_again`).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedistill.born_again import FINE_TUNED_DIR, run_born_again
from edgedistill.cache import run_cached_stage
from edgedistill.config import Config, dump_config
from edgedistill.data import TaskData, encode, load_task_data
from edgedistill.errors import ModelError
from edgedistill.host import host_info
from edgedistill.models import ModelSource, load_classifier, load_model_config, resolve_model

log = logging.getLogger("edgedistill.teacher")

STAGE = "teacher"
OUTPUTS = ("config.json", "metrics.json", "edgedistill_config.yaml")


@dataclass
class TeacherResult:
    path: Path
    metrics: dict[str, Any]
    cached: bool


def teacher_dir(config: Config) -> Path:
    return Path(config.workdir) / STAGE


def run_teacher(config: Config, *, force: bool = False, data: TaskData | None = None) -> TeacherResult:
    """Produce the fine-tuned teacher, or reuse the cached one when no input changed.

    Under torchrun / accelerate launch every process trains (the Trainer's DDP) and the first writes.
    """
    source = resolve_model(config.teacher.model)
    model_config = load_model_config(source)
    data = data if data is not None else load_task_data(config.data, seed=config.seed)
    inputs = {
        "model": source.fingerprint(),
        "data": data.fingerprint,
        "max_length": config.data.max_length,
        "teacher": config.teacher.model_dump(exclude={"model", "eval_batch_size", "logging_steps", "born_again"}),
        "seed": config.seed,
    }
    born_again = config.teacher.born_again.enabled
    # with born-again self-distillation, the fine-tuned model is its first step, kept beside the teacher
    out = Path(config.workdir) / FINE_TUNED_DIR if born_again else teacher_dir(config)
    metrics, cached = run_cached_stage(
        STAGE, out, inputs, OUTPUTS, lambda tmp: _build(config, source, model_config, data, tmp),
        dump_config(config), force=force)
    if born_again:
        metrics, cached = run_born_again(config, TeacherResult(out, metrics, cached), data, force=force)
        out = teacher_dir(config)
    if not cached:
        log.info("teacher: saved to %s (eval accuracy %.4f)", out, metrics["eval_accuracy"])
    return TeacherResult(out, metrics, cached=cached)


def _build(config: Config, source: ModelSource, model_config: Any, data: TaskData, out: Path) -> dict:
    import torch
    from transformers import (
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        set_seed,
    )

    from edgedistill.training import LogToFileCallback, compute_metrics, training_arguments

    torch.set_num_threads(config.threads)
    set_seed(config.seed)
    tcfg = config.teacher
    names = data.label_names
    log.info("teacher: %s (%s, %d layers, hidden %d) from %s", source.reference, model_config.model_type,
             getattr(model_config, "num_hidden_layers", -1), getattr(model_config, "hidden_size", -1),
             source.location)
    log.info("data: %d train / %d eval rows, labels %s", len(data.train), len(data.eval), names)
    tokenizer = AutoTokenizer.from_pretrained(source.location, local_files_only=source.is_local)
    model, loading = load_classifier(
        source.location,
        local_files_only=source.is_local,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={name: i for i, name in enumerate(names)},
        ignore_mismatched_sizes=True,
        output_loading_info=True,
    )
    untrained = sorted(set(loading["missing_keys"]) | {k for k, *_ in loading["mismatched_keys"]})
    if tcfg.train == "never" and untrained:
        raise ModelError(
            f"{source.reference} has no trained classification head for {len(names)} labels "
            f"(untrained weights: {', '.join(untrained)}), and teacher.train is 'never'; "
            "set teacher.train to auto to fine-tune it"
        )
    train_needed = tcfg.train == "always" or bool(untrained)
    with_types = data.train.text_pairs is not None
    train_set = encode(data.train, tokenizer, config.data.max_length, with_token_type_ids=with_types)
    eval_set = encode(data.eval, tokenizer, config.data.max_length, with_token_type_ids=with_types)
    # evaluated after every epoch too, so the log shows where more epochs stop paying
    args = training_arguments(out / "checkpoints", tcfg, seed=config.seed, eval_strategy="epoch")
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_set,
        eval_dataset=eval_set,
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=compute_metrics,
        callbacks=[LogToFileCallback()],
    )
    before = trainer.evaluate()
    log.info("before training: eval loss %.4f, accuracy %.4f", before["eval_loss"], before["eval_accuracy"])
    train_time = 0.0
    train_stats: dict[str, Any] = {}
    if train_needed:
        reason = f"untrained weights: {', '.join(untrained)}" if untrained else "teacher.train is 'always'"
        log.info("fine-tuning (%s)", reason)
        started = time.perf_counter()
        result = trainer.train()
        train_time = time.perf_counter() - started
        train_stats = {"train_loss": result.training_loss, "steps": result.global_step,
                       "eval_history": _eval_history(trainer.state.log_history)}
    else:
        log.info("the classification head is trained: evaluating only")
    after = trainer.evaluate() if train_needed else before
    trainer.save_model(str(out))
    _remove_checkpoints(out / "checkpoints")
    return {
        "role": "teacher",
        "model": source.reference,
        "model_type": model_config.model_type,
        "parameters": sum(p.numel() for p in model.parameters()),
        "label_names": names,
        "fine_tuned": train_needed,
        "eval_accuracy": after["eval_accuracy"],
        "eval_f1_macro": after["eval_f1_macro"],
        "eval_loss": after["eval_loss"],
        "initial_eval_accuracy": before["eval_accuracy"],
        "initial_eval_loss": before["eval_loss"],
        **train_stats,
        "train_time_s": round(train_time, 2),
        "epochs": tcfg.epochs if train_needed else 0,
        "train_samples": len(data.train),
        "eval_samples": len(data.eval),
        "data_sources": data.sources,
        "command": sys.argv,
        "host": host_info(config.threads),
    }


def _eval_history(log_history: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Dev accuracy after each epoch, from the Trainer's log (the final evaluation repeats the last epoch's)."""
    by_epoch = {round(e["epoch"], 2): e["eval_accuracy"] for e in log_history if "eval_accuracy" in e and "epoch" in e}
    return [{"epoch": epoch, "eval_accuracy": accuracy} for epoch, accuracy in by_epoch.items()]


def _remove_checkpoints(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
