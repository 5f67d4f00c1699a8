"""The PyTorch reference backend: teacher, student and baseline checkpoints as they are.

Every other backend is verified against this runner, and the benchmark measures it side by side.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from edgedistill.export.backends.base import Artifact, Calibration
from edgedistill.core.config import TargetConfig
from edgedistill.core.errors import ConfigError
from edgedistill.data.segments import model_sep_token_id
from edgedistill.tasks import task_of_model
from edgedistill.core.registry import FORMATS

WEIGHT_FILES = ("model.safetensors", "config.json")


class PyTorchRunner:
    """``predict`` on a ``save_pretrained`` folder of any task, fp32, eval mode, no gradients: the task's export
    module (:meth:`edgedistill.tasks.base.Task.export_module`) on the unmodified checkpoint, so the reference
    computes what an exported file computes, token types derived from the ids where the model embeds them."""

    def __init__(self, model_dir: Path, threads: int):
        torch.set_num_threads(threads)
        task = task_of_model(Path(model_dir))
        self.model = task.load_model(model_dir).eval()
        self.sep_token_id = model_sep_token_id(Path(model_dir), self.model)
        self.module = task.export_module(self.model, None, self.sep_token_id)

    @torch.inference_mode()
    def predict(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        ids = torch.from_numpy(np.asarray(input_ids, dtype=np.int64))
        mask = torch.from_numpy(np.asarray(attention_mask, dtype=np.int64))
        return self.module(ids, mask).float().numpy()


class PyTorchBackend:
    name = "pytorch"
    precisions = FORMATS["pytorch"].precisions

    def export(self, model_dir: Path, target: TargetConfig, calibration: Calibration | None,
               out_dir: Path) -> list[Path]:
        if target.precision != "fp32":
            raise ConfigError(f"target {target.name}: the pytorch backend runs fp32 only, "
                              f"got precision {target.precision!r}")
        files = []
        for name in WEIGHT_FILES:
            shutil.copy2(Path(model_dir) / name, out_dir / name)
            files.append(out_dir / name)
        return files

    def load(self, artifact: Artifact, threads: int) -> PyTorchRunner:
        return PyTorchRunner(artifact.path, threads)


BACKEND = PyTorchBackend()
