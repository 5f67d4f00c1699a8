"""Structural validation of a Core ML package from its spec alone (no Core ML runtime needed).

``describe_package`` reads what a Mac would see — inputs, outputs, flexible shapes, the ML Program's op
counts, the weight tensors' dtypes and sizes, compression ops — and ``check_structure`` compares that
with what the target asked for, so a wrong dtype, a missing shape or an uncompressed "int8" model is
caught on Linux, before the artifact reaches a device.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

INT8_OPS = ("constexpr_blockwise_shift_scale", "constexpr_affine_dequantize")
PALETTE_OPS = ("constexpr_lut_to_dense",)
MATRIX_RANK = 2  # weights are the constant tensors of rank >= 2; vectors are biases and norms


def _spec(package: Path) -> Any:
    import coremltools as ct

    try:
        return ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    except Exception as exc:  # a damaged package raises protobuf or OS errors
        from edgedistill.core.errors import ModelError

        raise ModelError(f"{package} is not a readable Core ML package: {exc}") from None


def _feature(feature: Any) -> dict[str, Any]:
    from coremltools.proto import FeatureTypes_pb2

    array = feature.type.multiArrayType
    info: dict[str, Any] = {"name": feature.name,
                            "dtype": FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType),
                            "shape": list(array.shape)}
    flexibility = array.WhichOneof("ShapeFlexibility")
    if flexibility == "enumeratedShapes":
        info["enumerated_shapes"] = sorted(list(s.shape) for s in array.enumeratedShapes.shapes)
    elif flexibility == "shapeRange":
        info["shape_range"] = [[r.lowerBound, r.upperBound] for r in array.shapeRange.sizeRanges]
    return info


def _tensor_values(op: Any) -> list[Any]:
    """The tensor literals an op carries: a const's value, a constexpr op's inline inputs."""
    if op.type == "const":
        return [op.attributes["val"]]
    values = []
    for argument in op.inputs.values():
        for binding in argument.arguments:
            if binding.WhichOneof("binding") == "value":
                values.append(binding.value)
    return values


def describe_package(package: Path) -> dict[str, Any]:
    """Inputs, outputs, op counts, weight dtypes/sizes and compression, from the spec."""
    from coremltools.proto import MIL_pb2

    spec = _spec(package)
    function = spec.mlProgram.functions["main"]
    operations = list(function.block_specializations[function.opset].operations)
    weights: dict[str, dict[str, int]] = {}
    for op in operations:
        if op.type != "const" and not op.type.startswith("constexpr_"):
            continue
        for value in _tensor_values(op):
            tensor = value.type.tensorType
            dims = [d.constant.size for d in tensor.dimensions]
            if len(dims) < MATRIX_RANK:
                continue
            dtype = MIL_pb2.DataType.Name(tensor.dataType).lower()
            entry = weights.setdefault(dtype, {"tensors": 0, "elements": 0})
            entry["tensors"] += 1
            entry["elements"] += math.prod(dims)
    weight_file = Path(package) / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    ops = Counter(op.type for op in operations)
    return {
        "format": "mlprogram",
        "specification_version": spec.specificationVersion,
        "opset": function.opset,
        "inputs": [_feature(f) for f in spec.description.input],
        "outputs": [_feature(f) for f in spec.description.output],
        "op_counts": dict(sorted(ops.items())),
        "weight_tensors": weights,
        "compressed_weights": {op: n for op, n in ops.items() if op.startswith("constexpr_")},
        "weight_file_bytes": weight_file.stat().st_size if weight_file.is_file() else 0,
        "metadata": dict(spec.description.metadata.userDefined),
    }


def declared_lengths(package: Path) -> list[int] | tuple[int, int]:
    """The sequence lengths ``input_ids`` accepts: enumerated lengths (sorted), or a (lower, upper) range."""
    from edgedistill.core.errors import ModelError

    inputs = {f["name"]: f for f in (_feature(f) for f in _spec(package).description.input)}
    if "input_ids" not in inputs:
        raise ModelError(f"{package} has no input_ids input: not an edgedistill Core ML artifact")
    ids = inputs["input_ids"]
    if "enumerated_shapes" in ids:
        return sorted(shape[1] for shape in ids["enumerated_shapes"])
    if "shape_range" in ids:
        lower, upper = ids["shape_range"][1]
        return (max(int(lower), 1), int(upper))
    return [int(ids["shape"][1])]


def check_structure(structure: dict[str, Any], precision: str, options: Any) -> list[str]:
    """Every way the package differs from the target: I/O names and dtypes, shapes, weight precision."""
    problems = []
    inputs = {f["name"]: f for f in structure["inputs"]}
    outputs = {f["name"]: f for f in structure["outputs"]}
    for name in ("input_ids", "attention_mask"):
        if name not in inputs:
            problems.append(f"input {name} missing (inputs: {sorted(inputs)})")
        elif inputs[name]["dtype"] != "INT32":
            problems.append(f"input {name} is {inputs[name]['dtype']}, expected INT32")
    if len(outputs) != 1:  # the task's one output (a classifier's logits)
        problems.append(f"outputs {sorted(outputs)}: an edgedistill model has one")
    elif (only := next(iter(outputs.values())))["dtype"] != "FLOAT32":
        problems.append(f"output {only['name']} is {only['dtype']}, expected FLOAT32")
    ids = inputs.get("input_ids", {})
    buckets = options.buckets
    if options.shapes == "enumerated":
        lengths = sorted(s[1] for s in ids.get("enumerated_shapes", []))
        if lengths != buckets:
            problems.append(f"enumerated sequence lengths {lengths}, expected the buckets {buckets}")
    elif ids.get("shape_range", [[0, 0], [0, 0]])[1][1] != buckets[-1]:
        problems.append(f"sequence range {ids.get('shape_range')}, expected an upper bound of {buckets[-1]}")
    weights, compressed = structure["weight_tensors"], structure["compressed_weights"]
    float_dtype = "float32" if precision == "fp32" else "float16"
    if weights.get(float_dtype, {}).get("tensors", 0) == 0 and precision in ("fp32", "fp16"):
        problems.append(f"no {float_dtype} weight tensors (weights: {sorted(weights)})")
    if precision == "fp16" and weights.get("float32", {}).get("tensors", 0):
        problems.append(f"{weights['float32']['tensors']} weight tensors left in float32")
    if precision == "int8-weights" and not any(compressed.get(op) for op in INT8_OPS):
        problems.append("no weights were quantized to int8 (no constexpr dequantize ops): is weight_threshold "
                        f"({options.weight_threshold}) above every weight's size?")
    if precision == "int8-static":
        ops = structure["op_counts"]
        if not ops.get("quantize") or not ops.get("dequantize"):
            problems.append("no activation quantize/dequantize ops: the program is not W8A8")
        if not any(compressed.get(op) for op in INT8_OPS):
            problems.append("no weights were quantized to int8 (no constexpr dequantize ops)")
    if precision.startswith("palettize-"):
        nbits = precision.rsplit("-", 1)[1]
        if not any(compressed.get(op) for op in PALETTE_OPS):
            problems.append("no weights were palettized (no constexpr_lut_to_dense ops): is weight_threshold "
                            f"({options.weight_threshold}) above every weight's size?")
        elif f"uint{nbits}" not in weights:
            problems.append(f"palette indices are not uint{nbits} (weights: {sorted(weights)})")
    return problems
