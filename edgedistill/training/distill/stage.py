"""The distill stage: train the student (and the baseline) and save them as save_pretrained folders.

Outputs: ``<workdir>/student/`` (distilled), ``<workdir>/qat/`` (the distilled student trained on under
int8 fake quantization, :mod:`edgedistill.training.distill.qat`) and ``<workdir>/baseline/`` (same student, same
init, labels only), each with the tokenizer, ``edgedistill_config.yaml``, ``metrics.json``, ``stage.json``
and a log. Runs unchanged under ``torchrun`` / ``accelerate launch``: every process trains (the
Trainer's DDP: gloo on CPU, NCCL on GPUs), and only the first writes.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from edgedistill.core.atomic import process_rank, synchronize_processes
from edgedistill.core.cache import run_cached_stage, stage_key
from edgedistill.core.config import Config, dump_config
from edgedistill.core.errors import ConfigError
from edgedistill.core.hashing import model_folder_hash
from edgedistill.core.host import host_info
from edgedistill.core.models import load_model_config, resolve_model
from edgedistill.data.task_data import TaskData
from edgedistill.tasks import get_task
from edgedistill.training.common import MODEL_OUTPUTS, SCHEDULE_KEYS, TeacherResult, fit_schedule, own_recipe
from edgedistill.training.distill.augment import AugmentResult, augmented_features, run_augment

log = logging.getLogger("edgedistill.distill")

ROLES = ("student", "qat", "baseline")


@dataclass
class DistillResult:
    role: str
    path: Path
    metrics: dict[str, Any]
    cached: bool


def run_distill(config: Config, teacher: TeacherResult, data: TaskData, *, force: bool = False) -> list[DistillResult]:
    """Distil the student from ``teacher`` (the teacher stage's result) on ``data``, then (unless disabled)
    its QAT twin and the baseline; each cached on its own. A task with its own recipe trains it instead."""
    recipe = own_recipe(get_task(config.task))
    if recipe is not None:
        return recipe.run_distill(config, teacher, data, force=force)
    teacher_hash = model_folder_hash(teacher.path)
    augment = run_augment(config, teacher.path, teacher_hash, data, force=force)
    student = _run_role(config, "student", teacher.path, teacher_hash, data, force, augment=augment)
    results = [student]
    if config.distill.qat.enabled:  # starts from the distilled student: its content hash is part of the key
        results.append(_run_role(config, "qat", teacher.path, teacher_hash, data, force, init=student.path))
    if config.distill.baseline:
        results.append(_run_role(config, "baseline", teacher.path, teacher_hash, data, force))
    return results


def _weights(config: Config, role: str) -> dict[str, float]:
    d = config.distill
    if role == "baseline":
        return {"alpha_kd": 0.0, "alpha_ce": 1.0, "alpha_cos": 0.0, "temperature": d.temperature}
    layer_losses = {"alpha_mse": d.alpha_mse, "alpha_att": d.alpha_att} if d.alpha_mse or d.alpha_att else {}
    return {"alpha_kd": d.alpha_kd, "alpha_ce": d.alpha_ce, "alpha_cos": d.alpha_cos, "temperature": d.temperature,
            **layer_losses}


def _run_role(config: Config, role: str, teacher_dir: Path, teacher_hash: str, data: TaskData,
              force: bool, init: Path | None = None, augment: AugmentResult | None = None) -> DistillResult:
    """Train (or reuse) one role; ``augment``: the teacher-labelled rows added to the student's training set."""
    student_source = resolve_model(config.distill.student).fingerprint() if config.distill.student else None
    inputs = {
        "teacher": teacher_hash,
        "student": student_source,
        "data": data.fingerprint,
        "max_length": config.data.max_length,
        "distill": _recipe_inputs(config),
        "weights": _weights(config, role),
        "seed": config.seed,
    }
    if augment is not None:
        inputs["augment"] = augment.key
    if role != "qat" and not config.distill.student and _init_from(config, role) == "pretrained":
        inputs["init"] = {"from": "pretrained",
                          "model": resolve_model(pretrained_reference(teacher_dir)).fingerprint()}
    if role == "qat":
        inputs["qat"] = {**config.distill.qat.model_dump(exclude={"enabled"}),
                         "init": model_folder_hash(init)}
    out = Path(config.workdir) / role
    checkpoints = Path(config.workdir) / ".checkpoints" / f"{role}-{stage_key(role, inputs)[:12]}"
    metrics, cached = run_cached_stage(
        role, out, inputs, MODEL_OUTPUTS, lambda tmp: _train(config, role, teacher_dir, data, tmp, checkpoints, init, augment),
        dump_config(config), force=force)
    if not cached and process_rank() == 0:
        headline = get_task(config.task).headline
        log.info("%s: saved to %s (eval %s %.4f, %.1f%% of the teacher)", role, out, headline,
                 metrics[f"eval_{headline}"], 100 * metrics[f"retention_of_teacher_{headline}"])
    return DistillResult(role, out, metrics, cached=cached)


def _recipe_inputs(config: Config) -> dict[str, Any]:
    """The distill settings a trained student depends on (its cache key)."""
    recipe = config.distill.model_dump(exclude={"baseline", "qat", "augment", "init", "baseline_init",
                                                "eval_batch_size", "logging_steps", "save_steps", *SCHEDULE_KEYS})
    if config.distill.min_steps:  # a stretched schedule (fit_schedule) is part of what the student is
        recipe["min_steps"] = config.distill.min_steps
    for key in ("alpha_mse", "alpha_att", "intermediate_epochs"):  # added later: at 0 they leave the keys
        if not recipe[key]:  # of earlier students as they were
            del recipe[key]
    if recipe["dropout"] is None:  # the same for the teacher's dropout, the default
        del recipe["dropout"]
    if recipe["student_architecture"] == "auto":  # auto decides from the teacher, which the key already holds
        del recipe["student_architecture"]
    if recipe.get("alpha_att"):  # earlier students' attention loss read the probabilities after dropout
        recipe["attention_loss_on"] = "probabilities before dropout"
    return recipe


def _layer_pairs(config: Config, student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """(student, teacher) hidden-state indices for the layer losses; index 0 is the embeddings."""
    if config.distill.align == "last":
        return [(student_layers, teacher_layers)]
    stride = teacher_layers / student_layers
    return [(k + 1, round((k + 1) * stride)) for k in range(student_layers)]


def _init_from(config: Config, role: str) -> str:
    """Where this role's layers come from: "teacher" (the fine-tuned teacher) or "pretrained"."""
    return config.distill.baseline_init if role == "baseline" else config.distill.init


def pretrained_reference(teacher_dir: Path) -> str:
    """The checkpoint the teacher was fine-tuned from (its metrics.json says), or the teacher itself when
    edgedistill did not fine-tune it (then no earlier checkpoint is known)."""
    import json

    metrics = json.loads((Path(teacher_dir) / "metrics.json").read_text(encoding="utf-8"))
    return metrics["model"] if metrics.get("fine_tuned") else str(teacher_dir)


def _initial_student(config: Config, role: str, teacher: Any, teacher_dir: Path, data: TaskData,
                     init_dir: Path | None) -> tuple[Any, list[int] | None, str]:
    """The model training starts from, its layer map, and a phrase saying where it came from."""
    from edgedistill.training.distill.student import build_student

    d = config.distill
    if role == "qat":
        from transformers import AutoTokenizer

        from edgedistill.training.distill.qat import prepare_qat
        from edgedistill.quant.outlier_split import apply_plan, find_outlier_channels

        student = get_task(config.task).load_model(init_dir).eval()
        split = {}
        if d.qat.outlier_split_ratio:
            tokenizer = AutoTokenizer.from_pretrained(init_dir)
            calibration = data.calibration_inputs(config.data.calibration_samples, config.seed)
            split = {side: found for side in d.qat.outlier_split_sides
                     if (found := find_outlier_channels(student, tokenizer, calibration, config.data.max_length,
                                                        d.qat.outlier_split_ratio, side=side, skip_last=2))}
        student = prepare_qat(apply_plan(student, split))
        layer_map = getattr(student.config, "edgedistill", {}).get("layer_map")
        return student, layer_map, (f"the distilled student {init_dir}, int8 fake quantization on every linear layer"
                                    + (f", outlier channels split off {split}" if split else ""))
    if d.student:
        source = resolve_model(d.student)
        load_model_config(source)
        student = get_task(config.task).load_model(
            source.location, local_files_only=source.is_local, ignore_mismatched_sizes=True,
            **get_task(config.task).head_settings(data.label_names))
        return student, None, f"checkpoint {d.student}"
    if _init_from(config, role) == "pretrained":
        reference = pretrained_reference(teacher_dir)
        source = resolve_model(reference)
        pretrained = get_task(config.task).load_model(source.location, local_files_only=source.is_local,
                                                      ignore_mismatched_sizes=True,
                                                      **get_task(config.task).head_settings(data.label_names))
        student, layer_map = build_student(pretrained, d.layers, d.layer_map, d.hidden_size,
                                           d.student_architecture)
        return student, layer_map, (f"layers {layer_map} of {reference} (before fine-tuning)" if layer_map
                                    else "random (narrower than the teacher)")
    student, layer_map = build_student(teacher, d.layers, d.layer_map, d.hidden_size, d.student_architecture)
    return student, layer_map, f"teacher layers {layer_map}" if layer_map else "random (narrower than the teacher)"


@dataclass
class _Run:
    """What one role's training works on: the models, the recipe, the encoded data."""

    role: str
    recipe: Any  # the DistillConfig, with the QAT role's own epochs and learning rate
    teacher: Any
    student: Any
    module: Any  # the student, with projections when the cosine loss compares different widths
    layer_map: list[int] | None
    init: str
    weights: Any
    layer_pairs: list[tuple[int, int]]
    tokenizer: Any
    collator: Any
    train_set: list[dict]
    eval_set: list[dict]
    cached_teacher_logits: bool  # the training rows carry the teacher's logits: it need not run while training


def _train(config: Config, role: str, teacher_dir: Path, data: TaskData, out: Path, checkpoints: Path,
           init_dir: Path | None = None, augment: AugmentResult | None = None) -> dict[str, Any]:
    """Train one student. Checkpoints go to ``checkpoints`` (named by the cache key, outside the
    atomic output folder) every ``distill.save_steps``, so a killed run resumes where it stopped.
    The ``qat`` role continues from ``init_dir`` (the distilled student) with int8 fake quantization."""
    import torch
    from transformers import set_seed

    torch.set_num_threads(config.threads)
    set_seed(config.seed)
    run = _prepare(config, role, teacher_dir, data, init_dir, augment)
    phases = _phases(run)
    fits = []
    for name, phase in phases:  # one phase, or TinyBERT's two, each with its own checkpoints and schedule
        started = time.perf_counter()
        result, resume = _fit(config, phase, checkpoints if len(phases) == 1 else checkpoints / name)
        fits.append({"phase": name, "epochs": phase.recipe.epochs, "loss_weights": asdict(phase.weights),
                     "steps": result.global_step, "train_loss": result.training_loss,
                     "train_time_s": round(time.perf_counter() - started, 2), "resumed_from": resume})
    # The Trainer's last lines still list the checkpoint folder on every process (Path.glob between its
    # is_dir check and scandir): deleting it while another rank lags raises FileNotFoundError there.
    synchronize_processes()
    if process_rank() != 0:
        return {}
    shutil.rmtree(checkpoints, ignore_errors=True)
    extra = _save(config, run, teacher_dir, out)
    return {**_evaluate(config, run, out), "train_loss": fits[-1]["train_loss"],
            "steps": sum(f["steps"] for f in fits), "epochs": run.recipe.epochs,
            "train_time_s": round(sum(f["train_time_s"] for f in fits), 2),
            "resumed_from": next((f["resumed_from"] for f in fits if f["resumed_from"]), None),
            **({"phases": fits} if len(fits) > 1 else {}),
            "train_samples": len(data.train), "augmented_samples": len(run.train_set) - len(data.train),
            "eval_samples": len(data.eval),
            "world_size": int(os.environ.get("WORLD_SIZE", "1")), "command": sys.argv,
            "host": host_info(config.threads), **extra}


def _prepare(config: Config, role: str, teacher_dir: Path, data: TaskData, init_dir: Path | None,
             augment: AugmentResult | None) -> _Run:
    """The teacher, the student it starts from, the loss, and the encoded splits (with the teacher's
    logits attached when ``distill.cache_teacher_logits``, or when teacher-labelled rows are added: those
    carry their logits, so every row of a batch must)."""
    from torch import nn
    from transformers import AutoTokenizer

    from edgedistill.training.distill.losses import LossWeights
    from edgedistill.training.distill.student import hidden_size_of, num_layers_of, set_dropout
    from edgedistill.training.distill.trainer import StudentWithProjection
    from edgedistill.training.common import predict_outputs

    d = config.distill
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    teacher = get_task(config.task).load_model(teacher_dir)
    teacher.eval()
    student, layer_map, init = _initial_student(config, role, teacher, teacher_dir, data, init_dir)
    if config.distill.dropout is not None:
        set_dropout(student, config.distill.dropout)
    if role == "qat":
        d = d.model_copy(update={"epochs": d.qat.epochs, "learning_rate": d.qat.learning_rate})
    else:
        d = fit_schedule(d, len(data.train), role)
    weights = LossWeights(**_weights(config, role))
    s_layers, t_layers = num_layers_of(student), teacher.config.num_hidden_layers
    pairs = _layer_pairs(config, s_layers, t_layers) if weights.uses_layers else []
    projections = None
    if pairs and weights.uses_hidden_states and hidden_size_of(student) != teacher.config.hidden_size:
        projections = nn.ModuleList(nn.Linear(hidden_size_of(student), teacher.config.hidden_size) for _ in pairs)
    log.info("%s: %s, %d layers, hidden %d, %.1fM parameters, init from %s; loss weights %s",
             role, type(student).__name__, s_layers, hidden_size_of(student),
             sum(p.numel() for p in student.parameters()) / 1e6, init, weights)

    with_types = data.train.text_pairs is not None
    collator = get_task(config.task).collator(tokenizer)
    train_set = data.train.features(tokenizer, config.data.max_length, with_token_type_ids=with_types)
    eval_set = data.eval.features(tokenizer, config.data.max_length, with_token_type_ids=with_types)
    cached_logits = bool((d.cache_teacher_logits or augment is not None) and weights.alpha_kd > 0)
    if cached_logits and get_task(config.task).outputs_per_token:
        raise ConfigError(f"distill.cache_teacher_logits and distill.augment keep one row of teacher logits per "
                          f"text; the {config.task} task has one per token: set cache_teacher_logits to false and "
                          "leave augment off")
    if cached_logits:
        log.info("%s: computing the teacher's logits once for %d training rows", role, len(train_set))
        cached = predict_outputs(teacher, train_set, collator, d.eval_batch_size, get_task(config.task),
                                 progress="teacher logits")
        train_set = [{**f, "teacher_logits": row.tolist()} for f, row in zip(train_set, cached)]
    if augment is not None:
        extra = augmented_features(augment, tokenizer, config.data.max_length, with_types)
        log.info("%s: %d teacher-labelled rows added to %d training rows", role, len(extra), len(train_set))
        train_set += extra
    return _Run(role, d, teacher, student, StudentWithProjection(student, projections), layer_map, init, weights,
                pairs, tokenizer, collator, train_set, eval_set, cached_logits)


def _phases(run: _Run) -> list[tuple[str, _Run]]:
    """What the student trains on, in order: everything at once, or with ``distill.intermediate_epochs``
    TinyBERT's two phases: the intermediate-layer losses alone (the layers learn the teacher's hidden states
    and attentions before the head pulls on them), then the prediction losses on the same student for
    ``distill.epochs``, each phase with its own learning-rate schedule. The baseline and QAT roles train once."""
    d, weights = run.recipe, run.weights
    if run.role != "student" or not d.intermediate_epochs:
        return [("train", run)]
    layers_only = replace(weights, alpha_kd=0.0, alpha_ce=0.0, alpha_cos=0.0)
    prediction = replace(weights, alpha_mse=0.0, alpha_att=0.0)
    return [("intermediate", replace(run, recipe=d.model_copy(update={"epochs": d.intermediate_epochs}),
                                     weights=layers_only)),
            ("prediction", replace(run, weights=prediction, layer_pairs=run.layer_pairs if prediction.alpha_cos
                                   else []))]


def _attention_dropouts(model: Any) -> list[Any]:
    """The dropout each attention module applies to its probabilities (BERT's ``BertSelfAttention.dropout``,
    DistilBERT's ``MultiHeadSelfAttention.dropout``): the eager kernels return the probabilities after it."""
    from torch import nn

    return [module.dropout for module in model.modules()
            if type(module).__name__.endswith("Attention") and isinstance(getattr(module, "dropout", None), nn.Dropout)]


class _SwitchWarnings(logging.Filter):
    """Drops the two warnings transformers (4.57) logs when BERT or DistilBERT is asked for eager attention at run
    time. Their per-class attention cannot be switched after loading, but their SDPA classes fall back to the
    eager kernel by themselves whenever attentions are requested, so the probabilities the loss reads are the
    same either way; the switch is still asked for, for the models whose attention can be switched."""

    MESSAGES = ("does not support setting its attention implementation dynamically",
                "Falling back to the manual attention implementation")
    LOGGERS = ("transformers.modeling_utils", "transformers.models.bert.modeling_bert",
               "transformers.models.distilbert.modeling_distilbert")

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(message in record.getMessage() for message in self.MESSAGES)


@contextmanager
def _attention_probabilities(models: tuple[Any, ...], needed: bool) -> Iterator[None]:
    """While ``needed``: eager attention (the fused kernels return no attention probabilities) and no dropout
    on the probabilities, since the eager kernels return them after it: a training student's would be a
    dropped-out sample, 10% of them zero, and the KL against a zero is 28 nats, which put a floor of about
    2.8 nats under the attention loss. Afterwards each model's own implementation and dropout again."""
    if not needed:
        yield
        return
    previous = [model.config._attn_implementation for model in models]
    dropouts = [(dropout, dropout.p) for model in models for dropout in _attention_dropouts(model)]
    quiet = _SwitchWarnings()
    loggers = [logging.getLogger(name) for name in _SwitchWarnings.LOGGERS]
    try:  # everything undone below even when a switch fails half-way
        for logger in loggers:
            logger.addFilter(quiet)
        for model in models:
            model.set_attn_implementation("eager")
        for dropout, _ in dropouts:
            dropout.p = 0.0
        yield
    finally:
        for dropout, p in dropouts:
            dropout.p = p
        for model, implementation in zip(models, previous):
            model.set_attn_implementation(implementation)
        for logger in loggers:
            logger.removeFilter(quiet)


def _fit(config: Config, run: _Run, checkpoints: Path) -> tuple[Any, str | None]:
    """Train with the distillation Trainer, resuming from the last checkpoint in ``checkpoints`` if any
    (a phase that had finished resumes at its end: its weights are loaded and nothing trains)."""
    import torch
    from transformers.trainer_utils import get_last_checkpoint

    from edgedistill.training.distill.trainer import DistillationTrainer
    from edgedistill.training.common import LogToFileCallback, training_arguments

    d, weights = run.recipe, run.weights
    needs_teacher = (weights.alpha_kd and not run.cached_teacher_logits) or weights.uses_layers
    extra: dict[str, Any] = {"remove_unused_columns": False}
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        extra["ddp_backend"] = "gloo"
    args = training_arguments(checkpoints, d, seed=config.seed, save_strategy="steps", save_steps=d.save_steps,
                              save_total_limit=1, **extra)
    trainer = DistillationTrainer(
        model=run.module, args=args, train_dataset=run.train_set,
        data_collator=_TeacherLogitsCollator(run.collator), callbacks=[LogToFileCallback()],
        teacher=run.teacher if needs_teacher else None, weights=weights, layer_pairs=run.layer_pairs,
        task=get_task(config.task),
    )
    resume = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None
    if resume:
        log.info("%s: resuming from %s", run.role, resume)
    with _attention_probabilities((run.teacher, run.student), needed=bool(weights.alpha_att and run.layer_pairs)):
        return trainer.train(resume_from_checkpoint=resume), resume


def _save(config: Config, run: _Run, teacher_dir: Path, out: Path) -> dict[str, Any]:
    """Write the student as a plain ``save_pretrained`` folder (the QAT role: its fake-quantized accuracy
    measured, then the wrappers and split layers taken out); returns the QAT role's extra metrics."""
    from transformers import AutoTokenizer

    from edgedistill.training.common import eval_scores, feature_labels, predict_outputs

    task = get_task(config.task)
    extra: dict[str, Any] = {}
    if run.role == "qat":
        from edgedistill.training.distill.qat import strip_qat
        from edgedistill.quant.outlier_split import merge_outlier_split

        simulated = predict_outputs(run.student, run.eval_set, run.collator, run.recipe.eval_batch_size, task)
        names = task.label_names(run.teacher.config.to_dict())
        extra[f"eval_{task.headline}_fake_quant"] = eval_scores(task, simulated, feature_labels(run.eval_set),
                                                                names)[f"eval_{task.headline}"]
        extra["qat"] = run.recipe.qat.model_dump()
        merge_outlier_split(strip_qat(run.student))
    run.student.config.edgedistill = {"task": task.name, "role": run.role, "layer_map": run.layer_map, "teacher": str(teacher_dir)}
    run.student.save_pretrained(out)
    # DistilBERT takes no token types: the saved tokenizer must not produce them.
    AutoTokenizer.from_pretrained(teacher_dir, model_input_names=["input_ids", "attention_mask"]).save_pretrained(out)
    return extra


def _evaluate(config: Config, run: _Run, out: Path) -> dict[str, Any]:
    """The saved student against the labels and the teacher on the eval split, and what it is."""
    from edgedistill.training.distill.student import hidden_size_of, num_layers_of
    from edgedistill.training.common import eval_scores, feature_labels, predict_outputs, stop_if_nothing_learnt

    task = get_task(config.task)
    labels = feature_labels(run.eval_set)
    names = task.label_names(run.teacher.config.to_dict())
    batch = run.recipe.eval_batch_size
    student_logits = predict_outputs(run.student, run.eval_set, run.collator, batch, task)
    teacher_logits = predict_outputs(run.teacher, run.eval_set, run.collator, batch, task)
    s_metrics = eval_scores(task, student_logits, labels, names)
    t_metrics = eval_scores(task, teacher_logits, labels, names)
    if run.role == "student":  # the baseline shows what no teacher gives, and may be poor by design
        stop_if_nothing_learnt(task, s_metrics, labels, "student", "distill.epochs, distill.learning_rate",
                               config.require_learning)
    headline = f"eval_{task.headline}"
    return {
        "role": run.role,
        "student": type(run.student).__name__,
        "init": run.init,
        "layers": num_layers_of(run.student),
        "hidden_size": hidden_size_of(run.student),
        "layer_map": run.layer_map,
        "loss_weights": _weights(config, run.role),
        "align": run.recipe.align if run.weights.uses_layers else None,
        "parameters": sum(p.numel() for p in run.student.parameters()),
        "teacher_parameters": sum(p.numel() for p in run.teacher.parameters()),
        "size_bytes": (out / "model.safetensors").stat().st_size,
        **s_metrics,
        f"teacher_{headline}": t_metrics[headline],
        f"retention_of_teacher_{task.headline}": s_metrics[headline] / t_metrics[headline],
        "agreement_with_teacher": task.agreement(student_logits, teacher_logits, labels),
    }


class _TeacherLogitsCollator:
    """Pad as usual, and stack precomputed teacher logits when the rows carry them."""

    def __init__(self, pad: Any):
        self.pad = pad

    def __call__(self, features: list[dict]) -> dict:
        import torch

        logits = [f["teacher_logits"] for f in features if "teacher_logits" in f]
        batch = self.pad([{k: v for k, v in f.items() if k != "teacher_logits"} for f in features])
        if logits:
            batch["teacher_logits"] = torch.tensor(logits, dtype=torch.float32)
        return batch
