"""Born-again self-distillation of the teacher (``teacher.born_again``).

Once fine-tuned, the teacher teaches a fresh copy of the checkpoint it was fine-tuned from, on its soft targets
over the training text and teacher-labelled word-replacement variants of it, and that copy becomes the teacher
the students learn from. Why: the packaged MiniLM fine-tuned on SST-2's labels stops near 0.896 dev accuracy and
more epochs only overfit it (benchmarks/results/teacher-full.md); the teacher's soft targets over more text than
the labels cover are a richer signal than the labels alone, and Furlanello et al. (2018) found a same-size
student trained on them beats its teacher.

It is the distill stage's own machinery (the cached ``augment`` rows, the KD + CE loss), so three cached folders
hold it: ``<workdir>/teacher-fine-tuned/`` (the teacher stage as it is without this), ``<workdir>/teacher-born-again/``
(the distill stage's ``augment/`` and ``student/``) and ``<workdir>/teacher/``, the born-again model published as
a teacher folder (its weights, the fine-tuned teacher's tokenizer, metrics that name both).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from edgedistill.core.cache import run_cached_stage
from edgedistill.core.config import Config, dump_config
from edgedistill.core.hashing import model_folder_hash
from edgedistill.data.task_data import TaskData
from edgedistill.tasks import get_task
from edgedistill.training.common import MODEL_OUTPUTS, TeacherResult

log = logging.getLogger("edgedistill.born_again")

WORK_DIR = "teacher-born-again"


def born_again_config(config: Config, fine_tuned_dir: Path) -> Config:
    """The distill-stage configuration that trains the born-again teacher from the fine-tuned one: the
    student is the pretrained checkpoint itself, trained on KD + CE over the training rows and the variants,
    with the teacher's optimiser settings."""
    from edgedistill.training.distill.stage import pretrained_reference

    born, teacher = config.teacher.born_again, config.teacher
    values = config.model_dump()
    values["workdir"] = Path(config.workdir) / WORK_DIR
    values["distill"].update(
        student=pretrained_reference(fine_tuned_dir), layer_map=None, hidden_size=None,
        alpha_kd=1.0, alpha_ce=1.0, alpha_cos=0.0, alpha_mse=0.0, alpha_att=0.0, temperature=born.temperature,
        epochs=born.epochs, learning_rate=born.learning_rate, weight_decay=teacher.weight_decay,
        warmup_ratio=teacher.warmup_ratio, batch_size=teacher.batch_size, group_by_length=teacher.group_by_length,
        cache_teacher_logits=True, baseline=False,
        qat={**values["distill"]["qat"], "enabled": False},
        augment={**values["distill"]["augment"], "variants": born.variants},
    )
    return Config.model_validate(values)


def run_born_again(config: Config, fine_tuned: TeacherResult, data: TaskData, out: Path, *, force: bool = False
                   ) -> tuple[dict, bool]:
    """Train (or reuse) the born-again model from the ``fine_tuned`` teacher, then publish it as the teacher
    stage's folder ``out``; returns the teacher stage's ``(metrics, cached)``."""
    from edgedistill.training.distill import run_distill
    from edgedistill.training.distill.augment import STAGE as AUGMENT_STAGE

    born_config = born_again_config(config, fine_tuned.path)
    born = run_distill(born_config, force=force, teacher=fine_tuned, data=data)[0]
    augment_metrics = Path(born_config.workdir) / AUGMENT_STAGE / "metrics.json"
    inputs = {"fine_tuned": model_folder_hash(fine_tuned.path),
              "born_again": model_folder_hash(born.path),
              "eval_data": data.fingerprint, "max_length": config.data.max_length}
    return run_cached_stage("teacher", out, inputs, MODEL_OUTPUTS,
                            lambda tmp: _publish(config, fine_tuned, born, augment_metrics, data, tmp),
                            dump_config(config),
                            force=force)


def _publish(config: Config, fine_tuned: TeacherResult, born: Any, augment_metrics: Path, data: TaskData,
             out: Path) -> dict[str, Any]:
    """Write the born-again model as a teacher folder and measure it there, on the eval split
    (``augment_metrics``: the augment stage's metrics, for the time its labelling took)."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer, DataCollatorWithPadding

    from edgedistill.training.common import eval_scores, predict_outputs

    task = get_task(config.task)
    model = task.load_model(born.path)
    # the distill stage's record says "student": this folder is a teacher
    model.config.edgedistill = {"task": task.name, "role": "teacher"}
    model.save_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(fine_tuned.path)  # with token types: a BERT teacher takes them
    tokenizer.save_pretrained(out)
    features = data.eval.features(tokenizer, config.data.max_length,
                                  with_token_type_ids=data.eval.text_pairs is not None)
    logits = predict_outputs(model, features, DataCollatorWithPadding(tokenizer), config.teacher.eval_batch_size, task)
    labels = np.array([f["labels"] for f in features])
    scores = eval_scores(task, logits, labels, data.label_names)
    headline = f"eval_{task.headline}"
    loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)).item()
    first, trained = fine_tuned.metrics, born.metrics
    augment_s = (json.loads(augment_metrics.read_text(encoding="utf-8"))["build_time_s"]
                 if augment_metrics.is_file() else 0.0)
    log.info("born-again teacher: %s %.4f (the fine-tuned teacher it learnt from: %.4f)", headline,
             scores[headline], first[headline])
    return {
        **first,
        **scores,
        "eval_loss": loss,
        f"fine_tuned_{headline}": first[headline],
        "born_again": {**config.teacher.born_again.model_dump(), "folder": str(born.path),
                       "augmented_samples": trained["augmented_samples"], "steps": trained["steps"],
                       "train_time_s": trained["train_time_s"], "augment_time_s": augment_s,
                       "agreement_with_fine_tuned": trained["agreement_with_teacher"]},
        "train_time_s": round(first["train_time_s"] + trained["train_time_s"] + augment_s, 2),
    }

