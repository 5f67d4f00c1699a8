"""Reading a quantized TFLite file: its integer coverage, XNNPACK delegation, and per-tensor quantization error.

ai-edge-quantizer keeps the float model's tensor names and adds ``*_quantized`` / ``*_dequant`` tensors
around the ops it quantizes, so every integer tensor can be matched with its float original. The
flatbuffer is read with ai-edge-quantizer's own parser; tensors are read back from LiteRT's reference
kernels (``experimental_preserve_all_tensors``: XNNPACK would reuse their buffers). Imports ai-edge-*:
the TFLite backend imports this module when it needs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.data.encoding import signature_bucket, signature_name
from edgedistill.quant.report import (COVERAGE_SEQ, ClipCounter, MatmulWork, SqnrAccumulator, TensorError,
                                      coverage)

_FLOAT32, _INT8, _INT16 = 0, 9, 7  # tflite TensorType codes
_BITS = {_INT8: 8, _INT16: 16, 3: 8}  # 3: UINT8
_FUSED_ACTIVATIONS = {1: (0.0, np.inf), 2: (-1.0, 1.0), 3: (0.0, 6.0)}  # RELU, RELU_N1_TO_1, RELU6


def _op_names() -> dict[int, str]:
    from ai_edge_litert import schema_py_generated as schema

    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def _op_types(model: Any) -> list[str]:
    """The builtin op name of each operator code of a flatbuffer model, by code index."""
    names = _op_names()
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    return [names.get(code, str(code)) for code in codes]


def tensor_name(tensor: Any) -> str:
    return tensor.name.decode("utf-8") if isinstance(tensor.name, bytes) else str(tensor.name)


class FlatModel:
    """One signature's subgraph of a TFLite file: its ops as (type, inputs, outputs) and its tensors."""

    def __init__(self, path: Path, signature: str):
        from ai_edge_quantizer.utils import tfl_flatbuffer_utils

        self.model = tfl_flatbuffer_utils.read_model(Path(path))
        keys = {(s.signatureKey.decode() if isinstance(s.signatureKey, bytes) else s.signatureKey): s.subgraphIndex
                for s in self.model.signatureDefs}
        if signature not in keys:
            raise KeyError(f"{path} has no signature {signature!r} (it has {', '.join(keys)})")
        self.subgraph_index = keys[signature]
        self.subgraph = self.model.subgraphs[self.subgraph_index]
        types = _op_types(self.model)
        self.ops = [(types[op.opcodeIndex], [i for i in op.inputs if i >= 0], list(op.outputs), op)
                    for op in self.subgraph.operators]
        self.tensors = self.subgraph.tensors
        self._read = tfl_flatbuffer_utils.get_tensor_data

    def constant(self, index: int) -> np.ndarray | None:
        return self._read(self.tensors[index], self.model.buffers)

    def by_name(self) -> dict[str, int]:
        return {tensor_name(t): i for i, t in enumerate(self.tensors)}


def head_scopes(model_path: Path, count: int = 2) -> set[str]:
    """ai-edge-quantizer's scope names (output tensor names) of every signature's last ``count`` FULLY_CONNECTED
    ops: a BERT-family classification head (pre-classifier or pooler dense, then the classifier)."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils

    model = tfl_flatbuffer_utils.read_model(Path(model_path))
    types = _op_types(model)
    scopes = set()
    for subgraph in model.subgraphs:
        fcs = [op for op in subgraph.operators if types[op.opcodeIndex] == "FULLY_CONNECTED"]
        scopes.update(tfl_flatbuffer_utils.get_op_scope(op, subgraph.tensors) for op in fcs[-count:])
    return scopes


def single_row_scopes(model_path: Path, batch: int) -> set[str]:
    """ai-edge-quantizer's scope names of the FULLY_CONNECTED and BATCH_MATMUL ops that compute one row per
    sequence (``batch`` rows in all), in every signature: the [CLS] row's query, attention, attention output
    and feed-forward in a last layer that runs on that row alone, and the classification head."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils

    model = tfl_flatbuffer_utils.read_model(Path(model_path))
    types = _op_types(model)
    scopes = set()
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            op_type = types[op.opcodeIndex]
            shape = [int(d) for d in subgraph.tensors[op.outputs[0]].shape]
            if (op_type == "FULLY_CONNECTED" and int(np.prod(shape[:-1])) == batch
                    or op_type == "BATCH_MATMUL" and len(shape) >= 2 and shape[-2] == 1):
                scopes.add(tfl_flatbuffer_utils.get_op_scope(op, subgraph.tensors))
    return scopes


def coverage_signature(signatures: Iterable[str]) -> str:
    """The bucket integer coverage is counted on: 128 tokens, else the largest bucket."""
    buckets = sorted(b for b in map(signature_bucket, signatures) if b is not None)
    return signature_name(COVERAGE_SEQ if COVERAGE_SEQ in buckets else buckets[-1])


def integer_coverage(model_path: Path, signature: str) -> dict[str, Any]:
    """Share of matrix-multiply MACs with int8 weights and int8 activations, and the op types left in float."""
    graph = FlatModel(model_path, signature)
    work, float_ops = [], set()
    for op_type, inputs, outputs, op in graph.ops:
        types = [graph.tensors[i].type for i in inputs]
        if op_type in ("FULLY_CONNECTED", "BATCH_MATMUL"):
            lhs, rhs = graph.tensors[inputs[0]], graph.tensors[inputs[1]]
            if op_type == "FULLY_CONNECTED":
                inner = int(rhs.shape[-1])
            else:
                adj_x = bool(getattr(op.builtinOptions, "adjX", False))
                inner = int(lhs.shape[-2] if adj_x else lhs.shape[-1])
            macs = int(np.prod(graph.tensors[outputs[0]].shape)) * inner
            if lhs.type == _INT8 and rhs.type == _INT8:
                arithmetic = "int8"
            elif lhs.type == _INT16:
                arithmetic = "int16"
            elif lhs.type == _FLOAT32 and rhs.type == _INT8:
                arithmetic = "dynamic-int8"  # XNNPACK quantizes the float input at run time
            else:
                arithmetic = "float"
            work.append(MatmulWork(macs, arithmetic))
            if arithmetic in ("int8", "int16"):
                continue
        if op_type in ("QUANTIZE", "DEQUANTIZE"):
            continue
        if _FLOAT32 in types:
            float_ops.add(op_type)
    return coverage(work, float_ops, {"signature": signature}, seq=signature_bucket(signature))


def xnnpack_delegation(model_path: Path) -> dict[str, Any]:
    """Which ops LiteRT's default XNNPACK delegate takes, read from the interpreter after delegation.

    Each ``DELEGATE`` node is one XNNPACK partition: the ops that produce its outputs, and their producers
    back to the partition's inputs, run in XNNPACK; every other op runs on LiteRT's reference kernels.
    LiteRT exposes the primary signature's nodes only; the bucket signatures are the same graph at other
    shapes."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(model_path), num_threads=1)
    interpreter.allocate_tensors()
    nodes = interpreter._get_ops_details()  # noqa: SLF001 (the public API has no per-node view)
    partitions = [n for n in nodes if n["op_name"] == "DELEGATE"]
    ops = [n for n in nodes if n["op_name"] != "DELEGATE"]
    boundary = {int(t) for p in partitions for t in p["inputs"]}
    producer = {int(t): i for i, op in enumerate(ops) for t in op["outputs"]}
    delegated: set[int] = set()
    pending = [producer[int(t)] for p in partitions for t in p["outputs"] if int(t) in producer]
    while pending:
        index = pending.pop()
        if index in delegated:
            continue
        delegated.add(index)
        pending += [producer[int(t)] for t in ops[index]["inputs"] if int(t) not in boundary and int(t) in producer]
    left: dict[str, int] = {}
    for i, op in enumerate(ops):
        if i not in delegated:
            left[op["op_name"]] = left.get(op["op_name"], 0) + 1
    signature = next(iter(interpreter.get_signature_list()), "")
    return {"signature": signature, "ops": len(ops), "delegated_ops": len(delegated), "partitions": len(partitions),
            "fraction": round(len(delegated) / len(ops), 4) if ops else 0.0,
            "not_delegated": dict(sorted(left.items(), key=lambda kv: -kv[1]))}


def _dequantize(values: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    params = detail["quantization_parameters"]
    scales, zero_points = params["scales"].astype(np.float64), params["zero_points"].astype(np.float64)
    if scales.size > 1:
        shape = [1] * values.ndim
        shape[params["quantized_dimension"]] = scales.size
        scales, zero_points = scales.reshape(shape), zero_points.reshape(shape)
    return (values.astype(np.float64) - zero_points) * scales


def _range(detail: dict[str, Any]) -> tuple[float, float]:
    info = np.iinfo(detail["dtype"])
    params = detail["quantization_parameters"]
    scale, zero_point = float(params["scales"].max()), float(params["zero_points"].max())
    return (info.min - zero_point) * scale, (info.max - zero_point) * scale


def layer_errors(quant_path: Path, float_path: Path, feeds: Iterable[dict[str, np.ndarray]],
                 signature: str) -> list[TensorError]:
    """Per-tensor quantization error of a quantized TFLite file against the float file it came from."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    quant, reference = FlatModel(quant_path, signature), FlatModel(float_path, signature)
    float_index = reference.by_name()
    rows: list[TensorError] = []
    readers: dict[int, set[str]] = {}
    for op_type, inputs, _, _ in quant.ops:
        for index in inputs:
            readers.setdefault(index, set()).add(op_type)
    watched: list[tuple[str, int, int, str]] = []  # (kind, float-side index, integer index, ops)
    integer_ops: dict[int, tuple[str, list[int], Any]] = {}  # integer output -> the op that wrote it
    for op_type, inputs, outputs, op in quant.ops:
        if op_type == "QUANTIZE" and quant.tensors[inputs[0]].type == _FLOAT32:
            ops = "/".join(sorted(readers.get(outputs[0], set()))) or "–"
            watched.append(("activation", inputs[0], outputs[0], ops))
        elif op_type in ("FULLY_CONNECTED", "BATCH_MATMUL") and quant.tensors[outputs[0]].type in _BITS:
            watched.append(("output", -1, outputs[0], op_type))
            integer_ops[outputs[0]] = (op_type, inputs, op)
            weight = inputs[1]
            name = tensor_name(quant.tensors[weight])
            data = quant.constant(weight)
            if data is not None and name in float_index and quant.tensors[weight].type in _BITS:
                rows.append(_weight_error(quant, reference, weight, float_index[name], data, op_type))

    def interpreter(path: Path) -> Any:
        it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        return it, it.get_signature_runner(signature)

    (q_it, q_run), (f_it, f_run) = interpreter(quant_path), interpreter(float_path)
    q_details = {d["index"]: d for d in q_it.get_tensor_details(quant.subgraph_index)}
    local = {w[2]: SqnrAccumulator() for w in watched}
    accumulated = {w[2]: SqnrAccumulator() for w in watched}
    clips = {w[2]: ClipCounter() for w in watched}
    for feed in feeds:
        q_run(**feed)
        f_run(**feed)
        for kind, source, target, _ in watched:
            detail = q_details[target]
            value = _dequantize(q_it.get_tensor(target, quant.subgraph_index), detail)
            name = tensor_name(quant.tensors[source if kind == "activation" else target])
            if kind == "activation":
                original = q_it.get_tensor(source, quant.subgraph_index)
                clips[target].add(original, *_range(detail))
            else:  # the op in float on its own (dequantized) inputs: what requantizing its output costs
                original = _float_result(q_it, quant.subgraph_index, q_details, *integer_ops[target])
            local[target].add(np.reshape(original, value.shape), value)
            if name in float_index:
                accumulated[target].add(f_it.get_tensor(float_index[name], reference.subgraph_index), value)
    for kind, source, target, ops in watched:
        name = tensor_name(quant.tensors[source if kind == "activation" else target])
        rows.append(TensorError(name, kind, ops, _BITS[quant.tensors[target].type],
                                local[target].db,
                                accumulated[target].db if accumulated[target].signal else None,
                                clips[target].fraction))
    return rows


def _float_result(interpreter: Any, subgraph: int, details: dict[int, dict[str, Any]], op_type: str,
                  inputs: list[int], op: Any) -> np.ndarray:
    """A FULLY_CONNECTED / BATCH_MATMUL recomputed in float64 from its integer inputs, dequantized."""
    def value(index: int) -> np.ndarray:
        raw = interpreter.get_tensor(index, subgraph)
        detail = details[index]
        return _dequantize(raw, detail) if detail["quantization_parameters"]["scales"].size else raw.astype(np.float64)

    lhs, rhs = value(inputs[0]), value(inputs[1])
    if op_type == "FULLY_CONNECTED":
        result = lhs.reshape(-1, rhs.shape[-1]) @ rhs.T
        if len(inputs) > 2:
            result = result + value(inputs[2])
        activation = getattr(op.builtinOptions, "fusedActivationFunction", 0)
        return np.clip(result, *_FUSED_ACTIVATIONS.get(activation, (-np.inf, np.inf)))
    options = op.builtinOptions
    if getattr(options, "adjX", False):
        lhs = np.swapaxes(lhs, -1, -2)
    if getattr(options, "adjY", False):
        rhs = np.swapaxes(rhs, -1, -2)
    return np.matmul(lhs, rhs)


def _weight_error(quant: FlatModel, reference: FlatModel, index: int, float_index: int, data: np.ndarray,
                  op_type: str) -> TensorError:
    tensor = quant.tensors[index]
    q = tensor.quantization
    detail = {"quantization_parameters": {"scales": np.asarray(q.scale), "zero_points": np.asarray(q.zeroPoint),
                                          "quantized_dimension": q.quantizedDimension}}
    acc = SqnrAccumulator()
    acc.add(reference.constant(float_index), _dequantize(data, detail))
    return TensorError(tensor_name(tensor), "weight", op_type, _BITS[tensor.type], acc.db, acc.db)
