"""TFLite (LiteRT) backend: litert-torch converts, ai-edge-quantizer quantizes, ai-edge-litert runs.

TFLite has no dynamic sequence length, so one ``.tflite`` file holds **one signature per sequence
bucket** (``seq_32``, ``seq_64``, ``seq_128`` by default), each with inputs ``input_ids`` and
``attention_mask`` (int32) and output ``logits``. The runner pads each batch to the smallest bucket
that fits it; short texts run on a short graph instead of being padded to the maximum.

Precisions (``target.precision``) via ai-edge-quantizer, after an fp32 conversion:

* ``fp32``; ``fp16`` — weights cast to float16 (weight-only ``float_casting``);
* ``int8-dynamic`` — ``dynamic_wi8_afp32``: int8 channel-wise weights, activations quantized at run time;
* ``int8-weights`` — ``weight_only_wi8_afp32``: int8 weights dequantized before float compute;
* ``int8-static`` — full integer: ai-edge-quantizer static configs (int8 channel-wise weights, int8
  activations calibrated on real task text) on the op types in ``quantize_ops`` (default
  ``FULLY_CONNECTED``), 16-bit activations for ``int16_ops``, symmetric int8 activations for
  ``symmetric_ops`` (XNNPACK runs int8 ``BATCH_MATMUL`` only with symmetric inputs), the classification
  head left float (``float_head``; ``float_cls_row`` also the last layer's [CLS]-row matmuls), and a
  weight-only int8 rule for ``EMBEDDING_LOOKUP`` (``int8_embeddings``); every other op stays float.
  Outlier channels get a layer and a scale of their own on the sides in ``outlier_split_sides``
  (:mod:`edgedistill.quant.outlier_split`); activation ranges are the extremes over every calibration sentence
  (``calibration: minmax``), taken over its real tokens alone (``calibration_padding: exclude``;
  :mod:`edgedistill.export.backends.tflite_calibration`), or ai-edge-quantizer's moving average. A file with integer logits has them dequantized
  with the output tensor's scale and zero point. ``artifact.json`` records the integer coverage and the
  ops XNNPACK takes.

Options (typed in :mod:`edgedistill.core.target_options`): ``buckets`` (list of sequence lengths), ``batch``
(rows per signature, default 1; larger batches run as several invocations), ``overflow`` (``truncate``,
the default, with a warning, or ``refuse``).
"""

from __future__ import annotations

import logging
import re
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgedistill.export.backends.base import (Artifact, Calibration, InputTooLongError, check_precision,
                                       require_full_integer)
from edgedistill.export.backends.conversions import converted
from edgedistill.core.config import TargetConfig
from edgedistill.data.encoding import (Example, at_width, bucket_for, pad_to, signature_bucket, signature_name,
                                       token_ids)
from edgedistill.core.errors import ConfigError, ExportError, ModelError
from edgedistill.quant.report import TensorError
from edgedistill.core.registry import FORMATS
from edgedistill.core.target_options import TFLiteOptions, target_options

if TYPE_CHECKING:
    from edgedistill.quant.outlier_split import Plan

log = logging.getLogger("edgedistill.tflite")

MODEL_FILE = FORMATS["tflite"].model_file


class TFLiteRunner:
    """LiteRT's ``CompiledModel`` (XNNPACK on CPU), one set of I/O buffers per bucket signature.

    The signatures share their weights in the file, but XNNPACK packs weights per signature: three
    buckets held three packed copies. An XNNPACK weight cache file packs each weight once for all
    signatures and maps it from disk, at the same latency (``benchmarks/results/bert-base``: 157 MB peak RSS
    against 171 MB for a one-signature file). The cache lives under
    ``$EDGEDISTILL_CACHE`` (default ``~/.cache/edgedistill``), named by the model file's hash; where it
    cannot be written LiteRT logs that and runs without it.
    """

    runtime = "ai-edge-litert CompiledModel (XNNPACK, weight cache)"

    def __init__(self, model_path: Path, threads: int, overflow: str = "truncate", model_sha256: str | None = None):
        self.model = _compile(model_path, threads, weight_cache_path(model_path, model_sha256))
        self.overflow = overflow
        self.signatures: dict[int, dict[str, Any]] = {}
        for name, io in self.model.get_signature_list().items():
            bucket = signature_bucket(name)
            if bucket is None:
                continue
            index = self.model.get_signature_index(name)
            inputs = dict(zip(io["inputs"], self.model.create_input_buffers(index), strict=True))
            outputs = self.model.create_output_buffers(index)
            output = _only_output(self.model.get_output_tensor_details(name), name)
            self.signatures[bucket] = {
                "index": index, "inputs": inputs, "outputs": outputs, "output": output,
                "quantization": None if output["dtype"].startswith("float") else _output_quantization(model_path,
                                                                                                      name),
            }
        if not self.signatures:
            raise ModelError(f"{model_path} has no seq_<N> signatures: not an edgedistill TFLite artifact")
        self.buckets = sorted(self.signatures)
        self.max_length = self.buckets[-1]
        first = self.model.get_input_tensor_details(signature_name(self.buckets[0]))
        self.batch = int(first["input_ids"]["shape"][0])
        for bucket, signature in self.signatures.items():  # per-call work reduced to copies into these
            signature["input_list"] = list(signature["inputs"].values())
            signature["staging"] = (np.zeros((self.batch, bucket), np.int32), np.zeros((self.batch, bucket), np.int32))
            signature["output_dtype"] = np.dtype(signature["output"]["dtype"])
            signature["output_size"] = int(np.prod(signature["output"]["shape"]))

    def bucket_for(self, length: int) -> int:
        """The smallest bucket that holds ``length`` tokens (the largest if none does)."""
        return bucket_for(length, self.buckets)

    def predict(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        ids = np.asarray(input_ids, dtype=np.int32)
        mask = np.asarray(attention_mask, dtype=np.int32)
        fed_width = ids.shape[1]
        used = int(mask.sum(axis=1).max()) if mask.size else 0
        ids, mask = ids[:, : max(used, 1)], mask[:, : max(used, 1)]  # drop all-padding columns
        if used > self.buckets[-1]:
            if self.overflow == "refuse":
                raise InputTooLongError(f"input of {used} tokens is longer than the largest bucket "
                                        f"({self.buckets[-1]}); the target refuses to truncate")
            warnings.warn(f"input of {used} tokens truncated to the largest bucket ({self.buckets[-1]})",
                          stacklevel=2)
            ids, mask = ids[:, : self.buckets[-1]], mask[:, : self.buckets[-1]]
        bucket = self.bucket_for(ids.shape[1])
        signature = self.signatures[bucket]
        chunk_ids, chunk_mask = signature["staging"]
        rows, width = ids.shape[0], ids.shape[1]
        out = []
        for start in range(0, rows, self.batch):
            n = min(self.batch, rows - start)
            if n == self.batch and width == bucket:  # the input is the signature's shape: no staging copy
                feed_ids, feed_mask = ids[start:start + n], mask[start:start + n]
            else:
                chunk_ids.fill(0)
                chunk_mask.fill(0)
                chunk_ids[:n, :width] = ids[start:start + n]
                chunk_mask[:n, :width] = mask[start:start + n]
                feed_ids, feed_mask = chunk_ids, chunk_mask
            signature["inputs"]["input_ids"].write(feed_ids)
            signature["inputs"]["attention_mask"].write(feed_mask)
            self.model.run_by_index(signature["index"], signature["input_list"], signature["outputs"])
            values = signature["outputs"][0].read(signature["output_size"], signature["output_dtype"])
            values = np.asarray(values).reshape(self.batch, *signature["output"]["shape"][1:])[:n]
            out.append(values if signature["quantization"] is None else dequantize(values, signature["quantization"]))
        result = (out[0] if len(out) == 1 else np.concatenate(out)).astype(np.float32, copy=False)
        return at_width(result, fed_width)  # a tag per token: the rows of the tokens fed, not of the bucket


def dequantize(values: np.ndarray, quantization: tuple[float, int] | None) -> np.ndarray:
    """Integer outputs back to float with the tensor's scale and zero point (float passes through)."""
    if np.issubdtype(values.dtype, np.floating):
        return values
    scale, zero_point = quantization or (0.0, 0)
    if not scale:
        raise ModelError("integer logits without quantization parameters cannot be dequantized")
    return (values.astype(np.float32) - zero_point) * scale


def weight_cache_path(model_path: Path, model_sha256: str | None = None) -> Path:
    """Where XNNPACK keeps this model's packed weights: one file per model content (the hash recorded in
    ``artifact.json`` when there is one, so loading does not re-read the model to hash it)."""
    from edgedistill.core.cache import user_cache_dir
    from edgedistill.core.hashing import sha256_file

    name = f"{(model_sha256 or sha256_file(model_path))[:24]}.xnnpack"
    try:
        return user_cache_dir("xnnpack") / name
    except OSError as exc:
        log.warning("cannot create the XNNPACK cache folder (%s): TFLite runs without a weight cache", exc)
        return Path(exc.filename or ".") / name


def _compile(model_path: Path, threads: int, weight_cache: Path) -> Any:
    try:
        from ai_edge_litert.compiled_model import CompiledModel
        from ai_edge_litert.hardware_accelerator import HardwareAccelerator
        from ai_edge_litert.options import CpuOptions, Options
    except ImportError:
        raise ModelError("no LiteRT runtime: pip install 'edgedistill[tflite]' (ai-edge-litert)") from None
    options = Options(hardware_accelerators=HardwareAccelerator.CPU,
                      cpu_options=CpuOptions(num_threads=threads,
                                             xnnpack_weight_cache_path=str(weight_cache)))
    try:
        return CompiledModel.from_file(str(model_path), options=options)
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"LiteRT cannot load {model_path}: {exc}. litert-torch output needs ai-edge-litert "
                         "(tflite-runtime 2.14 lacks its op versions)") from None


def _only_output(details: dict[str, Any], signature: str) -> dict[str, Any]:
    """The one output of a signature (the task's output: ``logits`` for a classifier)."""
    if len(details) != 1:
        raise ModelError(f"signature {signature} has outputs {sorted(details)}; an edgedistill artifact has one")
    return next(iter(details.values()))


def _output_quantization(model_path: Path, signature: str) -> tuple[float, int]:
    """Scale and zero point of an integer ``logits`` output (CompiledModel does not report them)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(model_path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    detail = _only_output(interpreter.get_signature_runner(signature).get_output_details(), signature)
    scale, zero_point = detail["quantization"]
    return float(scale), int(zero_point)


class TFLiteBackend:
    name = "tflite"
    precisions = FORMATS["tflite"].precisions

    def export(self, model_dir: Path, target: TargetConfig, calibration: Calibration | None,
               out_dir: Path) -> list[Path]:
        check_precision(self, target)
        options = target_options(target)
        if target.precision == "int8-static" and (calibration is None or not calibration.inputs):
            raise ConfigError("int8-static needs calibration text: the calibration sample is empty "
                              "(data.calibration_samples, and a non-empty train split)")
        final = out_dir / MODEL_FILE
        split = None
        if target.precision == "int8-static" and options.outlier_split_ratio:
            from edgedistill.export.backends.base import head_layers
            from edgedistill.quant.outlier_split import plan_outlier_split

            split = plan_outlier_split(model_dir, target.cls_only_last_layer, calibration,
                                       options.outlier_split_ratio, out_dir, options.outlier_split_sides,
                                       skip_last=head_layers(model_dir) if options.float_head else 0)
        with tempfile.TemporaryDirectory(prefix="edgedistill-tflite-") as scratch:
            fp32 = Path(scratch) / "fp32.tflite"
            self._convert(model_dir, options, target.cls_only_last_layer, fp32, split)
            if target.precision == "fp32":
                fp32.replace(final)
            else:
                self._quantize(fp32, final, target.precision, model_dir, options, calibration)
        return [final]

    def load(self, artifact: Artifact, threads: int) -> TFLiteRunner:
        overflow = target_options(artifact.target).overflow
        recorded = artifact.info.get("files", {}).get(MODEL_FILE, {}).get("sha256")
        return TFLiteRunner(artifact.path / MODEL_FILE, threads, overflow, recorded)

    def inspect(self, model_files: list[Path], target: TargetConfig) -> dict[str, Any]:
        """Where the file runs on this CPU (XNNPACK partitions) and, for int8, its integer coverage."""
        from edgedistill.export.backends.tflite_quant import coverage_signature, integer_coverage, xnnpack_delegation

        structure: dict[str, Any] = {"xnnpack": xnnpack_delegation(model_files[0])}
        if target.precision.startswith("int8"):
            signature = coverage_signature(signature_name(b) for b in target_options(target).buckets)
            structure["integer"] = integer_coverage(model_files[0], signature)
        return structure

    def layer_errors(self, artifact: Artifact, source_dir: Path, inputs: list[Example], max_length: int,
                     threads: int) -> list[TensorError]:
        """Per-tensor quantization error of a full-integer artifact against a fresh fp32 conversion of its
        source, every text padded to one bucket (the smallest that holds the longest)."""
        from transformers import AutoTokenizer

        from edgedistill.export.backends.tflite_quant import layer_errors
        from edgedistill.quant.outlier_split import read_plan

        target = artifact.target
        require_full_integer(target)
        options = target_options(target)
        tokenizer = AutoTokenizer.from_pretrained(source_dir)
        longest = min(max_length, options.buckets[-1])
        encoded = [token_ids(tokenizer, x, longest) for x in inputs]
        bucket = bucket_for(max(map(len, encoded)), options.buckets)
        feeds = [dict(zip(("input_ids", "attention_mask"), pad_to(ids, bucket, options.batch))) for ids in encoded]
        with tempfile.TemporaryDirectory(prefix="edgedistill-tflite-ref-") as scratch:
            reference = Path(scratch) / "fp32.tflite"  # split as the artifact was: the same tensors to compare
            self._convert(source_dir, options, target.cls_only_last_layer, reference, read_plan(artifact.path))
            return layer_errors(artifact.path / MODEL_FILE, reference, feeds, signature_name(bucket))

    @staticmethod
    def _convert(model_dir: Path, options: TFLiteOptions, cls_only_last_layer: bool, out: Path,
                 split: Plan | None = None) -> None:
        """fp32 conversion of every bucket signature; ``split``: outlier channels to give their own layers.
        Reused within a process (:mod:`edgedistill.export.backends.conversions`)."""
        converted(model_dir, {"backend": "tflite", "buckets": list(options.buckets), "batch": options.batch,
                              "cls_only_last_layer": cls_only_last_layer, "split": split}, out,
                  lambda path: TFLiteBackend._convert_now(model_dir, options, cls_only_last_layer, path, split))

    @staticmethod
    def _convert_now(model_dir: Path, options: TFLiteOptions, cls_only_last_layer: bool, out: Path,
                     split: Plan | None = None) -> None:
        import litert_torch
        import torch

        from edgedistill.quant.cls_pruning import load_for_export, traced_module

        model, task = load_for_export(model_dir, cls_only_last_layer)
        if split:
            from edgedistill.quant.outlier_split import apply_plan

            model = apply_plan(model, split)
        model = traced_module(model_dir, model, task, task.output_names()[0])
        converter = None
        for seq in options.buckets:
            sample = {"input_ids": torch.zeros(options.batch, seq, dtype=torch.long),
                      "attention_mask": torch.ones(options.batch, seq, dtype=torch.long)}
            if converter is None:
                converter = litert_torch.signature(signature_name(seq), model, sample_kwargs=sample)
            else:
                converter = converter.signature(signature_name(seq), model, sample_kwargs=sample)
        try:
            converter.convert().export(str(out))
        except Exception as exc:  # the converter raises many types; all mean "this model did not convert"
            raise ExportError(f"litert-torch could not convert {model_dir}: {type(exc).__name__}: {exc}") from None

    @staticmethod
    def _quantize(fp32: Path, final: Path, precision: str, model_dir: Path, options: TFLiteOptions,
                  calibration: Calibration | None) -> None:
        from ai_edge_quantizer import quantizer, recipe
        from ai_edge_quantizer.algorithm_manager import AlgorithmName
        from ai_edge_quantizer.qtyping import TFLOperationName

        qt = quantizer.Quantizer(str(fp32))
        if precision == "fp16":
            qt.add_weight_only_config(regex=".*", operation_name=TFLOperationName.ALL_SUPPORTED, num_bits=16,
                                      algorithm_key=AlgorithmName.FLOAT_CASTING)
        elif precision == "int8-dynamic":
            qt.load_quantization_recipe(recipe.dynamic_wi8_afp32())
        elif precision == "int8-weights":
            qt.load_quantization_recipe(recipe.weight_only_wi8_afp32())
        else:
            for op in options.quantize_ops:  # int8 weights and activations on these; every other op stays float
                if op in options.symmetric_ops:
                    qt.update_quantization_recipe(regex=".*", operation_name=TFLOperationName(op),
                                                  op_config=_symmetric_int8())
                else:
                    qt.add_static_config(regex=".*", operation_name=TFLOperationName(op), weight_num_bits=8,
                                         activation_num_bits=16 if op in options.int16_ops else 8)
            from edgedistill.export.backends.base import head_layers
            from edgedistill.export.backends.tflite_quant import head_scopes, single_row_scopes

            head = head_layers(model_dir) if options.float_head else 0
            float_scopes = head_scopes(fp32, head) if head else set()
            if options.float_cls_row:
                float_scopes |= single_row_scopes(fp32, options.batch)
            for scope in sorted(float_scopes):  # the latest matching config wins in ai-edge-quantizer
                for op in options.quantize_ops:
                    qt.update_quantization_recipe(regex=f"^{re.escape(scope)}$", operation_name=TFLOperationName(op),
                                                  algorithm_key=AlgorithmName.NO_QUANTIZE)
            if options.int8_embeddings:
                qt.add_weight_only_config(regex=".*", operation_name=TFLOperationName.EMBEDDING_LOOKUP, num_bits=8)
        result = None
        if qt.need_calibration:
            from transformers import AutoTokenizer

            from edgedistill.export.backends.tflite_calibration import calibrate, calibration_feeds

            feeds = calibration_feeds(AutoTokenizer.from_pretrained(model_dir), calibration.inputs, options.buckets,
                                      options.batch)
            result = calibrate(fp32, qt, feeds, options.calibration, options.calibration_padding)
        qt.quantize(result, enable_progress_report=False).export_model(str(final), overwrite=True)


def _symmetric_int8() -> Any:
    """ai-edge-quantizer's static int8 op config with symmetric activations (its default is asymmetric)."""
    from ai_edge_quantizer import qtyping

    return qtyping.OpQuantizationConfig(
        activation_tensor_config=qtyping.TensorQuantizationConfig(num_bits=8, symmetric=True),
        weight_tensor_config=qtyping.TensorQuantizationConfig(num_bits=8, symmetric=True),
        compute_precision=qtyping.ComputePrecision.INTEGER, explicit_dequantize=False)


BACKEND = TFLiteBackend()
