"""The PyTorch reference backend: teacher, student and baseline checkpoints as they are.

Every other backend is verified against this runner, and the benchmark measures it side by side.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from edgedistill.backends.base import Artifact, Calibration
from edgedistill.config import TargetConfig
from edgedistill.errors import ConfigError
from edgedistill.models import load_classifier
from edgedistill.segments import model_sep_token_id, segment_ids
from edgedistill.target_options import BACKEND_PRECISIONS

WEIGHT_FILES = ("model.safetensors", "config.json")


class PyTorchRunner:
    """``predict`` on a ``save_pretrained`` classifier folder, fp32, eval mode, no gradients."""

    def __init__(self, model_dir: Path, threads: int):
        torch.set_num_threads(threads)
        self.model = load_classifier(model_dir).eval()
        self.sep_token_id = model_sep_token_id(model_dir, self.model)

    @torch.inference_mode()
    def predict(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        ids = torch.from_numpy(np.asarray(input_ids, dtype=np.int64))
        extra = {}
        if self.sep_token_id is not None:
            extra["token_type_ids"] = segment_ids(ids, self.sep_token_id)
        logits = self.model(input_ids=ids, attention_mask=torch.from_numpy(np.asarray(attention_mask, dtype=np.int64)),
                            **extra).logits
        return logits.float().numpy()


class PyTorchBackend:
    name = "pytorch"
    precisions = BACKEND_PRECISIONS["pytorch"]

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
