"""Refuse, before any training, a run whose models a target's backend cannot take (the support matrix's failing
cells, :data:`edgedistill.core.families.UNSUPPORTED`), reading nothing but config files."""

from __future__ import annotations

from typing import Any

from edgedistill.core.errors import ModelError
from edgedistill.core.families import UNSUPPORTED, family_of, student_architecture
from edgedistill.core.models import load_model_config, resolve_model


def exported_model_types(config: Any) -> dict[str, str]:
    """The ``model_type`` of each model a run exports (``export_models``), read from config files alone: the
    teacher's, and the student's as :func:`student_architecture` will build it (or its given checkpoint's)."""
    teacher = load_model_config(resolve_model(config.teacher.model))
    d = config.distill
    if d.student:
        student_type = load_model_config(resolve_model(d.student)).model_type
    else:
        narrower = d.hidden_size is not None and d.hidden_size != teacher.hidden_size
        chosen, _ = student_architecture(teacher, d.student_architecture, narrower)
        student_type = "distilbert" if chosen == "distilbert" else teacher.model_type
    return {role: teacher.model_type if role == "teacher" else student_type for role in config.export_models}


def check_supported(config: Any, backends: list[str]) -> None:
    """Refuse, before any training, a run whose exported models include a family a target's backend cannot take
    for the task: one line naming the family and the cell."""
    for role, model_type in exported_model_types(config).items():
        for backend in dict.fromkeys(backends):
            reason = UNSUPPORTED.get((config.task, model_type, backend))
            if reason:
                raise ModelError(f"the {role} would be a {family_of(model_type).title} ({model_type}) model, and "
                                 f"{backend} cannot take it for {config.task}: {reason} (support matrix: "
                                 f"benchmarks/results/families.md); remove the {backend} targets or choose "
                                 "distill.student_architecture")
