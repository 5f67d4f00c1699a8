"""A numpy interpreter for saved Core ML ML Programs: Core ML numerics on a machine without Core ML.

coremltools converts on Linux, but ``MLModel.predict`` needs macOS. This module loads the ``.mlpackage``
back into a MIL program with coremltools' own proto loader (weights from ``weight.bin``, compressed
weights expanded by coremltools' ``materialized_val_inference``) and executes it op by op in numpy.

What it emulates, and what it does not:

* each op is computed in float32 and its result rounded to the op's declared output dtype, so an fp16
  program carries fp16 activations between ops, as the Core ML GPU and Neural Engine do; inside an op
  (matmul, softmax, layer norm) accumulation is float32, which the hardware may not match bit for bit;
* shapes are concrete: the program runs on the actual input shape, so flexible (enumerated or range)
  models are emulated at the shape a caller feeds, after the caller checks the shape is one the model
  declares;
* it is slow and says nothing about Core ML latency. Every number it produces is labelled emulated.

An op type without a rule raises :class:`UnsupportedOpError` naming it, never a silent approximation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.core.errors import ModelError

Rule = Callable[[dict[str, Any]], Any]
_RULES: dict[str, Rule] = {}


class UnsupportedOpError(ModelError):
    """The program uses an op type the emulator has no numpy rule for."""


def rule(*op_types: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for op_type in op_types:
            _RULES[op_type] = fn
        return fn
    return register


def _f32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x.astype(np.float32) if np.issubdtype(x.dtype, np.floating) else x


# --- elementwise ---------------------------------------------------------------------------------------
_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "real_div": np.true_divide,
           "floor_div": np.floor_divide, "pow": np.power, "maximum": np.maximum, "minimum": np.minimum,
           "equal": np.equal, "not_equal": np.not_equal, "less": np.less, "less_equal": np.less_equal,
           "greater": np.greater, "greater_equal": np.greater_equal, "logical_and": np.logical_and,
           "logical_or": np.logical_or}
for _name, _fn in _BINARY.items():
    rule(_name)(lambda a, _fn=_fn: _fn(_f32(a["x"]), _f32(a["y"])))

_UNARY = {"tanh": np.tanh, "exp": np.exp, "sqrt": np.sqrt, "rsqrt": lambda x: 1.0 / np.sqrt(x),
          "relu": lambda x: np.maximum(x, 0), "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
          "logical_not": np.logical_not, "abs": np.abs, "square": np.square, "ceil": np.ceil, "floor": np.floor,
          "sign": np.sign}
for _name, _fn in _UNARY.items():
    rule(_name)(lambda a, _fn=_fn: _fn(_f32(a["x"])))


@rule("log")
def _log(a: dict[str, Any]) -> np.ndarray:
    """``log(x + epsilon)`` (MPNet's relative-position buckets)."""
    x = _f32(a["x"])
    return np.log(x + np.asarray(a.get("epsilon", 1e-45), dtype=x.dtype))


@rule("erf")
def _erf(a: dict[str, Any]) -> np.ndarray:
    from scipy.special import erf

    return erf(_f32(a["x"]))


@rule("gelu")
def _gelu(a: dict[str, Any]) -> np.ndarray:
    x, mode = _f32(a["x"]), str(a.get("mode", "EXACT"))
    if mode == "EXACT":
        from scipy.special import erf

        return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x / (1.0 + np.exp(-1.702 * x))
    raise UnsupportedOpError(f"gelu mode {mode!r} has no emulation rule")


@rule("clip")
def _clip(a: dict[str, Any]) -> np.ndarray:
    return np.clip(_f32(a["x"]), np.float32(a["alpha"]), np.float32(a["beta"]))


@rule("select")
def _select(a: dict[str, Any]) -> np.ndarray:
    return np.where(a["cond"], _f32(a["a"]), _f32(a["b"]))


@rule("cast", "identity")
def _cast(a: dict[str, Any]) -> np.ndarray:
    return np.asarray(a["x"])  # the declared output dtype does the cast


# --- shape ---------------------------------------------------------------------------------------------
@rule("shape")
def _shape(a: dict[str, Any]) -> np.ndarray:
    return np.array(np.shape(a["x"]), dtype=np.int32)


@rule("reshape")
def _reshape(a: dict[str, Any]) -> np.ndarray:
    x, shape = np.asarray(a["x"]), [int(s) for s in a["shape"]]
    shape = [x.shape[i] if s == 0 and len(shape) == x.ndim else s for i, s in enumerate(shape)]
    return x.reshape(shape)


@rule("transpose")
def _transpose(a: dict[str, Any]) -> np.ndarray:
    return np.transpose(a["x"], [int(p) for p in a["perm"]])


@rule("expand_dims")
def _expand_dims(a: dict[str, Any]) -> np.ndarray:
    return np.expand_dims(a["x"], tuple(int(i) for i in a["axes"]))


@rule("squeeze")
def _squeeze(a: dict[str, Any]) -> np.ndarray:
    axes = a.get("axes")
    return np.squeeze(a["x"], None if axes is None else tuple(int(i) for i in axes))


@rule("concat")
def _concat(a: dict[str, Any]) -> np.ndarray:
    if bool(a.get("interleave", False)):
        raise UnsupportedOpError("concat with interleave=True has no emulation rule")
    values = [np.atleast_1d(v) for v in a["values"]]
    return np.concatenate(values, axis=int(a["axis"]))


@rule("tile")
def _tile(a: dict[str, Any]) -> np.ndarray:
    return np.tile(a["x"], [int(r) for r in a["reps"]])


@rule("gather")
def _gather(a: dict[str, Any]) -> np.ndarray:
    if int(a.get("batch_dims", 0)) != 0:
        raise UnsupportedOpError("gather with batch_dims != 0 has no emulation rule")
    return np.take(a["x"], np.asarray(a["indices"]).astype(np.int64), axis=int(a["axis"]))


@rule("gather_along_axis")
def _gather_along_axis(a: dict[str, Any]) -> np.ndarray:
    """DeBERTa's disentangled attention reads its relative-position scores by index along the last axis."""
    x, indices, axis = np.asarray(a["x"]), np.asarray(a["indices"]).astype(np.int64), int(a.get("axis", 0))
    indices = np.where(indices < 0, indices + x.shape[axis], indices)
    return np.take_along_axis(x, indices, axis=axis)


@rule("slice_by_index")
def _slice_by_index(a: dict[str, Any]) -> np.ndarray:
    x = np.asarray(a["x"])
    rank = x.ndim
    begin, end = np.asarray(a["begin"]), np.asarray(a["end"])
    stride = np.asarray(a.get("stride", np.ones(rank, dtype=np.int32)))
    begin_mask = np.asarray(a.get("begin_mask", np.zeros(rank, dtype=bool)))
    end_mask = np.asarray(a.get("end_mask", np.zeros(rank, dtype=bool)))
    squeeze_mask = np.asarray(a.get("squeeze_mask", np.zeros(rank, dtype=bool)))
    index: list[Any] = []
    for dim in range(rank):
        start = None if begin_mask[dim] else int(begin[dim])
        if squeeze_mask[dim]:
            index.append(start or 0)
        else:
            index.append(slice(start, None if end_mask[dim] else int(end[dim]), int(stride[dim])))
    return x[tuple(index)]


# --- compute -------------------------------------------------------------------------------------------
@rule("linear")
def _linear(a: dict[str, Any]) -> np.ndarray:
    out = _f32(a["x"]) @ _f32(a["weight"]).T
    return out + _f32(a["bias"]) if a.get("bias") is not None else out


@rule("matmul")
def _matmul(a: dict[str, Any]) -> np.ndarray:
    x, y = _f32(a["x"]), _f32(a["y"])
    if bool(a.get("transpose_x", False)):
        x = np.swapaxes(x, -1, -2)
    if bool(a.get("transpose_y", False)):
        y = np.swapaxes(y, -1, -2)
    return x @ y


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=axis, keepdims=True)


@rule("softmax")
def _softmax_rule(a: dict[str, Any]) -> np.ndarray:
    return _softmax(_f32(a["x"]), int(a.get("axis", -1)))


@rule("layer_norm")
def _layer_norm(a: dict[str, Any]) -> np.ndarray:
    x = _f32(a["x"])
    axes = tuple(int(i) for i in a["axes"])
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(var + np.float32(a.get("epsilon", 1e-5)))
    if a.get("gamma") is not None:
        out = out * _f32(a["gamma"])
    if a.get("beta") is not None:
        out = out + _f32(a["beta"])
    return out


@rule("scaled_dot_product_attention")
def _sdpa(a: dict[str, Any]) -> np.ndarray:
    q, k, v = _f32(a["query"]), _f32(a["key"]), _f32(a["value"])
    scores = (q @ np.swapaxes(k, -1, -2)) / np.sqrt(np.float32(q.shape[-1]))
    mask = a.get("attn_mask")
    if mask is not None:
        mask = np.asarray(mask)
        scores = np.where(mask, scores, -np.inf) if mask.dtype == bool else scores + _f32(mask)
    return _softmax(scores, -1) @ v


def _per_axis(param: Any, x: np.ndarray, axis: Any) -> np.ndarray:
    """A scale or zero point, shaped to broadcast along ``axis`` of ``x`` when it is a vector."""
    param = np.asarray(param, dtype=np.float32)
    if param.ndim == 1 and param.size > 1:
        shape = [1] * x.ndim
        shape[int(axis) % x.ndim] = param.size
        param = param.reshape(shape)
    return param


@rule("quantize")
def _quantize(a: dict[str, Any]) -> np.ndarray:
    """iOS 17 ``quantize``: round(x / scale) + zero_point, saturated to int8 / uint8 (ties to even)."""
    x = _f32(a["input"])
    dtype = np.dtype(str(a["output_dtype"]))
    scale = _per_axis(a["scale"], x, a.get("axis", -1))
    zero_point = _per_axis(a.get("zero_point", 0), x, a.get("axis", -1))
    info = np.iinfo(dtype)
    return np.clip(np.rint(x / scale) + zero_point, info.min, info.max).astype(dtype)


@rule("dequantize")
def _dequantize(a: dict[str, Any]) -> np.ndarray:
    """iOS 17 ``dequantize``: (q - zero_point) * scale."""
    q = np.asarray(a["input"])
    scale = _per_axis(a["scale"], q, a.get("axis", -1))
    zero_point = _per_axis(a.get("zero_point", 0), q, a.get("axis", -1))
    return (q.astype(np.float32) - zero_point) * scale


@rule("cumsum")
def _cumsum(a: dict[str, Any]) -> np.ndarray:
    """iOS 15 ``cumsum`` along ``axis``; ``exclusive`` leaves each element out of its own sum, ``reverse`` sums
    from the end (a BERT export's token types come from one over its ``[SEP]`` positions)."""
    x, axis = np.asarray(a["x"]), int(a.get("axis", 0))
    if bool(a.get("reverse", False)):
        x = np.flip(x, axis)
    out = np.cumsum(x, axis=axis, dtype=x.dtype)
    if bool(a.get("exclusive", False)):
        out = out - x
    return np.flip(out, axis) if bool(a.get("reverse", False)) else out


_REDUCE = {"reduce_mean": np.mean, "reduce_sum": np.sum, "reduce_max": np.max, "reduce_min": np.min}
for _name, _fn in _REDUCE.items():
    rule(_name)(lambda a, _fn=_fn: _fn(_f32(a["x"]), axis=None if a.get("axes") is None else
                                       tuple(int(i) for i in a["axes"]), keepdims=bool(a.get("keep_dims", False))))


# --- constructed tensors (MPNet's relative positions, MobileBERT's trigram embedding) ----------------------
@rule("fill")
def _fill(a: dict[str, Any]) -> np.ndarray:
    return np.full([int(d) for d in a["shape"]], a.get("value", 0.0))


@rule("fill_like")
def _fill_like(a: dict[str, Any]) -> np.ndarray:
    return np.full(np.shape(a["ref_tensor"]), a.get("value", 0.0))


@rule("range_1d")
def _range_1d(a: dict[str, Any]) -> np.ndarray:
    return np.arange(a["start"], a["end"], a["step"])


@rule("pad")
def _pad(a: dict[str, Any]) -> np.ndarray:
    """The last ``len(pad) / 2`` axes padded before and after; MIL's ``replicate`` is numpy's ``edge``."""
    x, pad = np.asarray(a["x"]), [int(p) for p in a["pad"]]
    widths = [(0, 0)] * (x.ndim - len(pad) // 2) + [(pad[i], pad[i + 1]) for i in range(0, len(pad), 2)]
    mode = str(a.get("mode", "constant"))
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=a.get("constant_val", 0.0))
    return np.pad(x, widths, mode="edge" if mode == "replicate" else mode)


# --- the interpreter -----------------------------------------------------------------------------------
class MILEmulator:
    """Loads an ``.mlpackage`` and runs its ``main`` function with numpy.

    ``run({"input_ids": ..., "attention_mask": ...}) -> {output name: ...}``, inputs in the dtypes the
    program declares (int32 for edgedistill's exports).
    """

    def __init__(self, package: Path):
        import coremltools as ct
        from coremltools.converters.mil.frontend.milproto.load import load as load_program
        from coremltools.converters.mil.mil import types

        model = ct.models.MLModel(str(package), skip_model_load=True)
        spec = model.get_spec()
        if not spec.HasField("mlProgram"):
            raise ModelError(f"{package} is a neural-network Core ML model; only ML Programs can be emulated")
        program = load_program(spec, spec.specificationVersion, file_weights_dir=model.weights_dir)
        function = program.functions["main"]
        self.input_names = list(function.inputs)
        self.output_names = [v.name for v in function.outputs]
        self.constants: dict[str, np.ndarray] = {}
        self.constant_ops: dict[str, str] = {}  # constant name -> the op that made it (const, constexpr_...)
        self.steps: list[tuple[str, Rule, dict[str, Any], list[tuple[str, Any]]]] = []
        unsupported: set[str] = set()
        for op in function.operations:
            if op.op_type == "const":
                self.constants[op.outputs[0].name] = np.asarray(op.outputs[0].val)
                self.constant_ops[op.outputs[0].name] = op.op_type
            elif op.op_type.startswith("constexpr_"):  # compressed weights: coremltools' own decompression
                self.constants[op.outputs[0].name] = np.asarray(op.materialized_val_inference())
                self.constant_ops[op.outputs[0].name] = op.op_type
            elif op.op_type not in _RULES:
                unsupported.add(op.op_type)
            else:
                bindings = {name: _binding(var) for name, var in op.inputs.items()}
                outputs = [(out.name, types.nptype_from_builtin(out.dtype)) for out in op.outputs]
                self.steps.append((op.op_type, _RULES[op.op_type], bindings, outputs))
        if unsupported:
            raise UnsupportedOpError(f"{package}: the emulator has no numpy rule for op(s) "
                                     f"{', '.join(sorted(unsupported))}")

    def run(self, inputs: dict[str, np.ndarray],
            observe: Callable[[str, np.ndarray], None] | None = None) -> dict[str, np.ndarray]:
        """Execute the program; ``observe(name, value)`` sees every op's output (calibration uses it)."""
        missing = set(self.input_names) - set(inputs)
        if missing:
            raise ModelError(f"the program needs inputs {sorted(missing)}")
        env: dict[str, Any] = dict(self.constants)
        env.update({name: np.asarray(value) for name, value in inputs.items()})
        for op_type, fn, bindings, outputs in self.steps:
            args = {name: _resolve(binding, env) for name, binding in bindings.items()}
            result = fn(args)
            results = result if isinstance(result, tuple) else (result,)
            for (name, dtype), value in zip(outputs, results, strict=True):
                env[name] = np.asarray(value).astype(dtype)
                if observe is not None:
                    observe(name, env[name])
        return {name: env[name] for name in self.output_names}


def _binding(var: Any) -> Any:
    """An op input as the name(s) to look up at run time."""
    if isinstance(var, (list, tuple)):
        return [v.name for v in var]
    return var.name


def _resolve(binding: Any, env: dict[str, Any]) -> Any:
    if isinstance(binding, list):
        return [env[name] for name in binding]
    return env[binding]
