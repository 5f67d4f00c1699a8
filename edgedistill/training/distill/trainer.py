"""A transformers ``Trainer`` that distils: the frozen teacher runs inside ``compute_loss``.

The teacher is held by the trainer, not by the model being trained, so it is never in the optimizer,
never wrapped by DDP, and never saved with the student. It runs in eval mode under ``no_grad``.
With ``teacher_logits`` precomputed (one teacher pass over the train set, reused every epoch) and no
hidden-state term, the teacher does not run during training at all.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import Trainer

from edgedistill.data.segments import embeds_token_types
from edgedistill.tasks.base import Task
from edgedistill.tasks.classification import TASK as CLASSIFICATION
from edgedistill.training.distill.losses import LossWeights, distillation_loss


class StudentWithProjection(nn.Module):
    """The trained module: the student plus, for a narrower student, projections to the teacher's width.

    Only ``student`` is saved at the end; the projections exist for the hidden-state loss alone.
    """

    def __init__(self, student: nn.Module, projections: nn.ModuleList | None = None):
        super().__init__()
        self.student = student
        self.projections = projections

    def forward(self, **inputs: Any) -> Any:
        return self.student(**inputs)


class DistillationTrainer(Trainer):
    def __init__(self, *args: Any, teacher: nn.Module | None, weights: LossWeights,
                 layer_pairs: list[tuple[int, int]], task: Task = CLASSIFICATION, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.task = task
        self.weights = weights
        self.layer_pairs = layer_pairs  # (student hidden-state index, teacher hidden-state index)
        self.teacher = teacher
        if teacher is not None:
            teacher.eval()
            teacher.requires_grad_(False)
            teacher.to(self.args.device)
        self._loss_parts: dict[str, list[float]] = {}
        # A teacher-class student of BERT, ELECTRA, ALBERT... embeds token types too; DistilBERT has none.
        self._student_types = embeds_token_types(getattr(self.model, "student", self.model))

    def compute_loss(self, model: nn.Module, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        labels = inputs.pop("labels")
        cached_logits = inputs.pop("teacher_logits", None)
        token_type_ids = inputs.pop("token_type_ids", None)
        student_types = {"token_type_ids": token_type_ids} if self._student_types else {}
        want_hidden = bool(self.weights.uses_hidden_states and self.layer_pairs)
        want_attention = bool(self.weights.alpha_att and self.layer_pairs)
        outputs = model(**inputs, **student_types, output_hidden_states=want_hidden,
                        output_attentions=want_attention)
        teacher_logits, teacher_hidden, teacher_attention = cached_logits, None, None
        needs_teacher = (self.weights.alpha_kd and cached_logits is None) or want_hidden or want_attention
        if needs_teacher:
            with torch.no_grad():
                t_out = self.teacher(**inputs, token_type_ids=token_type_ids, output_hidden_states=want_hidden,
                                     output_attentions=want_attention)
            teacher_logits = self.task.training_output(t_out) if cached_logits is None else cached_logits
            teacher_hidden, teacher_attention = t_out.hidden_states, t_out.attentions
        # hidden-state index i is the output of layer i (0: the embeddings); attentions count layers from 0
        attention_pairs = [(outputs.attentions[s - 1], teacher_attention[t - 1]) for s, t in self.layer_pairs
                           if s >= 1 and t >= 1] if want_attention else []
        hidden_pairs = []
        if want_hidden:
            module = model.module if hasattr(model, "module") else model
            for k, (s_index, t_index) in enumerate(self.layer_pairs):
                student_h = outputs.hidden_states[s_index]
                if module.projections is not None:
                    student_h = module.projections[k](student_h)
                hidden_pairs.append((student_h, teacher_hidden[t_index]))
        loss, parts = distillation_loss(self.task.training_output(outputs), teacher_logits, labels, self.weights, hidden_pairs,
                                        inputs["attention_mask"], attention_pairs, self.task)
        for name, value in parts.items():
            self._loss_parts.setdefault(name, []).append(value)
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Add the mean of each loss term since the last log to the Trainer's own log line."""
        for name, values in self._loss_parts.items():
            if values:
                logs[name] = round(sum(values) / len(values), 4)
        self._loss_parts = {}
        super().log(logs, *args, **kwargs)
