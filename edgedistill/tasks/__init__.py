"""The task registry: one module per task, each owning everything task-specific (:mod:`edgedistill.tasks.base`).

Like the backends, a task is looked up by name (``config.task``, an artifact's ``task``) and its module is
imported only when asked for. A saved model names its task in ``config.json`` (``edgedistill.task``, written
by the teacher and distill stages); a folder edgedistill did not write is recognised by its architecture.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgedistill.core.errors import ConfigError, ModelError
from edgedistill.core.registry import DEFAULT_TASK, TASKS

if TYPE_CHECKING:
    from edgedistill.tasks.base import Task

def task_names() -> tuple[str, ...]:
    return tuple(TASKS)


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}; the tasks are: {', '.join(TASKS)}")
    return importlib.import_module(TASKS[name]).TASK


def task_of_config(model_config: dict[str, Any], where: str) -> Task:
    """The task a saved model's ``config.json`` (as a dict) names, or that its architecture implies."""
    recorded = (model_config.get("edgedistill") or {}).get("task")
    if recorded:
        return get_task(recorded)
    architectures = model_config.get("architectures") or []
    for name in TASKS:
        task = get_task(name)
        if any(a.endswith(task.architecture_suffix) for a in architectures):
            return task
    if not architectures:  # a bare encoder (the packaged MiniLM): a teacher to be given a head
        return get_task(DEFAULT_TASK)
    raise ModelError(f"{where}: architecture {', '.join(architectures)} is none of edgedistill's tasks "
                     f"({', '.join(TASKS)})")


def task_of_instance(model: Any) -> Task:
    """The task of a loaded model: the one its config records, else the one its class belongs to (a checkpoint
    saved as a bare encoder and loaded as a classifier is a classifier)."""
    return task_of_config({**model.config.to_dict(), "architectures": [type(model).__name__]}, type(model).__name__)


def task_of_model(model_dir: Path) -> Task:
    """The task of a ``save_pretrained`` folder."""
    path = Path(model_dir) / "config.json"
    try:
        model_config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read the model config ({exc})") from None
    return task_of_config(model_config, str(model_dir))


def task_of_artifact(info: dict[str, Any]) -> Task:
    """The task an ``artifact.json`` records (artifacts written before tasks existed are classifiers)."""
    return get_task(info.get("task", DEFAULT_TASK))


def load_data(config: Any) -> Any:
    """The run's task data (a :class:`edgedistill.data.task_data.TaskData`), read the way its task reads it."""
    return get_task(config.task).load_data(config.data, config.seed)
