"""Typed options of the ONNX, TFLite and Core ML targets, checked when a target is built (config load, profile load).

A target's ``options`` mapping is parsed by its backend's model here: unknown keys, wrong types, op
types the backend's quantizer does not know, and mixed-precision choices that contradict the precision
(``int16_ops`` on a dynamic-range target, say) fail in the first second of ``edgedistill run``, naming the
target, the key and the allowed values, instead of as an export after hours of training. The module only
needs pydantic, so the command line stays fast; the op-type lists mirror the quantizers' own registries
(a test keeps them in sync with onnxruntime and ai-edge-quantizer).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgedistill.core.errors import ConfigError
from edgedistill.core.registry import FORMATS

# onnxruntime.quantization: QDQRegistry | QLinearOpsRegistry (what quantize_static can put in integer).
ONNX_QUANTIZABLE_OPS = (
    "Add", "ArgMax", "AveragePool", "BatchNormalization", "Clip", "Concat", "Conv", "ConvTranspose", "CumSum",
    "EmbedLayerNormalization", "Flatten", "Gather", "GatherElements", "Gemm", "GlobalAveragePool",
    "InstanceNormalization", "LayerNormalization", "LeakyRelu", "MatMul", "MaxPool", "Mul", "Pad", "Relu",
    "Reshape", "Resize", "Sigmoid", "Slice", "Softmax", "Split", "Squeeze", "TopK", "Transpose", "Unsqueeze",
    "Where",
)
# ai_edge_quantizer.qtyping.TFLOperationName (less '*', INPUT and OUTPUT): ops a static recipe can cover.
TFLITE_QUANTIZABLE_OPS = (
    "FULLY_CONNECTED", "BATCH_MATMUL", "DEPTHWISE_CONV_2D", "CONV_2D", "CONV_2D_TRANSPOSE", "AVERAGE_POOL_2D",
    "RESHAPE", "CUSTOM_OP", "EMBEDDING_LOOKUP", "SOFTMAX", "TANH", "TRANSPOSE", "GELU", "ADD", "SUB", "MUL",
    "MEAN", "RSQRT", "CONCATENATION", "STRIDED_SLICE", "SPLIT", "LOGISTIC", "SLICE", "SUM", "SELECT",
    "SELECT_V2", "DYNAMIC_UPDATE_SLICE", "STABLEHLO_COMPOSITE", "PAD", "SQUARED_DIFFERENCE", "MAX_POOL_2D",
    "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "GATHER_ND", "PACK", "UNPACK", "DIV", "BROADCAST_TO", "SQRT",
    "GATHER", "HARD_SWISH", "MAXIMUM", "PADV2", "REDUCE_MIN", "EQUAL", "NOT_EQUAL", "MIRROR_PAD",
    "SPACE_TO_DEPTH", "RELU",
)




class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Keys that only mean something for full-integer (int8-static) targets.
    STATIC_ONLY: ClassVar[frozenset[str]] = frozenset()

    def check_precision(self, precision: str) -> None:
        misplaced = sorted(self.model_fields_set & self.STATIC_ONLY)
        if misplaced and precision != "int8-static":
            raise ValueError(f"{', '.join(misplaced)} set on a {precision} target: these choose what a "
                             "full-integer model keeps in float or 16 bits; they need precision int8-static")


def _sorted_buckets(buckets: list[int]) -> list[int]:
    """Sequence buckets of a fixed-shape backend: distinct lengths of at least 2, sorted."""
    buckets = sorted(buckets)
    if not buckets or buckets[0] < 2 or len(set(buckets)) != len(buckets):
        raise ValueError(f"buckets must be distinct lengths >= 2, got {buckets}")
    return buckets


def _known_ops(ops: list[str], known: tuple[str, ...], key: str) -> list[str]:
    unknown = [op for op in ops if op not in known]
    if unknown:
        raise ValueError(f"{key}: unknown op type(s) {unknown}; the quantizer knows: {', '.join(known)}")
    return ops


class OnnxOptions(_Options):
    """ONNX: ``fused`` graph, per-channel weights, and the full-integer (QDQ) recipe of int8-static."""

    STATIC_ONLY: ClassVar[frozenset[str]] = frozenset({"calibration", "percentile", "quantize_ops", "int16_ops",
                                                       "activations", "symmetric_activations", "quantize_outputs",
                                                       "float_head", "calibration_samples_per_batch",
                                                       "calibration_padding", "outlier_split_ratio",
                                                       "outlier_split_sides"})

    fused: bool = False
    # Per-channel weight scales; unset: per-tensor for int8-dynamic (optimum's default), per-channel for
    # int8-static (the recipe measured in benchmarks/results/full-int8).
    per_channel: bool | None = None
    opset: int | None = Field(None, ge=14)
    calibration: Literal["minmax", "percentile", "entropy"] = "minmax"
    percentile: float = Field(99.999, gt=90.0, lt=100.0)
    # Op types whose inputs are quantized (QDQ); every other op stays float.
    quantize_ops: list[str] = Field(default_factory=lambda: ["MatMul", "Gemm"])
    # Op types among quantize_ops whose activations are 16-bit (int16 QDQ, com.microsoft ops): A16W8.
    int16_ops: list[str] = Field(default_factory=list)
    # uint8 by default: ONNX Runtime's x86 integer GEMMs take uint8 activations times int8 weights (on the SST-2
    # student, the accuracy of asymmetric int8 at a fraction of its latency); asymmetric because GELU outputs are
    # one-sided (symmetric int8 lost agreement). Measured in benchmarks/results/full-int8.
    activations: Literal["int8", "uint8"] = "uint8"
    symmetric_activations: bool = False
    # Also quantize the outputs of quantize_ops (requantized int8 results, as an NPU keeps them); false: the
    # integer matmuls return float (ONNX Runtime's MatMulIntegerToFloat), sparing the residual stream.
    quantize_outputs: bool = False
    # Keep the classification head (the last two matrix multiplies: pre-classifier / pooler and classifier,
    # 0.03% of the work) in float, as quantizers conventionally keep a network's last layer.
    float_head: bool = False
    calibration_samples_per_batch: int = Field(16, ge=1)
    # MinMax only: exclude runs each calibration sentence alone at its own length, so no pad row reaches a
    # range; include pads every batch to max_length, as the histogram calibrators (percentile, entropy)
    # always do (they stack each tensor's batches, which needs one shape).
    calibration_padding: Literal["exclude", "include"] = "exclude"
    # Input channels of a matrix multiply peaking above this many times its median channel's peak on the
    # calibration text get a narrow MatMul (and an activation scale) of their own (edgedistill.quant.outlier_split);
    # 0: off. ``outlier_split_sides: [input, output]`` adds the output side, for quantize_outputs.
    outlier_split_ratio: float = Field(8.0, ge=0.0)
    outlier_split_sides: list[Literal["output", "input"]] = Field(default_factory=lambda: ["input"], min_length=1)
    # Also write model_with_tokenizer.onnx: strings in, logits out (onnxruntime-extensions' BertTokenizer op in
    # an ONNX Loop before model.onnx), checked from strings at export; text_max_length: where it truncates.
    with_tokenizer: bool = False
    text_max_length: int = Field(128, ge=3)

    @field_validator("quantize_ops", "int16_ops")
    @classmethod
    def _ops(cls, ops: list[str], info: Any) -> list[str]:
        return _known_ops(ops, ONNX_QUANTIZABLE_OPS, info.field_name)

    def check_precision(self, precision: str) -> None:
        super().check_precision(precision)
        stray = sorted(set(self.int16_ops) - set(self.quantize_ops))
        if stray:
            raise ValueError(f"int16_ops {stray} are not in quantize_ops {self.quantize_ops}: an op left in "
                             "float cannot have 16-bit activations")
        if self.fused and precision == "int8-static":
            raise ValueError("fused: true with int8-static: ONNX Runtime's quantizer cannot shape-infer a fused "
                             "graph (and fuses the QDQ graph itself at load); set fused: false")


class TFLiteOptions(_Options):
    """TFLite: sequence buckets, and the full-integer recipe of int8-static (ai-edge-quantizer)."""

    STATIC_ONLY: ClassVar[frozenset[str]] = frozenset({"quantize_ops", "int16_ops", "symmetric_ops",
                                                       "float_head", "float_cls_row", "int8_embeddings",
                                                       "outlier_split_ratio", "outlier_split_sides", "calibration",
                                                       "calibration_padding"})

    buckets: list[int] = Field(default_factory=lambda: [32, 64, 128])
    batch: int = Field(1, ge=1)
    overflow: Literal["truncate", "refuse"] = "truncate"
    # Op types given int8 weights and int8 activations with calibrated scales; every other op stays float.
    quantize_ops: list[str] = Field(default_factory=lambda: ["FULLY_CONNECTED"])
    # Op types among quantize_ops given 16-bit activations (a16w8) instead.
    int16_ops: list[str] = Field(default_factory=list)
    # Op types among quantize_ops whose int8 activations are symmetric (zero point 0) instead of
    # ai-edge-quantizer's asymmetric default: XNNPACK runs int8 BATCH_MATMUL only on symmetric inputs.
    symmetric_ops: list[str] = Field(default_factory=list)
    # Keep the classification head (the last two FULLY_CONNECTED ops: pre-classifier / pooler and classifier)
    # in float: their int8 outputs, the logits among them, were the worst-quantized tensors of the SST-2 student.
    float_head: bool = True
    # Keep float the matrix multiplies that compute one row per sequence: with cls_only_last_layer, the last
    # layer's [CLS]-row query, attention, attention output and feed-forward (0.3% of the MACs at 128 tokens),
    # and the head. They held the SST-2 student's worst-quantized tensors before the input split; with it,
    # keeping them float changed nothing measurable (benchmarks/results/int8-recipes.md).
    float_cls_row: bool = False
    # Output channels of a linear layer peaking above this many times its median channel's peak on the
    # calibration text get a FULLY_CONNECTED (and an int8 scale) of their own (edgedistill.quant.outlier_split);
    # 0 turns it off. What it buys on the SST-2 student: benchmarks/results/int8-recipes.md.
    outlier_split_ratio: float = Field(8.0, ge=0.0)
    # Which side of each linear layer is split: output (its requantized result) and input (the activation
    # quantized on its way in, where LayerNorm's and GELU's outlier channels sit).
    outlier_split_sides: list[Literal["output", "input"]] = Field(default_factory=lambda: ["output", "input"],
                                                                  min_length=1)
    # The embedding table as int8 weights (weight-only: the lookup's output is float).
    int8_embeddings: bool = True
    # How the activations seen on the calibration text become a range: minmax, the extremes over every
    # sentence; moving-average, ai-edge-quantizer's default, an exponential moving average (0.95 per sentence)
    # of each sentence's extremes, which mostly reflects the last ~20 sentences it was fed.
    calibration: Literal["minmax", "moving-average"] = "minmax"
    # Which rows of the padded calibration sentences a FULLY_CONNECTED minmax range spans: exclude, the real
    # tokens alone, one range per layer shared by every bucket signature (padding never reaches the [CLS]
    # row, and it widened the SST-2 student's attention input ranges: benchmarks/results/calibration-padding.md);
    # include, every row, each bucket on its own sentences. BATCH_MATMUL ranges are ai-edge-quantizer's either way.
    calibration_padding: Literal["exclude", "include"] = "exclude"

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, buckets: list[int]) -> list[int]:
        return _sorted_buckets(buckets)

    @field_validator("quantize_ops", "int16_ops", "symmetric_ops")
    @classmethod
    def _ops(cls, ops: list[str], info: Any) -> list[str]:
        return _known_ops(ops, TFLITE_QUANTIZABLE_OPS, info.field_name)

    def check_precision(self, precision: str) -> None:
        super().check_precision(precision)
        for key in ("int16_ops", "symmetric_ops"):
            stray = sorted(set(getattr(self, key)) - set(self.quantize_ops))
            if stray:
                raise ValueError(f"{key} {stray} are not in quantize_ops {self.quantize_ops}: an op left in "
                                 "float has no integer activations to choose for")
        both = sorted(set(self.int16_ops) & set(self.symmetric_ops))
        if both:
            raise ValueError(f"{both} in both int16_ops and symmetric_ops: 16-bit activations are always symmetric; "
                             "symmetric_ops is for int8")


# Op types coremltools' activation quantization can surround with quantize/dequantize pairs.
COREML_ACTIVATION_OPS = ("linear", "add", "conv", "avg_pool", "max_pool")


class CoreMLOptions(_Options):
    """Core ML: the package's shapes and deployment target, weight compression, and W8A8's activation recipe."""

    STATIC_ONLY: ClassVar[frozenset[str]] = frozenset({"activation_ops", "activation_mode", "quantize_outputs",
                                                       "outlier_split_ratio"})

    buckets: list[int] = Field(default_factory=lambda: [32, 64, 128])
    # enumerated: exactly the bucket lengths (needs iOS18); range: any length up to the largest bucket.
    shapes: Literal["enumerated", "range"] = "enumerated"
    compute_units: Literal["ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE"] = "ALL"
    deployment_target: Literal["iOS16", "iOS17", "iOS18"] = "iOS18"
    # Compress only weight tensors with at least this many elements (vectors and scalars stay fp16).
    weight_threshold: int = Field(2048, ge=1)
    overflow: Literal["truncate", "refuse"] = "truncate"
    # Palettization: one look-up table per this many output channels (iOS18); unset: one per tensor.
    palette_group_size: int | None = Field(None, ge=1)
    activation_ops: list[str] = Field(default_factory=lambda: ["linear"])
    activation_mode: Literal["linear", "linear_symmetric"] = "linear"
    quantize_outputs: bool = False
    # Input channels of a linear layer peaking above this many times its median channel's peak on the
    # calibration text get a narrow layer (and an int8 scale) of their own (edgedistill.quant.outlier_split,
    # side "input"); 0 turns it off.
    outlier_split_ratio: float = Field(8.0, ge=0.0)

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, buckets: list[int]) -> list[int]:
        return _sorted_buckets(buckets)

    @field_validator("activation_ops")
    @classmethod
    def _ops(cls, ops: list[str], info: Any) -> list[str]:
        return _known_ops(ops, COREML_ACTIVATION_OPS, info.field_name)

    def check_precision(self, precision: str) -> None:
        super().check_precision(precision)
        if self.shapes == "enumerated" and self.deployment_target != "iOS18":
            raise ValueError(f"enumerated shapes on two inputs need deployment_target iOS18 (coremltools refuses "
                             f"them below); use shapes: range for {self.deployment_target}")
        if self.palette_group_size is not None and self.deployment_target != "iOS18":
            raise ValueError("palette_group_size (a look-up table per group of output channels) needs "
                             "deployment_target iOS18")


_MODELS: dict[str, type[_Options]] = {"onnx": OnnxOptions, "tflite": TFLiteOptions, "coreml": CoreMLOptions}


def parse_options(backend: str, precision: str, options: dict[str, Any]) -> _Options | None:
    """The typed options of a target, or None for a backend that takes none (pytorch).

    Raises ``ValueError`` (inside pydantic validation) or :class:`ConfigError` naming the key."""
    if precision not in FORMATS[backend].precisions:
        raise ConfigError(f"precision {precision!r} is not built by the {backend} backend; it builds: "
                          f"{', '.join(FORMATS[backend].precisions)}")
    model = _MODELS.get(backend)
    if model is None:
        return None
    try:
        parsed = model.model_validate(options)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "options"
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown {backend} option {key!r}; valid: {', '.join(model.model_fields)}")
            else:
                message = err["msg"].removeprefix("Value error, ").removeprefix(f"{key}: ")
                got = "" if err["type"] == "value_error" else f" (got {err.get('input')!r})"
                problems.append(f"options.{key}: {message}{got}")
        raise ConfigError("; ".join(problems)) from None
    try:
        parsed.check_precision(precision)
    except ValueError as exc:
        raise ConfigError(f"options: {exc}") from None
    return parsed


def target_options(target: Any) -> Any:
    """A target's typed options, with a :class:`ConfigError` that names the target."""
    try:
        return parse_options(target.backend, target.precision, dict(target.options))
    except ConfigError as exc:
        raise ConfigError(f"target {target.name}: {exc}") from None
