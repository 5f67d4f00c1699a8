"""ONNX backend: optimum-onnx exports, ONNX Runtime optimizes, quantizes and runs.

Precisions and options (``target.options``, typed in :mod:`edgedistill.core.target_options`):

* ``fp32`` — optimum's ONNX exporter (``onnx_export_from_model``): dynamic batch and sequence axes.
* ``fp16`` — ``onnxruntime.transformers.float16`` with float32 inputs/outputs kept. On the CPU
  provider it is a size win, not a speed win (it is a GPU / NPU format).
* ``int8-dynamic`` — ``ORTQuantizer`` with the ``AutoQuantizationConfig`` of the target's device class
  (``device``: arm64, x86-avx2, x86-avx512, x86-avx512-vnni; never the export host's unless ``host``),
  ``per_channel`` option (default false).
* ``int8-static`` — full integer, the format accelerators run: onnxruntime's ``quantize_static`` in QDQ
  format, calibrated on real task text (``calibration``: minmax, percentile or entropy; minmax on each
  sentence at its own length, no pad rows, unless ``calibration_padding: include``), per-channel int8
  weights and 8-bit activations (``activations``: uint8 by default, ``symmetric_activations``) on the op
  types in ``quantize_ops`` (default MatMul and Gemm: every matrix multiply), their outputs float unless
  ``quantize_outputs``; every other op stays float, ``int16_ops`` gives chosen op types 16-bit
  activations and ``float_head`` keeps the classification head float; outlier input channels get a
  MatMul and an activation scale of their own (``outlier_split_ratio``, :mod:`edgedistill.quant.outlier_split`).
  ``artifact.json`` records the integer coverage.
* ``fused: true`` (any precision) — ``ORTOptimizer`` level-2 graph fusion (attention, GELU,
  LayerNorm) first. ORTQuantizer cannot shape-infer a fused graph, so fused int8-dynamic uses
  ``onnxruntime.quantization.quantize_dynamic`` directly; fused int8-static is not offered.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgedistill.export.backends.base import (Artifact, Calibration, ParityError, check_precision, head_layers,
                                              require_full_integer)
from edgedistill.export.backends.conversions import converted
from edgedistill.core.config import TargetConfig
from edgedistill.data.encoding import Example, padded_batches
from edgedistill.core.errors import ConfigError, ExportError, ModelError
from edgedistill.quant.report import TensorError
from edgedistill.data.segments import segment_ids, sep_token_id
from edgedistill.core.registry import FORMATS
from edgedistill.core.target_options import OnnxOptions, target_options

if TYPE_CHECKING:
    from edgedistill.quant.outlier_split import Plan

log = logging.getLogger("edgedistill.onnx")

MODEL_FILE = FORMATS["onnx"].model_file


# optimum's dynamic-int8 recipe per device class: the one ONNX Runtime's kernels on that class expect
# (x86-avx2: uint8 weights, the others int8).
_DYNAMIC_RECIPES = {"arm64": "arm64", "x86-avx2": "avx2", "x86-avx512": "avx512", "x86-avx512-vnni": "avx512_vnni"}


def _dynamic_quantization_config(device: str, per_channel: bool) -> Any:
    """optimum's AutoQuantizationConfig for the target's device class, whatever CPU exports it."""
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    from edgedistill.core.devices import resolve_device

    factory = getattr(AutoQuantizationConfig, _DYNAMIC_RECIPES[resolve_device(device)])
    return factory(is_static=False, per_channel=per_channel)


class OnnxRunner:
    """An ONNX Runtime CPU session; when the graph takes ``token_type_ids`` (a BERT-type export) they are
    derived from the ids (:mod:`edgedistill.data.segments`), so a sentence pair gets its second segment."""

    def __init__(self, model_path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types for corrupt or foreign files
            raise ModelError(f"ONNX Runtime cannot load {model_path}: {exc}") from None
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name
        self.sep_token_id = sep_token_id(Path(model_path).parent) if "token_type_ids" in self.inputs else None

    def predict(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        ids = np.asarray(input_ids, dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.asarray(attention_mask, dtype=np.int64)}
        if "token_type_ids" in self.inputs:
            feed["token_type_ids"] = (segment_ids(ids, self.sep_token_id) if self.sep_token_id is not None
                                      else np.zeros_like(ids))
        return self.session.run([self.output], {k: v for k, v in feed.items() if k in self.inputs})[0].astype(
            np.float32)


class OnnxBackend:
    name = "onnx"
    precisions = FORMATS["onnx"].precisions

    def export(self, model_dir: Path, target: TargetConfig, calibration: Calibration | None,
               out_dir: Path) -> list[Path]:
        options = self._check(target)
        split = None
        if target.precision == "int8-static" and options.outlier_split_ratio and calibration is not None:
            from edgedistill.quant.outlier_split import plan_outlier_split

            split = plan_outlier_split(model_dir, target.cls_only_last_layer, calibration,
                                       options.outlier_split_ratio, out_dir, options.outlier_split_sides,
                                       skip_last=head_layers(model_dir) if options.float_head else 0)
        with tempfile.TemporaryDirectory(prefix="edgedistill-onnx-") as scratch:
            scratch = Path(scratch)
            exported = self._export_fp32(model_dir, scratch / "fp32", options, target.cls_only_last_layer, split)
            if options.fused:
                exported = self._fuse(exported, scratch / "fused")
            final = out_dir / MODEL_FILE
            if target.precision == "fp32":
                shutil.copy2(exported, final)
            elif target.precision == "fp16":
                self._to_fp16(exported, final)
            elif target.precision == "int8-dynamic":
                self._quantize_dynamic(exported, final, bool(options.per_channel), fused=options.fused,
                                       device=target.device)
            else:
                self._quantize_static(model_dir, exported, final, calibration, options)
        if not options.with_tokenizer:
            return [final]
        from edgedistill.export.backends.onnx_tokenizer import TOKENIZER_MODEL_FILE, build_tokenizer_model

        return [final, build_tokenizer_model(model_dir, final, out_dir / TOKENIZER_MODEL_FILE,
                                             options.text_max_length)]

    def load(self, artifact: Artifact, threads: int) -> OnnxRunner:
        return OnnxRunner(artifact.path / MODEL_FILE, threads)

    def check_text_model(self, artifact: Artifact, runner: OnnxRunner, source_dir: Path,
                         texts: list[Example]) -> dict[str, Any] | None:
        """The string gate of a ``with_tokenizer`` artifact (:mod:`edgedistill.export.backends.onnx_tokenizer`): its
        token ids against the Hugging Face tokenizer's and its logits against ``model.onnx``'s, on ``texts``."""
        options = target_options(artifact.target)
        if not options.with_tokenizer:
            return None
        if any(isinstance(text, tuple) for text in texts):
            raise ConfigError(f"target {artifact.target.name}: with_tokenizer builds a graph for single sentences; "
                              "this task has sentence pairs (export without with_tokenizer)")
        from transformers import AutoTokenizer

        from edgedistill.export.backends.onnx_tokenizer import TOKENIZER_MODEL_FILE, OnnxTextRunner, check_tokenizer_model

        text_runner = OnnxTextRunner(artifact.path / TOKENIZER_MODEL_FILE, threads=1)
        report = check_tokenizer_model(text_runner, runner, AutoTokenizer.from_pretrained(source_dir),
                                       [str(t) for t in texts], options.text_max_length)
        if not report["passed"]:
            raise ParityError(f"target {artifact.target.name}: {TOKENIZER_MODEL_FILE} failed its string gate: token "
                              f"ids equal on {report['token_ids_equal']}/{report['texts']} texts (first that differ: "
                              f"{report['mismatched']}), logits {report['max_abs_vs_id_model']:.3g} from "
                              f"{MODEL_FILE}'s (max {report['max_abs']:g}). No artifact was written.")
        return report

    def inspect(self, model_files: list[Path], target: TargetConfig) -> dict[str, Any]:
        """Integer coverage of int8 artifacts: the MACs that run in int8, and the op types left in float."""
        if not target.precision.startswith("int8"):
            return {}
        from edgedistill.export.backends.onnx_quant import integer_coverage

        return {"integer": integer_coverage(model_files[0])}

    def layer_errors(self, artifact: Artifact, source_dir: Path, inputs: list[Example], max_length: int,
                     threads: int) -> list[TensorError]:
        """Per-tensor quantization error of a QDQ (int8-static) artifact against a fresh fp32 export of its
        source, on ``inputs`` (sentences or sentence pairs)."""
        from transformers import AutoTokenizer

        from edgedistill.export.backends.onnx_quant import layer_errors
        target = artifact.target
        require_full_integer(target)
        from edgedistill.quant.outlier_split import read_plan

        options = target_options(target)
        with tempfile.TemporaryDirectory(prefix="edgedistill-onnx-ref-") as scratch:
            reference = self._export_fp32(source_dir, Path(scratch), options, target.cls_only_last_layer,
                                          read_plan(artifact.path))  # split as the artifact was
            batches = padded_batches(inputs, AutoTokenizer.from_pretrained(source_dir), max_length)
            return layer_errors(artifact.path / MODEL_FILE, reference, batches, threads)

    # -- steps --------------------------------------------------------------------------------

    def _check(self, target: TargetConfig) -> OnnxOptions:
        check_precision(self, target)
        return target_options(target)

    @staticmethod
    def _export_fp32(model_dir: Path, out: Path, options: OnnxOptions, cls_only_last_layer: bool,
                     split: Plan | None = None) -> Path:
        """optimum's ONNX exporter (what ``main_export`` runs once it has loaded the model) on the model,
        its last layer computing the [CLS] row alone where the task allows and the target asks;
        ``split``: outlier channels to give their own matrix multiplies. Reused within a process
        (:mod:`edgedistill.export.backends.conversions`)."""

        def export(folder: Path) -> None:
            from optimum.exporters.onnx import onnx_export_from_model
            from optimum.exporters.onnx.__main__ import maybe_load_preprocessors

            from edgedistill.quant.cls_pruning import load_for_export

            model, task = load_for_export(model_dir, cls_only_last_layer)
            if split:
                from edgedistill.quant.outlier_split import apply_plan

                model = apply_plan(model, split)
            if task.optimum_task is None:  # optimum exports other outputs than the task's: the task's module
                _trace(model_dir, model, task, folder, options.opset)
            else:
                onnx_export_from_model(model, folder, opset=options.opset, task=task.optimum_task,
                                       do_validation=False, preprocessors=maybe_load_preprocessors(str(model_dir)))

        converted(model_dir, {"backend": "onnx", "opset": options.opset, "cls_only_last_layer": cls_only_last_layer,
                              "split": split}, out, export)
        return out / MODEL_FILE

    @staticmethod
    def _fuse(model: Path, out: Path) -> Path:
        from optimum.onnxruntime import ORTOptimizer
        from optimum.onnxruntime.configuration import OptimizationConfig
        from transformers import AutoConfig

        optimizer = ORTOptimizer(onnx_model_path=[model], config=AutoConfig.from_pretrained(model.parent))
        optimizer.optimize(OptimizationConfig(optimization_level=2, optimize_for_gpu=False), out,
                           file_suffix=None)
        return out / MODEL_FILE

    @staticmethod
    def _to_fp16(model: Path, final: Path) -> None:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        converted = convert_float_to_float16(onnx.load(str(model)), keep_io_types=True)
        onnx.save(converted, str(final))

    @staticmethod
    def _quantize_dynamic(model: Path, final: Path, per_channel: bool, fused: bool, device: str) -> None:
        if fused:
            import onnx
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(model), str(final), per_channel=per_channel, weight_type=QuantType.QInt8,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
            return
        from optimum.onnxruntime import ORTQuantizer

        quantizer = ORTQuantizer.from_pretrained(model.parent, file_name=model.name)
        written = quantizer.quantize(_dynamic_quantization_config(device, per_channel), model.parent / "q",
                                     file_suffix=None)
        shutil.copy2(Path(written) / MODEL_FILE, final)

    @staticmethod
    def _quantize_static(model_dir: Path, model: Path, final: Path, calibration: Calibration | None,
                         options: OnnxOptions) -> None:
        """Full-integer QDQ with ONNX Runtime's ``quantize_static``, calibrated on real task text.

        Only the inputs of ``quantize_ops`` get QuantizeLinear/DequantizeLinear pairs (by default the matrix
        multiplies, which ONNX Runtime then runs as integer GEMMs returning float); everything else stays
        float, so calibration never sees the attention mask's ``finfo.min`` fill.
        """
        import onnx
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                              quantize_static)
        from transformers import AutoTokenizer

        if calibration is None or not calibration.inputs:
            raise ConfigError("int8-static needs calibration text: the calibration sample is empty "
                              "(data.calibration_samples, and a non-empty train split)")
        graph = onnx.load(str(model), load_external_data=False).graph
        graph_inputs = {i.name for i in graph.input}
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if options.calibration == "minmax" and options.calibration_padding == "exclude":
            # MinMax reduces each batch to its extremes, so batches may differ in length: one sentence a
            # batch at its own length, and no pad row (hidden from every real token by the attention mask)
            # widens a range.
            encoded = padded_batches(calibration.inputs, tokenizer, calibration.max_length, 1, padding=False)
        else:
            # Every batch padded to max_length: the histogram calibrators stack each tensor's batches, so all
            # batches need one shape (batches padded to their own longest row made them abort).
            encoded = padded_batches(calibration.inputs, tokenizer, calibration.max_length,
                                     options.calibration_samples_per_batch, padding="max_length")
        batches = [{k: v for k, v in (("input_ids", ids), ("attention_mask", mask)) if k in graph_inputs}
                   for ids, mask in encoded]
        if "token_type_ids" in graph_inputs:  # a BERT-type graph: the pairs' segments, as the runner derives them
            for feed in batches:
                feed["token_type_ids"] = segment_ids(feed["input_ids"], tokenizer.sep_token_id)

        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.feeds = iter(batches)

            def get_next(self) -> dict[str, np.ndarray] | None:
                return next(self.feeds, None)

        weights = {init.name for init in graph.initializer}
        overrides = {name: [{"quant_type": QuantType.QInt16}] for node in graph.node
                     if node.op_type in options.int16_ops for name in node.input if name and name not in weights}
        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                  "entropy": CalibrationMethod.Entropy}[options.calibration]
        cache = model.parent / "calibration.json"
        if options.calibration == "entropy":
            _entropy_ranges(model, list(options.quantize_ops), Reader(), options.symmetric_activations, cache)
        matmuls = [node.name for node in graph.node if node.op_type in ("MatMul", "Gemm")]
        head = head_layers(model_dir) if options.float_head else 0
        kept_float = matmuls[len(matmuls) - head:] if head else []  # graph order: the head comes last
        try:
            quantize_static(
                str(model), str(final), Reader(), quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(options.quantize_ops), nodes_to_exclude=kept_float,
                per_channel=options.per_channel is not False,
                activation_type=QuantType.QInt8 if options.activations == "int8" else QuantType.QUInt8,
                weight_type=QuantType.QInt8, calibrate_method=method,
                calibration_cache_path=cache if cache.is_file() else None,
                extra_options={"ActivationSymmetric": options.symmetric_activations, "WeightSymmetric": True,
                               # the histogram calibrators' ranges follow the activations' symmetry
                               # (the Percentile calibrator otherwise makes every range symmetric)
                               "CalibTensorRangeSymmetric": options.symmetric_activations,
                               "CalibPercentile": options.percentile, "TensorQuantOverrides": overrides,
                               "UseQDQContribOps": bool(overrides),
                               "OpTypesToExcludeOutputQuantization": [] if options.quantize_outputs
                               else list(options.quantize_ops)})
        except ValueError as exc:  # a calibrator refusing a tensor's value range
            raise ExportError(f"{options.calibration} calibration failed on {len(calibration.inputs)} sentences "
                              f"({exc}); try calibration: minmax, or fewer quantize_ops") from None


ENTROPY_BINS = 2048  # histogram bins for the entropy (KL) search over 128 quantized bins


def _trace(model_dir: Path, model: Any, task: Any, folder: Path, opset: int) -> None:
    """``model.onnx`` traced from the task's export module with torch's TorchScript-based exporter (what
    optimum's exporter runs), dynamic batch and sequence axes, inputs ``input_ids`` and ``attention_mask`` and
    the task's output; the model's ``config.json`` beside it (ORT's optimizer reads the model type there)."""
    import torch

    from edgedistill.quant.cls_pruning import traced_module

    module = traced_module(model_dir, model, task)
    output = task.output_names()[0]
    example = (torch.ones((2, 16), dtype=torch.long), torch.ones((2, 16), dtype=torch.long))
    folder.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(module, example, str(folder / MODEL_FILE), input_names=["input_ids", "attention_mask"],
                          output_names=[output], opset_version=opset, do_constant_folding=True, dynamo=False,
                          dynamic_axes={"input_ids": {0: "batch_size", 1: "sequence_length"},
                                        "attention_mask": {0: "batch_size", 1: "sequence_length"},
                                        output: {0: "batch_size"}})
    model.config.save_pretrained(folder)


def _entropy_ranges(model: Path, op_types: list[str], reader: Any, symmetric: bool, cache: Path) -> None:
    """Entropy calibration with a histogram fine enough to search: ``quantize_static`` builds its entropy
    calibrator with 128 bins for 128 quantized bins, a search with one candidate (its ranges equal MinMax's,
    scale for scale, on the SST-2 student). The ranges go to a calibration cache that quantize_static reads."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator, save_tensors_data

    calibrator = create_calibrator(model, op_types, augmented_model_path=str(cache.with_suffix(".onnx")),
                                   calibrate_method=CalibrationMethod.Entropy,
                                   extra_options={"symmetric": symmetric, "num_bins": ENTROPY_BINS,
                                                  "num_quantized_bins": 128})
    calibrator.collect_data(reader)
    save_tensors_data(calibrator.compute_data(), cache)


BACKEND = OnnxBackend()
