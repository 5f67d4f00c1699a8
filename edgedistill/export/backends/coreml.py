"""Core ML backend: coremltools converts to an ML Program and compresses its weights.

The artifact is ``model.mlpackage`` with inputs ``input_ids`` and ``attention_mask`` (int32, shape
``(1, seq)``) and output ``logits`` (float32). The sequence length is flexible: by default the
enumerated shapes of the buckets (``[32, 64, 128]``), or with ``shapes: range`` any length up to the
largest bucket. Two enumerated inputs need an iOS 18 / macOS 15 deployment target (coremltools refuses
them below), so that is the default ``deployment_target``.

Precisions:

* ``fp32`` — float32 compute; ``fp16`` — float16 compute and weights (Core ML's default);
* ``int8-weights`` — ``coremltools.optimize.coreml.linear_quantize_weights`` (symmetric, per channel)
  on an fp16 program;
* ``int8-static`` — W8A8: ``linear_quantize_activations`` (int8 activations, symmetric, ranges calibrated
  on real task text by running the program in the numpy emulator, since calibrating through
  ``MLModel.predict`` needs macOS) then ``linear_quantize_weights``; the Neural Engine's int8 path. Input
  channels far above the rest (``outlier_split_ratio``) are first moved to a narrow layer of their own
  (:mod:`edgedistill.quant.outlier_split`, side ``input``), so each quantized input keeps its resolution;
* ``palettize-6`` / ``palettize-4`` — ``palettize_weights`` (k-means look-up table of 2^n values) on an
  fp16 program; one table per tensor, or with ``palette_group_size: N`` one per N output channels
  (more tables, better fidelity; ``benchmarks/results/coreml-sst2.md`` has what 4 and 6 bits cost).

Compression touches the float constants of at least ``weight_threshold`` elements (2048 by default):
the matrices of the linear layers and the embedding tables, never biases, norms or scalar mask
constants. (STACK.md saw uniform palettization turn a large -inf mask constant into NaN; these exports
have none, and the gate's finite-logits check would refuse such an artifact.)

Running: on macOS, ``MLModel.predict`` with the target's ``compute_units`` (real Core ML, real latency).
Elsewhere the Linux coremltools wheel cannot run a model (no ``libcoremlpython``), so the runner executes
the saved program op by op with :mod:`edgedistill.export.backends.mil_emulator` and says so: its numbers are
an emulation of Core ML's arithmetic, good for agreement and accuracy, never for latency.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgedistill.export.backends.base import Artifact, Calibration, InputTooLongError, check_precision
from edgedistill.core.config import TargetConfig
from edgedistill.data.encoding import at_width, bucket_feed, bucket_for, pad_to
from edgedistill.core.errors import ConfigError, ExportError, ModelError
from edgedistill.core.registry import FORMATS
from edgedistill.core.target_options import COREML_ACTIVATION_OPS, CoreMLOptions, target_options

FP16_MAX = float(np.finfo(np.float16).max)

if TYPE_CHECKING:
    from edgedistill.quant.outlier_split import Plan

log = logging.getLogger("edgedistill.coreml")

MODEL_FILE = FORMATS["coreml"].model_file
EMULATION_NOTE = ("Core ML numerics emulated on Linux by a numpy interpreter of the saved ML Program; "
                  "Core ML latency needs macOS")


class CoreMLBackend:
    name = "coreml"
    precisions = FORMATS["coreml"].precisions

    def export(self, model_dir: Path, target: TargetConfig, calibration: Calibration | None,
               out_dir: Path) -> list[Path]:
        check_precision(self, target)
        options = target_options(target)
        split = None
        if target.precision == "int8-static":
            if calibration is None or not calibration.inputs:
                raise ConfigError("int8-static needs calibration text: the calibration sample is empty "
                                  "(data.calibration_samples, and a non-empty train split)")
            if options.outlier_split_ratio:
                from edgedistill.quant.outlier_split import plan_outlier_split

                split = plan_outlier_split(model_dir, target.cls_only_last_layer, calibration,
                                           options.outlier_split_ratio, out_dir, sides=("input",))
        mlmodel = self._convert(model_dir, target.precision, options, target.cls_only_last_layer, split)
        if target.precision == "int8-static":
            mlmodel = _quantize_activations(mlmodel, model_dir, options, calibration)
        mlmodel = self._compress(mlmodel, target.precision, options)
        self._describe(mlmodel, model_dir, target)
        final = out_dir / MODEL_FILE
        mlmodel.save(str(final))
        return [final]

    def load(self, artifact: Artifact, threads: int) -> CoreMLRunner | EmulatedCoreMLRunner:
        options = target_options(artifact.target)
        package = artifact.path / MODEL_FILE
        if coreml_runtime_available():
            return CoreMLRunner(package, options.compute_units, options.overflow)
        return EmulatedCoreMLRunner(package, options.overflow)

    def inspect(self, model_files: list[Path], target: TargetConfig) -> dict[str, Any]:
        """The spec's structure, checked against what the target asked for (raises on a mismatch)."""
        from edgedistill.export.backends.coreml_spec import check_structure, describe_package

        structure = describe_package(model_files[0])
        problems = check_structure(structure, target.precision, target_options(target))
        if problems:
            raise ExportError(f"target {target.name}: the Core ML package is not what was asked for: "
                              + "; ".join(problems))
        if target.precision.startswith("int8"):
            structure["integer"] = integer_coverage(model_files[0], target_options(target).buckets[-1])
        return structure

    @staticmethod
    def _convert(model_dir: Path, precision: str, options: CoreMLOptions, cls_only_last_layer: bool,
                 split: Plan | None = None) -> Any:
        """The traced classifier as an ML Program; ``split``: outlier input channels to give their own layers."""
        import coremltools as ct
        import torch

        from edgedistill.quant.cls_pruning import load_for_export, traced_module

        buckets = options.buckets
        model, task = load_for_export(model_dir, cls_only_last_layer)
        if split:
            from edgedistill.quant.outlier_split import apply_plan

            model = apply_plan(model, split)
        model = traced_module(model_dir, model, task)
        sample = (torch.zeros(1, buckets[-1], dtype=torch.int32), torch.ones(1, buckets[-1], dtype=torch.int32))
        if options.shapes == "enumerated":
            shape: Any = ct.EnumeratedShapes(shapes=[(1, b) for b in buckets], default=(1, buckets[-1]))
        else:
            shape = (1, ct.RangeDim(lower_bound=1, upper_bound=buckets[-1], default=buckets[-1]))
        _register_torch_op_fixes()
        try:
            with torch.no_grad(), _plain_python_relative_positions():
                traced = torch.jit.trace(model, sample)
            return ct.convert(
                traced,
                inputs=[ct.TensorType("input_ids", shape=shape, dtype=np.int32),
                        ct.TensorType("attention_mask", shape=shape, dtype=np.int32)],
                outputs=[ct.TensorType(name, dtype=np.float32) for name in task.output_names()],
                convert_to="mlprogram",
                minimum_deployment_target=getattr(ct.target, options.deployment_target),
                compute_precision=ct.precision.FLOAT32 if precision == "fp32" else
                ct.transform.FP16ComputePrecision(op_selector=_fp16_safe),
            )
        except Exception as exc:  # tracing and conversion raise many types; all mean "did not convert"
            raise ExportError(f"coremltools could not convert {model_dir}: {type(exc).__name__}: {exc}") from None

    @staticmethod
    def _compress(mlmodel: Any, precision: str, options: CoreMLOptions) -> Any:
        if precision not in ("int8-weights", "int8-static", "palettize-6", "palettize-4"):
            return mlmodel
        import coremltools.optimize.coreml as cto

        threshold = options.weight_threshold
        if precision in ("int8-weights", "int8-static"):
            op_config: Any = cto.OpLinearQuantizerConfig(mode="linear_symmetric", weight_threshold=threshold)
            compress = cto.linear_quantize_weights
        else:
            group = options.palette_group_size
            grouping = {"granularity": "per_grouped_channel", "group_size": group} if group else {}
            op_config = cto.OpPalettizerConfig(mode="kmeans", nbits=int(precision[-1]), weight_threshold=threshold,
                                               **grouping)
            compress = cto.palettize_weights
        # One global config: per-op-type configs clash wherever constant deduplication made a linear layer
        # and a layer norm share a vector; the threshold keeps vectors and scalars uncompressed anyway.
        try:
            return compress(mlmodel, cto.OptimizationConfig(global_config=op_config))
        except (ValueError, RuntimeError) as exc:
            raise ExportError(f"coremltools could not compress the weights to {precision}: {exc}") from None

    @staticmethod
    def _describe(mlmodel: Any, model_dir: Path, target: TargetConfig) -> None:
        """Model metadata a Core ML user sees in Xcode: what it is, its labels, where it came from."""
        import json

        from edgedistill.export.model_files import source_hash
        from edgedistill.tasks import task_of_config

        config = json.loads((model_dir / "config.json").read_text())
        task = task_of_config(config, str(model_dir))
        labels = task.label_names(config)
        mlmodel.short_description = (f"{config.get('model_type', 'BERT-family')} {task.title} "
                                     f"({target.precision}), exported by edgedistill target {target.name}")
        mlmodel.input_description["input_ids"] = "Token ids from tokenizer.json, int32, shape (1, seq)"
        mlmodel.input_description["attention_mask"] = "1 for real tokens, 0 for padding, int32, shape (1, seq)"
        for name, description in task.output_descriptions(labels).items():
            mlmodel.output_description[name] = description
        metadata = mlmodel.user_defined_metadata
        metadata["edgedistill.target"] = target.name
        metadata["edgedistill.precision"] = target.precision
        metadata["edgedistill.label_names"] = json.dumps(labels)
        metadata["edgedistill.source_sha256"] = source_hash(model_dir)


def _fp16_safe(op: Any) -> bool:
    """Whether an op of an fp16 program computes in fp16: not ``log`` (its default epsilon, 1e-45, is 0 in fp16:
    MPNet's relative-position buckets would take log(0)), and not a ``mul`` by a constant beyond fp16's range (MPNet
    builds its attention mask as ``(1 - mask) * float32 min``: in fp16 that constant is -inf and 0 * -inf is NaN on
    every real token). A ``select`` of such a constant (BERT's and DistilBERT's masks) stays fp16: -inf is a fine
    mask there, and those programs convert exactly as with ``ct.precision.FLOAT16``."""
    if op.op_type == "log":
        return False
    if op.op_type != "mul":
        return True
    for var in op.inputs.values():
        value = getattr(var, "val", None)
        if value is not None and np.issubdtype(np.asarray(value).dtype, np.floating) and np.size(value) \
                and float(np.max(np.abs(value))) > FP16_MAX:
            return False
    return True


@contextlib.contextmanager
def _plain_python_relative_positions() -> Iterator[None]:
    """While tracing: DeBERTa-v2's ``build_rpos`` as plain Python instead of the ``torch.jit.script`` function
    transformers ships. Scripted, its "keys as many as queries?" test stays in the trace as an ``if`` whose two
    branches return different shapes, which coremltools cannot convert; in plain Python the trace keeps the branch
    an encoder always takes (self-attention: as many keys as queries)."""
    import sys

    module = sys.modules.get("transformers.models.deberta_v2.modeling_deberta_v2")
    if module is None:
        yield
        return
    scripted = module.build_rpos

    def build_rpos(query_layer: Any, key_layer: Any, relative_pos: Any, position_buckets: int,
                   max_relative_positions: int) -> Any:
        if key_layer.size(-2) != query_layer.size(-2):
            return module.build_relative_position(key_layer, key_layer, bucket_size=position_buckets,
                                                  max_position=max_relative_positions)
        return relative_pos

    module.build_rpos = build_rpos
    try:
        yield
    finally:
        module.build_rpos = scripted


@functools.cache
def _register_torch_op_fixes() -> None:
    """coremltools 9 converts torch's ``sqrt`` of an integer tensor to MIL ``sqrt`` on int32, which MIL refuses
    (DeBERTa-v2 takes the square root of a head size traced as an integer); torch's ``sqrt`` of an integer is
    float, so the override casts first. Same op, same result for every float input. Registered once a process."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs
    from coremltools.converters.mil.frontend.torch.torch_op_registry import register_torch_op
    from coremltools.converters.mil.mil import types

    @register_torch_op(override=True)
    def sqrt(context: Any, node: Any) -> None:
        (x,) = _get_inputs(context, node, expected=1)
        if not types.is_float(x.dtype):
            x = mb.cast(x=x, dtype="fp32")
        context.add(mb.sqrt(x=x, name=node.name))


def _quantize_activations(mlmodel: Any, model_dir: Path, options: CoreMLOptions, calibration: Calibration) -> Any:
    """W8A8's activation half: coremltools' ``linear_quantize_activations`` (int8, symmetric), calibrated on
    real task text by the numpy ML Program emulator instead of ``MLModel.predict``, which needs macOS.

    coremltools collects each tensor's range by running the model; here the emulator runs the same saved
    program on the calibration sentences (each padded to its bucket) and hands coremltools those ranges, so
    its own passes insert the quantize/dequantize pairs exactly as they would on a Mac.
    """
    import tempfile
    from unittest import mock

    import coremltools.optimize.coreml as cto
    from transformers import AutoTokenizer

    from edgedistill.export.backends.mil_emulator import MILEmulator

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    buckets = options.buckets
    samples = [bucket_feed(tokenizer, example, buckets)[1] for example in calibration.inputs]
    ranges: dict[str, dict[str, float]] = {}

    def observe(name: str, value: np.ndarray) -> None:
        if value.size and np.issubdtype(value.dtype, np.floating):
            low, high = float(value.min()), float(value.max())
            seen = ranges.setdefault(name, {"rmin": low, "rmax": high})
            seen["rmin"], seen["rmax"] = min(seen["rmin"], low), max(seen["rmax"], high)

    with tempfile.TemporaryDirectory(prefix="edgedistill-coreml-calib-") as scratch:
        package = Path(scratch) / MODEL_FILE
        mlmodel.save(str(package))
        emulator = MILEmulator(package)
        for sample in samples:
            emulator.run(sample, observe)
    config = cto.OptimizationConfig(op_type_configs={
        op: cto.OpLinearQuantizerConfig(mode=options.activation_mode) if op in options.activation_ops else None
        for op in COREML_ACTIVATION_OPS})
    try:
        if options.quantize_outputs:  # coremltools' own pass pipeline: pairs before and after each op
            stats_function = "coremltools.optimize.coreml._post_training_quantization._get_activation_calibration_stats"
            with mock.patch(stats_function, lambda *_args, **_kwargs: ranges):
                return cto.linear_quantize_activations(mlmodel, config, samples)
        return _quantize_op_inputs(mlmodel, config, ranges)
    except (ValueError, RuntimeError) as exc:
        raise ExportError(f"coremltools could not quantize the activations to int8: {exc}") from None


def _quantize_op_inputs(mlmodel: Any, config: Any, ranges: dict[str, dict[str, float]]) -> Any:
    """The first of ``linear_quantize_activations``' passes alone: quantize/dequantize pairs on the inputs of
    the chosen ops (int8 x int8 products), their outputs left in fp16. Requantizing the linear outputs, as
    the second pass does, cost agreement on the SST-2 student (``benchmarks/results/coreml-w8a8-inputs.md``)."""
    from coremltools import _SPECIFICATION_VERSION_IOS_17
    from coremltools.converters.mil.frontend.milproto import load as milproto_load
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models import utils as model_utils

    prefix = PASS_REGISTRY["compression::insert_prefix_quantize_dequantize_pair"]
    prefix.set_options([PassOption("config", config)])
    prefix.set_options([PassOption("activation_stats", ranges)])
    return model_utils._apply_graph_pass(mlmodel, [prefix, PASS_REGISTRY["common::dequantize_quantize_pair_elimination"]],
                                         spec_version=_SPECIFICATION_VERSION_IOS_17,
                                         pymil_load_func=milproto_load.load,
                                         skip_model_load=mlmodel.__proxy__ is None)


INT8_WEIGHT_OPS = ("constexpr_blockwise_shift_scale", "constexpr_affine_dequantize")


def integer_coverage(package: Path, longest: int) -> dict[str, Any]:
    """Share of matrix-multiply MACs whose activations come from an int8 ``dequantize`` and whose weights are
    int8 constants, at batch 1 x 128 tokens (or the longest bucket), from one emulated run's shapes."""
    from edgedistill.export.backends.mil_emulator import MILEmulator
    from edgedistill.quant.report import COVERAGE_SEQ, MatmulWork, coverage

    emulator = MILEmulator(package)
    seq = min(COVERAGE_SEQ, longest)
    shapes: dict[str, tuple[int, ...]] = {}
    producer = dict(emulator.constant_ops)
    for op_type, _, _, outputs in emulator.steps:
        producer.update({name: op_type for name, _ in outputs})
    ones = np.ones((1, seq), dtype=np.int32)
    emulator.run({"input_ids": ones, "attention_mask": ones}, lambda name, value: shapes.__setitem__(name, value.shape))
    shapes.update({name: np.shape(value) for name, value in emulator.constants.items()})
    work, float_ops = [], set()
    for op_type, _, bindings, outputs in emulator.steps:
        if op_type == "linear":
            x, w = shapes[bindings["x"]], shapes[bindings["weight"]]
            integer = producer.get(bindings["x"]) == "dequantize" and producer.get(bindings["weight"]) in INT8_WEIGHT_OPS
            work.append(MatmulWork(int(np.prod(x[:-1])) * w[0] * w[1], "int8" if integer else "float"))
            if integer:
                continue
        elif op_type == "matmul":
            x = shapes[bindings["x"]]
            transposed = "transpose_x" in bindings and bool(emulator.constants.get(bindings["transpose_x"], False))
            inner = x[-2] if transposed else x[-1]
            work.append(MatmulWork(int(np.prod(shapes[outputs[0][0]])) * int(inner), "float"))
        elif op_type == "scaled_dot_product_attention":
            q, k = shapes[bindings["query"]], shapes[bindings["key"]]
            work.append(MatmulWork(2 * int(np.prod(q)) * int(k[-2]), "float"))  # Q.K^T and P.V
        if op_type not in ("quantize", "dequantize"):
            float_ops.add(op_type)
    return coverage(work, float_ops, {"note": "op shapes from one emulated run"}, seq=seq)


def coreml_runtime_available() -> bool:
    """True on macOS with coremltools' native runtime; the Linux wheel ships without it."""
    if platform.system() != "Darwin":
        return False
    try:
        import coremltools.libcoremlpython  # noqa: F401
    except ImportError:
        return False
    return True


class _BucketedRunner:
    """Pads each row to a length the package declares, runs rows one at a time (the shapes are batch 1)."""

    def __init__(self, package: Path, overflow: str):
        from edgedistill.export.backends.coreml_spec import declared_lengths

        self.package = package
        self.overflow = overflow
        self.lengths = declared_lengths(package)  # enumerated lengths, or (lower, upper) for a range
        self.enumerated = isinstance(self.lengths, list)
        self.max_length = self.lengths[-1]

    def bucket_for(self, length: int) -> int:
        if not self.enumerated:
            return max(min(length, self.max_length), self.lengths[0])
        return bucket_for(length, self.lengths)

    def predict(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import warnings

        rows = []
        for ids, mask in zip(np.asarray(input_ids), np.asarray(attention_mask), strict=True):
            used = max(int(mask.sum()), 1)
            if used > self.max_length:
                if self.overflow == "refuse":
                    raise InputTooLongError(f"input of {used} tokens is longer than the model's largest shape "
                                            f"({self.max_length}); the target refuses to truncate")
                warnings.warn(f"input of {used} tokens truncated to {self.max_length}", stacklevel=2)
                used = self.max_length
            row_ids, row_mask = pad_to(ids[:used], self.bucket_for(used))
            output = np.asarray(self._run(row_ids, row_mask), dtype=np.float32)
            # a tag per token: the rows of the tokens fed, not of the bucket
            rows.append(at_width(output, len(ids)) if output.ndim >= 3 else output.reshape(1, -1))
        return np.concatenate(rows)

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class CoreMLRunner(_BucketedRunner):
    """Core ML itself (macOS): ``MLModel.predict`` on the chosen compute units."""

    runtime = "coreml"
    measures_latency = True

    def __init__(self, package: Path, compute_units: str, overflow: str = "truncate"):
        import coremltools as ct

        super().__init__(package, overflow)
        try:
            self.model = ct.models.MLModel(str(package), compute_units=ct.ComputeUnit[compute_units])
        except Exception as exc:  # Core ML's loader raises RuntimeError or its own types
            raise ModelError(f"Core ML cannot load {package}: {exc}") from None

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return _only(self.model.predict({"input_ids": ids, "attention_mask": mask}))


class EmulatedCoreMLRunner(_BucketedRunner):
    """The saved ML Program run op by op in numpy: Core ML numerics without Core ML, and no latency."""

    runtime = "coreml-emulated (numpy MIL interpreter, not Core ML)"
    measures_latency = False
    note = EMULATION_NOTE

    def __init__(self, package: Path, overflow: str = "truncate"):
        from edgedistill.export.backends.mil_emulator import MILEmulator

        super().__init__(package, overflow)
        self.emulator = MILEmulator(package)

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return _only(self.emulator.run({"input_ids": ids, "attention_mask": mask}))


def _only(outputs: dict[str, Any]) -> Any:
    """The one output of an edgedistill package (the task's: a classifier's logits)."""
    return next(iter(outputs.values()))


BACKEND = CoreMLBackend()
