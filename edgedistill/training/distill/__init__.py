"""Distillation: a DistilBERT-style student trained from the teacher, and its no-teacher baseline."""

from edgedistill.training.distill.stage import DistillResult, run_distill

__all__ = ["DistillResult", "run_distill"]
