"""Calibration of a full-integer TFLite file: the sentences fed to each bucket signature, and the ranges taken.

A TFLite signature has a fixed shape, so every calibration sentence is padded to its bucket. The padded
rows are computed like real ones, but the attention mask hides them from every real token: nothing they
hold reaches the [CLS] row the classifier reads, and at inference whatever the int8 scale does to them is
as harmless. Their values are not harmless to the ranges, though: on the SST-2 student the pad rows
widened the layer-0 attention projections' input range 1.5x and the query output's 1.7x
(``benchmarks/calibration_padding.py``), so the real tokens' int8 steps were that much coarser.
``calibration_padding: exclude`` (the default, with ``minmax``) takes each FULLY_CONNECTED range from the
real tokens alone; ``include`` keeps what ai-edge-quantizer's calibrator saw (every row).

Each signature also has tensors, and so ranges, of its own: ai-edge-quantizer calibrates a bucket only on
the sentences padded to it (on SST-2's 256 calibration sentences: 246 in the 32-token bucket, 10 in the
64-token one, the 128-token one none but 16 borrowed and padded up). The real-token ranges are taken once
per layer and given to that layer in every signature, so every bucket is calibrated on every sentence.
Imports ai-edge-*: the TFLite backend imports this module when it calibrates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.data.encoding import bucket_feed, signature_name
from edgedistill.export.backends.tflite_quant import FlatModel, tensor_name

Feed = dict[str, np.ndarray]
LayerSide = tuple[int, str]  # (weight buffer, "input" | "output"): one layer's activation, in every signature


def calibration_feeds(tokenizer: Any, inputs: Sequence[Any], buckets: Sequence[int], batch: int
                      ) -> dict[str, list[Feed]]:
    """Each calibration sentence (or pair), padded to its own bucket, fed to that bucket's signature; a bucket
    no sentence fits gets the 16 longest of the largest filled bucket, padded up (every signature needs ranges)."""
    data: dict[str, list[Feed]] = {signature_name(b): [] for b in buckets}
    for example in inputs:
        bucket, feed = bucket_feed(tokenizer, example, buckets, batch)
        data[signature_name(bucket)].append(feed)
    for bucket in buckets:
        name = signature_name(bucket)
        if not data[name]:
            donor = max((s for s in data.values() if s), key=lambda s: s[0]["input_ids"].shape[1])
            for sample in donor[:16]:
                pad = bucket - sample["input_ids"].shape[1]
                data[name].append({k: np.pad(v, ((0, 0), (0, max(pad, 0))))[:, :bucket] for k, v in sample.items()})
    return data


def calibrate(fp32: Path, qt: Any, data: dict[str, list[Feed]], method: str, padding: str) -> dict[str, Any]:
    """Activation ranges (ai-edge-quantizer QSVs) of the ops ``qt``'s recipe quantizes, from ``data``:
    ai-edge-quantizer's own calibration (``moving-average``) or the extremes over every sentence (``minmax``);
    with ``padding="exclude"``, each FULLY_CONNECTED range is then re-taken over the real tokens alone."""
    if method == "moving-average":
        qsvs = qt.calibrate(data, num_threads=1)
    else:
        from ai_edge_quantizer import calibrator, recipe_manager
        from ai_edge_quantizer.utils import qsv_utils

        manager = recipe_manager.RecipeManager()
        manager.load_quantization_recipe(qt.get_quantization_recipe())
        calib = calibrator.Calibrator(str(fp32), num_threads=1, qsv_update_func=qsv_utils.min_max_update)
        calib.calibrate(data, manager)
        qsvs = calib.get_model_qsvs()
    if padding == "exclude" and method == "minmax":
        qsvs = {**qsvs, **real_token_ranges(fp32, data, qsvs)}
    return qsvs


def real_token_ranges(fp32: Path, data: dict[str, list[Feed]], qsvs: dict[str, Any]) -> dict[str, Any]:
    """The min / max of every FULLY_CONNECTED input and output that has a per-tensor QSV in ``qsvs``, over
    the real tokens (attention mask ones) of every sentence in ``data``, in the QSVs' own array shapes.

    Each sentence runs once, in the signature it was padded for, and its ranges go to the same layer in every
    signature: a real token's activations do not depend on the padding after it. Signatures name their
    tensors apart (``...Linear_lin1;2``), but their FULLY_CONNECTED ops read the same weight buffers, which
    is how a layer is recognised across them."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(fp32), experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    graphs = {key: FlatModel(fp32, key) for key in data}
    wanted = {key: {layer: (index, tensor_name(graph.tensors[index]))
                    for layer, index in _fully_connected_tensors(graph).items()
                    if np.size(qsvs.get(tensor_name(graph.tensors[index]), {}).get("min", [])) == 1}
              for key, graph in graphs.items()}  # the float head's layers have no QSV: nothing to take
    low: dict[LayerSide, float] = {}
    high: dict[LayerSide, float] = {}
    for key, feeds in data.items():
        runner = interpreter.get_signature_runner(key)
        for feed in feeds:
            runner(**feed)
            batch, length = feed["attention_mask"].shape
            real = int(feed["attention_mask"].sum(axis=1).max())
            for layer, (index, _) in wanted[key].items():
                value = interpreter.get_tensor(index, graphs[key].subgraph_index)
                rows = value.reshape(batch, -1, value.shape[-1])
                if rows.shape[1] == length:  # a row per token; a [CLS]-row layer has one per sequence, real
                    rows = rows[:, :real]
                low[layer] = min(low.get(layer, np.inf), float(rows.min()))
                high[layer] = max(high.get(layer, -np.inf), float(rows.max()))
    return {name: {**qsvs[name], "min": np.full_like(qsvs[name]["min"], low[layer]),
                   "max": np.full_like(qsvs[name]["max"], high[layer])}
            for layers in wanted.values() for layer, (_, name) in layers.items() if layer in low}


def _fully_connected_tensors(graph: Any) -> dict[LayerSide, int]:
    """Each FULLY_CONNECTED op's activation input and output tensor, keyed by its weight buffer and side (a
    layer whose weights are not a constant has no buffer to be recognised by, and keeps its ranges)."""
    found = {}
    for op_type, inputs, outputs, _ in graph.ops:
        buffer = int(graph.tensors[inputs[1]].buffer) if op_type == "FULLY_CONNECTED" else 0
        if buffer:
            found[(buffer, "input")] = inputs[0]
            found[(buffer, "output")] = outputs[0]
    return found
