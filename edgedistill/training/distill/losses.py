"""The distillation objective of the DistilBERT paper, with hard labels in place of masked-LM.

    loss = α_kd · T² · KL(softmax(z_t / T) ‖ softmax(z_s / T))     soft targets of the teacher
         + α_ce · CE(z_s, y)                                      the task's labels (rows that have one)
         + α_cos · mean over real tokens of (1 − cos(h_s, h_t))   hidden-state alignment
         + α_mse · mean over real tokens of ‖W h_s − h_t‖² / d      TinyBERT's hidden-state loss
         + α_att · mean over real query rows of KL(A_t ‖ A_s)      attention distributions

T² keeps the soft-target gradients on the same scale as the hard-label ones when T changes
(Hinton et al. 2015). Padding tokens carry no meaning, so they are left out of the token terms. The
last two are the intermediate-layer losses of TinyBERT's task distillation (off by default); ``W`` is the
learned projection of a narrower student, and attention heads are averaged when the counts differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edgedistill.tasks.base import Task, soft_target_loss
from edgedistill.tasks.classification import TASK as CLASSIFICATION

__all__ = ["LossWeights", "attention_kl_loss", "cosine_alignment_loss", "distillation_loss", "hidden_mse_loss",
           "soft_target_loss"]


@dataclass(frozen=True)
class LossWeights:
    alpha_kd: float = 1.0
    alpha_ce: float = 1.0
    alpha_cos: float = 1.0
    temperature: float = 2.0
    alpha_mse: float = 0.0
    alpha_att: float = 0.0

    @property
    def uses_hidden_states(self) -> bool:
        return bool(self.alpha_cos or self.alpha_mse)

    @property
    def uses_layers(self) -> bool:
        """Any loss that reads the layers (hidden states or attentions), not just the logits."""
        return bool(self.alpha_cos or self.alpha_mse or self.alpha_att)


def cosine_alignment_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor,
                          attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of (1 − cosine similarity) over non-padding tokens; hidden states are (batch, seq, dim)."""
    mask = attention_mask.bool()
    cos = F.cosine_similarity(student_hidden[mask], teacher_hidden[mask], dim=-1)
    return (1.0 - cos).mean()


def hidden_mse_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor,
                    attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error per dimension over non-padding tokens; hidden states are (batch, seq, dim)."""
    mask = attention_mask.bool()
    return F.mse_loss(student_hidden[mask], teacher_hidden[mask])


def attention_kl_loss(student_attention: torch.Tensor, teacher_attention: torch.Tensor,
                      attention_mask: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """KL(teacher ‖ student) between attention distributions (batch, heads, query, key), averaged over the
    heads and the non-padding query rows; with different head counts both sides are averaged over heads."""
    if student_attention.shape[1] != teacher_attention.shape[1]:
        student_attention = student_attention.mean(dim=1, keepdim=True)
        teacher_attention = teacher_attention.mean(dim=1, keepdim=True)
    kl = (teacher_attention * (torch.log(teacher_attention + eps) - torch.log(student_attention + eps))).sum(-1)
    rows = attention_mask.bool()[:, None, :].expand_as(kl)
    return kl[rows].mean()


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    labels: torch.Tensor,
    weights: LossWeights,
    hidden_pairs: list[tuple[torch.Tensor, torch.Tensor]] = (),
    attention_mask: torch.Tensor | None = None,
    attention_pairs: list[tuple[torch.Tensor, torch.Tensor]] = (),
    task: Task = CLASSIFICATION,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted total and each term's value (for logging); terms with weight 0 are skipped. The prediction
    terms (soft targets, hard labels) are the task's (:meth:`edgedistill.tasks.base.Task.prediction_loss`)."""
    total, parts = task.prediction_loss(student_logits, teacher_logits, labels, weights.alpha_kd, weights.alpha_ce,
                                        weights.temperature)
    layer_terms = (("loss_cos", weights.alpha_cos, cosine_alignment_loss, hidden_pairs),
                   ("loss_mse", weights.alpha_mse, hidden_mse_loss, hidden_pairs),
                   ("loss_att", weights.alpha_att, attention_kl_loss, attention_pairs))
    for name, weight, term, pairs in layer_terms:  # each averaged over the paired layers
        if weight and pairs:
            value = torch.stack([term(s, t, attention_mask) for s, t in pairs]).mean()
            total = total + weight * value
            parts[name] = value.item()
    return total, parts
