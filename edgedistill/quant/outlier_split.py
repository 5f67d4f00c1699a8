"""Outlier channels computed by their own matrix multiply, so one int8 scale per tensor still resolves the rest.

The feed-forward output of BERT-family layers carries a few huge channels: in the default SST-2 student one
hidden dimension of ``ffn.lin2`` peaks about a hundred times above the median channel on real text
(``benchmarks/results/int8-recipes.md``). A full-integer FULLY_CONNECTED requantizes its output to int8 with one scale for
the whole tensor, so those channels take the 256 levels and the others fall on a handful of them: these were
the worst tensors of the TFLite int8 student (``edgedistill verify --layers``).
ONNX sidesteps it (its MatMuls return float); TFLite's and the NPUs' integer kernels cannot.

The rewrite keeps the function and moves the outliers: a linear layer ``y = W x + b`` with outlier output
channels ``S`` becomes ``y = W' x + b' + E (W_S x + b_S)``, where ``W'``, ``b'`` have the rows of ``S``
zeroed, ``W_S``, ``b_S`` are those rows (a narrow layer, ``len(S)`` outputs) and ``E`` is a one-hot
``len(S) -> out`` layer that puts them back (litert-torch lowers it to a broadcast multiply when ``S`` is
one channel). In float it is the same model; quantized, the wide output
gets a scale fit for its ordinary channels and the outliers get a tensor (and a scale) of their own.
Cost: ``len(S) * (in + out)`` MACs per token, under 1% of the layer's.

The same holds on the input side, where Core ML's W8A8 puts its one activation scale (the linear layers'
inputs are quantized, their outputs stay fp16). In the SST-2 student the inputs carry the residual stream's
outlier dimension after each layer norm and single GELU channels before ``ffn.lin2``, each an order of
magnitude above the median channel (``benchmarks/results/coreml-w8a8-inputs.md``). A layer with outlier input channels ``S`` becomes
``y = W' (x * m) + W_S x_S + b``: ``m`` zeroes ``S`` (so the wide input's range, and its scale, is that of
the ordinary channels), ``W'`` is ``W`` with the columns of ``S`` zeroed, and ``x_S`` (a gather of ``len(S)``
channels) feeds a narrow layer with the columns of ``S``, its input quantized with a scale of its own.

TFLite's full-integer FULLY_CONNECTED quantizes both: its input (one scale per tensor) and its requantized
output. Splitting both sides of one layer splits the input first, then each of the two resulting layers on
the output side (the same output channels), so every integer tensor has its outliers apart.

Outlier channels are found on calibration text: a channel whose largest magnitude exceeds ``ratio`` times
the median channel's largest magnitude, at most ``max_channels`` per layer. A plan maps each side split
(``output``: TFLite; ``input``: Core ML, and TFLite too) to its ``{layer: channels}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from edgedistill.data.encoding import Example

log = logging.getLogger("edgedistill.outlier_split")

PLAN_FILE = "outlier_split.json"
Side = Literal["output", "input"]
Plan = dict[str, dict[str, list[int]]]  # side -> {linear module name: outlier channels}


def find_outlier_channels(model: Any, tokenizer: Any, inputs: Sequence[Example], max_length: int, ratio: float,
                          max_channels: int = 8, batch_size: int = 16, side: Side = "output",
                          skip_last: int = 0) -> dict[str, list[int]]:
    """``{linear module name: [outlier channels]}`` of ``model`` on ``inputs`` (sentences or sentence pairs;
    modules with none left out): the layers' output channels, or with ``side="input"`` their input channels.
    ``skip_last``: the last linear layers (a classification head the export keeps float) are left alone."""
    peaks: dict[str, torch.Tensor] = {}

    def observer(name: str):
        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
            seen = output if side == "output" else inputs[0]
            peak = seen.detach().abs().flatten(0, -2).amax(dim=0)
            peaks[name] = torch.maximum(peaks[name], peak) if name in peaks else peak
        return hook

    linears = [(name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    handles = [module.register_forward_hook(observer(name))
               for name, module in linears[:len(linears) - skip_last]]
    try:
        with torch.no_grad():
            for start in range(0, len(inputs), batch_size):
                batch = tokenizer(list(inputs[start:start + batch_size]), padding=True, truncation=True,
                                  max_length=max_length, return_tensors="pt")
                model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for handle in handles:
            handle.remove()
    plan = {}
    for name, peak in peaks.items():
        if peak.numel() < 4:  # a classifier's few logits: nothing to single out
            continue
        median = float(peak.median())
        order = torch.argsort(peak, descending=True)[:max_channels]
        channels = sorted(int(c) for c in order if float(peak[c]) > ratio * max(median, 1e-12))
        if channels:
            plan[name] = channels
            log.info("outlier split: %s %s channels %s peak %s against median %.3g", name, side, channels,
                     [round(float(peak[c]), 1) for c in channels], median)
    return plan


def split_outlier_channels(model: nn.Module, plan: dict[str, list[int]], side: Side = "output") -> nn.Module:
    """Replace each linear layer named in ``plan`` by its :class:`SplitLinear` (or, for ``side="input"``,
    :class:`InputSplitLinear`); returns ``model``. An output split of a layer already split on its input
    splits both of its parts."""
    modules = dict(model.named_modules())
    missing = sorted(set(plan) - set(modules))
    if missing:
        raise ValueError(f"outlier split plan names layers this model does not have: {missing}")
    for name, channels in plan.items():
        module = modules[name]
        if side == "output" and isinstance(module, InputSplitLinear):
            module.inliers = SplitLinear(module.inliers, channels)
            module.outliers = SplitLinear(module.outliers, channels)
            continue
        parent_name, _, attribute = name.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        split = SplitLinear if side == "output" else InputSplitLinear
        setattr(parent, attribute, split(module, channels))
    return model


def apply_plan(model: nn.Module, plan: Plan) -> nn.Module:
    """Every side of ``plan`` split into ``model``: the input side first (see the module's docstring)."""
    for side in ("input", "output"):
        if plan.get(side):
            split_outlier_channels(model, plan[side], side)  # type: ignore[arg-type]
    return model


class SplitLinear(nn.Module):
    """``linear`` with the output ``channels`` computed apart and added back (the same function in float)."""

    def __init__(self, linear: nn.Linear, channels: Sequence[int]):
        super().__init__()
        index = torch.tensor(list(channels), dtype=torch.long)
        out_features, in_features = linear.weight.shape
        bias = linear.bias.detach().clone() if linear.bias is not None else torch.zeros(out_features)
        self.inliers = nn.Linear(in_features, out_features)
        self.outliers = nn.Linear(in_features, len(channels))
        self.scatter = nn.Linear(len(channels), out_features, bias=False)
        with torch.no_grad():
            weight = linear.weight.detach().clone()
            self.outliers.weight.copy_(weight[index])
            self.outliers.bias.copy_(bias[index])
            weight[index], bias[index] = 0.0, 0.0
            self.inliers.weight.copy_(weight)
            self.inliers.bias.copy_(bias)
            self.scatter.weight.zero_()
            self.scatter.weight[index, torch.arange(len(channels))] = 1.0
        self.scatter.weight.requires_grad_(False)  # fixed routing: training moves the rows, not where they go

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inliers(x) + self.scatter(self.outliers(x))

    def merged(self) -> nn.Linear:
        """The one ``nn.Linear`` computing the same function: ``W = W' + E W_S``, ``b = b' + E b_S``."""
        inliers = self.inliers
        linear = nn.Linear(inliers.in_features, inliers.out_features)
        with torch.no_grad():
            linear.weight.copy_(inliers.weight + self.scatter.weight @ self.outliers.weight)
            linear.bias.copy_(inliers.bias + self.scatter.weight @ self.outliers.bias)
        return linear


class InputSplitLinear(nn.Module):
    """``linear`` with the input ``channels`` multiplied apart and added back (the same function in float)."""

    def __init__(self, linear: nn.Linear, channels: Sequence[int]):
        super().__init__()
        out_features, in_features = linear.weight.shape
        self.register_buffer("index", torch.tensor(list(channels), dtype=torch.long))
        keep = torch.ones(in_features)
        keep[self.index] = 0.0
        self.register_buffer("keep", keep)
        self.inliers = nn.Linear(in_features, out_features, bias=linear.bias is not None)
        self.outliers = nn.Linear(len(channels), out_features, bias=False)
        with torch.no_grad():
            weight = linear.weight.detach().clone()
            self.outliers.weight.copy_(weight[:, self.index])
            weight[:, self.index] = 0.0
            self.inliers.weight.copy_(weight)
            if linear.bias is not None:
                self.inliers.bias.copy_(linear.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inliers(x * self.keep) + self.outliers(x.index_select(-1, self.index))

    def merged(self) -> nn.Linear:
        """The one ``nn.Linear`` computing the same function: ``W = W'`` with the columns of ``S`` restored."""
        inliers = self.inliers
        linear = nn.Linear(inliers.in_features, inliers.out_features, bias=inliers.bias is not None)
        with torch.no_grad():
            weight = inliers.weight.detach().clone()
            weight[:, self.index] = self.outliers.weight
            linear.weight.copy_(weight)
            if inliers.bias is not None:
                linear.bias.copy_(inliers.bias)
        return linear


def merge_outlier_split(model: nn.Module) -> nn.Module:
    """Put every split layer of ``model`` back into one ``nn.Linear`` (to save an ordinary checkpoint)."""
    for name, child in list(model.named_children()):
        merge_outlier_split(child)  # the parts of a layer split on both sides first
        if isinstance(child, (SplitLinear, InputSplitLinear)):
            setattr(model, name, child.merged())
    return model


def plan_outlier_split(model_dir: Path, cls_only_last_layer: bool, calibration: Any, ratio: float,
                       out_dir: Path, sides: Sequence[Side] = ("output",), skip_last: int = 0) -> Plan:
    """Find the outlier channels of the model an exporter will trace, on the calibration text, on each of
    ``sides`` (``skip_last``: see :func:`find_outlier_channels`), and record them in
    ``out_dir``/``outlier_split.json`` beside the artifact (read back by :func:`read_plan`)."""
    from transformers import AutoTokenizer

    from edgedistill.core.atomic import write_json_atomic
    from edgedistill.quant.cls_pruning import load_for_export

    model, _ = load_for_export(model_dir, cls_only_last_layer)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    plan = {side: find_outlier_channels(model, tokenizer, calibration.inputs, calibration.max_length, ratio,
                                        side=side, skip_last=skip_last) for side in sides}
    write_json_atomic(Path(out_dir) / PLAN_FILE, {"ratio": ratio, "calibration_sentences": len(calibration.inputs),
                                                  "channels": plan})
    return plan


def read_plan(folder: Path) -> Plan | None:
    """The outlier channels, by side, an artifact in ``folder`` was exported with; None when it was not split.
    (Artifacts written before a plan could hold both sides record one ``side`` and its channels.)"""
    path = Path(folder) / PLAN_FILE
    if not path.is_file():
        return None
    recorded = json.loads(path.read_text(encoding="utf-8"))
    return {recorded["side"]: recorded["channels"]} if "side" in recorded else recorded["channels"]
