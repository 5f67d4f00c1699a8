"""Reading a quantized ONNX graph: its integer coverage, and its per-tensor quantization error.

QDQ graphs (``quantize_static``) mark every integer tensor with a QuantizeLinear -> DequantizeLinear
pair; ONNX Runtime fuses ``DQ -> MatMul`` into integer kernels at load. Dynamic-range graphs
(``ORTQuantizer``, ``quantize_dynamic``) use ``DynamicQuantizeLinear -> MatMulInteger``: integer
arithmetic too, but with activation scales computed at run time, which accelerators do not run.
Imports onnx and onnxruntime: the ONNX backend imports this module when it needs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from edgedistill.quant.report import (COVERAGE_SEQ, ClipCounter, MatmulWork, SqnrAccumulator, TensorError,
                                      coverage)

_QDQ = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
_FLOAT_MATMULS = {"MatMul", "Gemm"}
_INTEGER_MATMULS = {"MatMulInteger", "QLinearMatMul", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QGemm"}
_BITS = {onnx.TensorProto.INT8: 8, onnx.TensorProto.UINT8: 8, onnx.TensorProto.INT16: 16,
         onnx.TensorProto.UINT16: 16, onnx.TensorProto.INT4: 4, onnx.TensorProto.UINT4: 4}
_FLOATS = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}


class QuantGraph:
    """Producers, consumers, initializers and inferred element types of one ONNX graph."""

    def __init__(self, model: onnx.ModelProto):
        self.model = onnx.shape_inference.infer_shapes(model)
        graph = self.model.graph
        self.initializers = {init.name: init for init in graph.initializer}
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers: dict[str, list[Any]] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.types = {v.name: v.type.tensor_type.elem_type
                      for v in [*graph.value_info, *graph.input, *graph.output]}
        self.types.update({name: init.data_type for name, init in self.initializers.items()})

    def integer_bits(self, tensor: str) -> int | None:
        """Bits of the integer tensor a DequantizeLinear output ``tensor`` comes from (None: not a DQ output)."""
        node = self.producer.get(tensor)
        if node is None or node.op_type != "DequantizeLinear":
            return None
        source = node.input[0]
        if source in self.initializers:
            return _BITS.get(self.initializers[source].data_type)
        quantize = self.producer.get(source)
        if quantize is not None and quantize.op_type == "QuantizeLinear" and len(quantize.input) > 2:
            zero_point = quantize.input[2]
            return _BITS.get(self.types.get(zero_point, 0))
        return 8  # QuantizeLinear without a zero point: uint8

    def arithmetic(self, node: Any) -> str:
        """What a matrix multiply runs in: int8 / int16 (QDQ, fixed scales), dynamic-int8, or float."""
        if node.op_type in _INTEGER_MATMULS:
            source = self.producer.get(node.input[0])
            return "dynamic-int8" if source is not None and source.op_type == "DynamicQuantizeLinear" else "int8"
        bits = [self.integer_bits(name) for name in node.input[:2]]
        if any(b is None for b in bits):
            return "float"
        return "int8" if max(bits) <= 8 else f"int{max(bits)}"

    def is_float_compute(self, node: Any) -> bool:
        if node.op_type in _QDQ or node.op_type in _INTEGER_MATMULS:
            return False
        if node.op_type in _FLOAT_MATMULS and self.arithmetic(node) != "float":
            return False
        return any(self.types.get(name) in _FLOATS for name in node.input if name)


def _with_outputs(model: onnx.ModelProto, names: Iterable[str], types: dict[str, int]) -> bytes:
    """The model with extra graph outputs (intermediate tensors), serialized for a session."""
    augmented = onnx.ModelProto()
    augmented.CopyFrom(model)
    present = {o.name for o in augmented.graph.output}
    for name in dict.fromkeys(names):
        if name not in present:
            augmented.graph.output.append(onnx.helper.make_tensor_value_info(name, types.get(name, 1), None))
    return augmented.SerializeToString()


def _session(model_bytes: bytes, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor by name
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _feed(session: Any, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
    feed = {"input_ids": ids.astype(np.int64), "attention_mask": mask.astype(np.int64),
            "token_type_ids": np.zeros_like(ids, dtype=np.int64)}
    wanted = {i.name for i in session.get_inputs()}
    return {k: v for k, v in feed.items() if k in wanted}


def integer_coverage(model_path: Path, threads: int = 1) -> dict[str, Any]:
    """Share of matrix-multiply MACs in int8 at batch 1 x 128 tokens, and the op types left in float."""
    graph = QuantGraph(onnx.load(str(model_path)))
    matmuls = [n for n in graph.model.graph.node if n.op_type in _FLOAT_MATMULS | _INTEGER_MATMULS]
    session = _session(_with_outputs(graph.model, [n.input[0] for n in matmuls] + [n.output[0] for n in matmuls],
                                     graph.types), threads)
    seq = _coverage_length(model_path)
    ids = np.ones((1, seq), dtype=np.int64)  # any in-vocabulary id: only the shapes matter
    names = [o.name for o in session.get_outputs()]
    values = dict(zip(names, session.run(names, _feed(session, ids, np.ones_like(ids))), strict=True))
    work = []
    for node in matmuls:
        a, out = values[node.input[0]], values[node.output[0]]
        transposed = node.op_type == "Gemm" and any(att.name == "transA" and att.i for att in node.attribute)
        inner = a.shape[0] if transposed else a.shape[-1]
        work.append(MatmulWork(int(np.prod(out.shape)) * int(inner), graph.arithmetic(node)))
    float_ops = {n.op_type for n in graph.model.graph.node if graph.is_float_compute(n)}
    return coverage(work, float_ops, seq=seq)


def _coverage_length(model_path: Path) -> int:
    """COVERAGE_SEQ tokens, or fewer for a model whose position table (its ``config.json`` beside the file)
    stops earlier."""
    import json
    from types import SimpleNamespace

    from edgedistill.core.families import longest_sequence

    config_file = Path(model_path).parent / "config.json"
    if not config_file.is_file():
        return COVERAGE_SEQ
    config = SimpleNamespace(**json.loads(config_file.read_text(encoding="utf-8")))
    return min(COVERAGE_SEQ, longest_sequence(config))


def _quant_params(graph: QuantGraph, node: Any) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """scale, zero point, axis, qmin, qmax of a QuantizeLinear / DequantizeLinear node."""
    scale = numpy_helper.to_array(graph.initializers[node.input[1]]).astype(np.float64)
    if len(node.input) > 2 and node.input[2] in graph.initializers:
        zero_point = numpy_helper.to_array(graph.initializers[node.input[2]])
    else:
        zero_point = np.zeros_like(scale, dtype=np.uint8)
    info = np.iinfo(zero_point.dtype)
    axis = next((att.i for att in node.attribute if att.name == "axis"), 1)
    return scale, zero_point.astype(np.float64), axis, int(info.min), int(info.max)


def _dequantize_weight(graph: QuantGraph, dq: Any) -> np.ndarray:
    scale, zero_point, axis, _, _ = _quant_params(graph, dq)
    values = numpy_helper.to_array(graph.initializers[dq.input[0]]).astype(np.float64)
    if scale.ndim == 1 and scale.size > 1:  # per channel
        shape = [1] * values.ndim
        shape[axis] = scale.size
        scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
    return (values - zero_point) * scale


def _layer_names(graph: QuantGraph, tensor: str) -> list[str]:
    return sorted({n.name for n in graph.consumers.get(tensor, []) if n.op_type not in _QDQ})


def layer_errors(quant_path: Path, float_path: Path, batches: Iterable[tuple[np.ndarray, np.ndarray]],
                 threads: int = 1) -> list[TensorError]:
    """Per-tensor quantization error of a QDQ graph against the float graph it was quantized from."""
    graph = QuantGraph(onnx.load(str(quant_path)))
    float_model = onnx.load(str(float_path))
    float_weights = {init.name: init for init in float_model.graph.initializer}
    rows: list[TensorError] = []
    activations: list[tuple[str, str, Any]] = []  # (float tensor, its dequantized twin, the QuantizeLinear)
    for node in graph.model.graph.node:
        if node.op_type != "DequantizeLinear":
            continue
        readers = [n for n in graph.consumers.get(node.output[0], []) if n.op_type not in _QDQ]
        ops = "/".join(sorted({n.op_type for n in readers})) or "–"
        source = node.input[0]
        if source in graph.initializers:  # a weight: compare with the float graph's initializer
            original = source.removesuffix("_quantized")
            if original in float_weights:
                reference = numpy_helper.to_array(float_weights[original]).astype(np.float64)
                acc = SqnrAccumulator()
                acc.add(reference, _dequantize_weight(graph, node))
                rows.append(TensorError(original, "weight", ops, graph.integer_bits(node.output[0]) or 8, acc.db,
                                        acc.db, None, sorted(n.name for n in readers)))
            continue
        quantize = graph.producer.get(source)
        if quantize is not None and quantize.op_type == "QuantizeLinear":
            activations.append((quantize.input[0], node.output[0], quantize))
    if not activations:
        return rows
    float_names = {out for node in float_model.graph.node for out in node.output} | {
        i.name for i in float_model.graph.input}
    quant_session = _session(_with_outputs(graph.model, [n for a in activations for n in a[:2]], graph.types), threads)
    float_graph = QuantGraph(float_model)
    float_session = _session(_with_outputs(float_graph.model, [a[0] for a in activations if a[0] in float_names],
                                           float_graph.types), threads)
    local = {a[0]: SqnrAccumulator() for a in activations}
    accumulated = {a[0]: SqnrAccumulator() for a in activations}
    clips = {a[0]: ClipCounter() for a in activations}
    params = {a[0]: _quant_params(graph, a[2]) for a in activations}
    quant_names = [o.name for o in quant_session.get_outputs()]
    float_outputs = [o.name for o in float_session.get_outputs()]
    for ids, mask in batches:
        q_values = dict(zip(quant_names, quant_session.run(quant_names, _feed(quant_session, ids, mask)), strict=True))
        f_values = dict(zip(float_outputs, float_session.run(float_outputs, _feed(float_session, ids, mask)),
                            strict=True))
        for tensor, twin, _ in activations:
            local[tensor].add(q_values[tensor], q_values[twin])
            if tensor in f_values:
                accumulated[tensor].add(f_values[tensor], q_values[twin])
            scale, zero_point, _, qmin, qmax = params[tensor]
            clips[tensor].add(q_values[tensor], float((qmin - zero_point.max()) * scale.max()),
                              float((qmax - zero_point.min()) * scale.max()))
    for tensor, twin, _ in activations:
        readers = [n for n in graph.consumers.get(twin, []) if n.op_type not in _QDQ]
        rows.append(TensorError(tensor, "activation", "/".join(sorted({n.op_type for n in readers})) or "–",
                                graph.integer_bits(twin) or 8, local[tensor].db,
                                accumulated[tensor].db if accumulated[tensor].signal else None,
                                clips[tensor].fraction, _layer_names(graph, twin)))
    return rows
