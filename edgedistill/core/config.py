"""The configuration: pydantic models, YAML loading with line numbers, presets and overrides.

One YAML file describes a run. Unknown keys and bad values are errors that name the key (and the
line of the file it came from); command-line options and ``--set a.b=value`` override the file.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgedistill.core.errors import ConfigError
from edgedistill.core.registry import BACKENDS, DEFAULT_TASK, FORMATS, PRECISIONS, TASKS

PRESETS = ("quick",)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where the task data comes from and how it is split and tokenized."""

    dataset: str = "sst2"
    text_column: str = "sentence"
    text_pair_column: str | None = None
    label_column: str = "label"
    label_names: list[str] | None = None
    train_split: str = "train"
    eval_split: str = "validation"
    eval_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    max_length: int = Field(64, ge=8, le=4096)
    max_train_samples: int | None = Field(None, ge=1)
    max_eval_samples: int | None = Field(None, ge=1)
    calibration_samples: int = Field(256, ge=1)
    # Word-tagged data (token classification): the tag scheme of the files (auto: detected from the tags), and
    # what happens to a sentence whose words do not all fit in max_length tokens.
    tag_scheme: Literal["auto", "iob1", "iob2", "bioes"] = "auto"
    long_sentences: Literal["truncate", "refuse"] = "truncate"

    @field_validator("label_names")
    @classmethod
    def _distinct_labels(cls, names: list[str] | None) -> list[str] | None:
        if names is not None:
            if len(names) < 2:
                raise ValueError("needs at least two label names")
            if len(set(names)) != len(names):
                raise ValueError(f"label names must be distinct, got {names}")
        return names


class TrainingRecipe(_Section):
    """The Trainer recipe shared by the teacher and the students: AdamW, warm-up, then linear decay."""

    epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(5e-5, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(128, ge=1)
    logging_steps: int = Field(50, ge=1)
    # Batches of rows of similar length (transformers' LengthGroupedSampler): on SST-2, random batches
    # pad to 3x the real tokens, so this trains about as fast again for the same steps.
    group_by_length: bool = True
    # Small data: when `epochs` gives fewer optimizer steps than min_steps, training runs enough epochs to
    # reach them (at most max_epochs), at small_data_learning_rate when set; 0: never stretched.
    min_steps: int = Field(0, ge=0)
    max_epochs: float = Field(20.0, gt=0)
    small_data_learning_rate: float | None = Field(None, gt=0)


class BornAgainConfig(_Section):
    """Born-again self-distillation of the teacher (Furlanello et al., 2018): once fine-tuned, the teacher
    teaches a fresh copy of the checkpoint it was fine-tuned from, on its soft targets over the training text
    and ``variants`` word-replacement variants of each sentence (TinyBERT's augmentation, the distill stage's
    machinery), and that copy becomes the teacher the students learn from."""

    enabled: bool = False
    variants: int = Field(3, ge=0)
    epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(1e-4, gt=0)
    temperature: float = Field(2.0, gt=0)


class TeacherConfig(TrainingRecipe):
    """The teacher model and, when it needs one, its fine-tuning recipe (transformers' Trainer)."""

    model: str = "packaged:all-MiniLM-L6-v2"
    train: Literal["auto", "always", "never"] = "auto"
    # One epoch at 1e-4 fine-tunes the packaged MiniLM as well as three at 5e-5 (benchmarks/results/teacher-full.md).
    learning_rate: float = Field(1e-4, gt=0)
    min_steps: int = Field(200, ge=0)
    small_data_learning_rate: float | None = Field(3e-5, gt=0)
    born_again: BornAgainConfig = Field(default_factory=BornAgainConfig)


class QatConfig(_Section):
    """Quantization-aware distillation: the distilled student trained on under int8 fake quantization."""

    enabled: bool = True
    epochs: float = Field(0.25, gt=0)
    learning_rate: float = Field(1e-5, gt=0)
    # Train with outlier channels split off as the full-integer TFLite export splits them
    # (edgedistill.quant.outlier_split; the export's outlier_split_ratio and _sides), so the fake quantization
    # matches; 0: off.
    outlier_split_ratio: float = Field(8.0, ge=0)
    outlier_split_sides: list[Literal["output", "input"]] = Field(default_factory=lambda: ["output", "input"],
                                                                  min_length=1)


class AugmentConfig(_Section):
    """Teacher-labelled augmentation: extra student training rows that the teacher labels (soft targets only).

    TinyBERT's defaults for the word replacement (each word replaced with probability 0.4 by one of its 15
    nearest neighbours); the neighbours come from the teacher's own word embeddings (nothing downloaded).
    """

    # Unlabelled in-domain text: a .txt (one text per line), .tsv/.csv/.jsonl (data.text_column) or a folder.
    file: str | None = None
    # Variants generated from each training sentence by word replacement (0: none). Embeddings: of each task
    # training sentence, added to the corpus the student learns the teacher's vectors on.
    variants: int = Field(0, ge=0)
    replace_prob: float = Field(0.4, gt=0, le=1)
    neighbours: int = Field(15, ge=1)
    # A seeded sample of at most this many augmented rows (file and variants together); null keeps all.
    max_samples: int | None = Field(None, ge=1)

    @property
    def enabled(self) -> bool:
        return bool(self.file or self.variants)


class DistillConfig(TrainingRecipe):
    """The student and the DistilBERT recipe that trains it (plus the no-teacher baseline)."""

    student: str | None = None
    layers: int = Field(3, ge=1)
    layer_map: list[int] | None = None
    hidden_size: int | None = Field(None, ge=8)
    # The student's architecture: auto (DistilBERT where the teacher's layers map onto it exactly, else the
    # teacher's own class with fewer layers: edgedistill.core.families), distilbert or teacher.
    student_architecture: Literal["auto", "distilbert", "teacher"] = "auto"
    align: Literal["last", "uniform"] = "last"
    # Where the student's layers are copied from: the fine-tuned teacher ("teacher", DistilBERT-style: the
    # task is already in them) or the checkpoint the teacher was fine-tuned from ("pretrained").
    init: Literal["teacher", "pretrained"] = "teacher"
    # The baseline's: "pretrained" never sees the teacher, so the baseline shows all the teacher adds (its
    # fine-tuned layers and its targets); "teacher" isolates what the distillation losses add.
    baseline_init: Literal["teacher", "pretrained"] = "pretrained"
    temperature: float = Field(2.0, gt=0)
    alpha_kd: float = Field(1.0, ge=0)
    alpha_ce: float = Field(1.0, ge=0)
    alpha_cos: float = Field(1.0, ge=0)
    # Intermediate-layer distillation (TinyBERT's task stage), on the layers `align` pairs: the hidden
    # states' mean squared error (through a learned projection when the student is narrower) and the KL
    # between the teacher's and the student's attention distributions (heads averaged when counts differ).
    alpha_mse: float = Field(0.0, ge=0)
    alpha_att: float = Field(0.0, ge=0)
    # TinyBERT's two-phase schedule: this many epochs on the intermediate-layer losses alone (alpha_mse,
    # alpha_att), then `epochs` on the prediction losses (alpha_kd, alpha_ce, alpha_cos); 0 trains all together.
    intermediate_epochs: float = Field(0.0, ge=0)
    cache_teacher_logits: bool = False
    # The student's dropout (hidden states and attention probabilities) while it trains; null: the teacher's.
    # The embedding task sets 0: its student imitates a deterministic function, the teacher's vectors.
    dropout: float | None = Field(None, ge=0, lt=1)
    baseline: bool = True
    augment: AugmentConfig = AugmentConfig()
    qat: QatConfig = QatConfig()
    save_steps: int = Field(200, ge=1)
    epochs: float = Field(2.0, gt=0)
    # Embeddings: the unlabelled text the student learns the teacher's vectors on, besides the task data's
    # training sentences: files or folders (one text per line, a TSV/CSV/JSONL column data.text_column, a CoNLL
    # file's sentences), or "auto": the data sets in the folders beside the task data's folder.
    corpus: list[str] | Literal["auto"] = Field(default_factory=list)
    # At most this many distinct sentences in all (null: all): every task training sentence, then a seeded
    # sample of the corpus's.
    corpus_max_sentences: int | None = Field(None, ge=1)
    # Embeddings: weight of the MSE between the student's and the teacher's normalised sentence vectors (the
    # embedding task's defaults set it to 1 and the logit terms to 0).
    alpha_embedding: float = Field(0.0, ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> DistillConfig:
        if self.layer_map is not None:
            _check_layer_map_shape(self.layer_map, self.layers)
        if not (self.alpha_kd or self.alpha_ce or self.alpha_cos or self.alpha_mse or self.alpha_att
                or self.alpha_embedding):
            raise ValueError("alpha_kd, alpha_ce, alpha_cos, alpha_mse, alpha_att and alpha_embedding are all 0: "
                             "nothing to train on")
        if self.augment.enabled and not (self.alpha_kd or self.alpha_embedding):
            raise ValueError("augmented rows have no labels: they teach through the teacher's soft targets (or, "
                             "for embeddings, its vectors), so distill.augment needs alpha_kd > 0 "
                             "(or alpha_embedding > 0)")
        if self.intermediate_epochs and not (self.alpha_mse or self.alpha_att):
            raise ValueError(f"intermediate_epochs = {self.intermediate_epochs} trains on the intermediate-layer "
                             "losses alone first, and alpha_mse and alpha_att are both 0: set one of them, or "
                             "intermediate_epochs to 0")
        if self.intermediate_epochs and not (self.alpha_kd or self.alpha_ce or self.alpha_cos):
            raise ValueError(f"intermediate_epochs = {self.intermediate_epochs} is followed by `epochs` on the "
                             "prediction losses, and alpha_kd, alpha_ce and alpha_cos are all 0: set one of them")
        layer_terms = [k for k in ("alpha_cos", "alpha_mse", "alpha_att") if getattr(self, k)]
        if self.cache_teacher_logits and layer_terms:
            raise ValueError(f"cache_teacher_logits saves the teacher's passes only without the layer losses; set "
                             f"{', '.join(layer_terms)} to 0 or cache_teacher_logits to false")
        return self


def _check_layer_map_shape(layer_map: list[int], student_layers: int) -> None:
    """One teacher layer index per student layer, none negative; the message names the offending entry."""
    for index, layer in enumerate(layer_map):
        if layer < 0:
            raise ValueError(f"layer_map[{index}] = {layer} is not a teacher layer index (they count from 0)")
    if len(layer_map) > student_layers:
        raise ValueError(f"layer_map[{student_layers}] = {layer_map[student_layers]} has no student layer: the "
                         f"student has {student_layers} layers, the map {len(layer_map)} entries")
    if len(layer_map) < student_layers:
        raise ValueError(f"layer_map has no entry [{len(layer_map)}] for student layer {len(layer_map)}: the "
                         f"student has {student_layers} layers, the map {len(layer_map)} entries")


class Tolerance(_Section):
    """The verification gate: how close an artifact must stay to the PyTorch model it came from.

    fp32 artifacts are held to ``max_abs`` on the outputs; reduced precisions to what the task compares
    (classification: label agreement; embeddings: cosine to the checkpoint's vectors and nearest-neighbour
    overlap) and the drop of its headline metric in points (accuracy; STS Spearman) on the eval text. Unset
    values take the task's default for the precision; a bound the task does not compare is ignored.
    """

    max_abs: float | None = Field(None, gt=0)
    min_agreement: float | None = Field(None, ge=0, le=1)
    # the drop of the task's headline metric, in points (classification: accuracy; embedding: STS Spearman)
    max_accuracy_drop: float | None = Field(None, ge=0)
    # embeddings: per-sentence cosine to the checkpoint's vector (mean, and the worst sentence), and the share
    # of each eval sentence's 10 nearest neighbours in the eval pool that the artifact keeps
    min_cosine_mean: float | None = Field(None, ge=-1, le=1)
    min_cosine: float | None = Field(None, ge=-1, le=1)
    min_neighbour_overlap: float | None = Field(None, ge=0, le=1)


class TargetConfig(_Section):
    """One deployment point: a backend, a precision, and the backend's options."""

    name: str
    backend: Literal[BACKENDS]  # type: ignore[valid-type]  # edgedistill.core.registry
    precision: Literal[PRECISIONS] = "fp32"  # type: ignore[valid-type]
    description: str = ""
    # The device class the artifact is for (edgedistill/devices.py): arm64, x86-avx2, x86-avx512,
    # x86-avx512-vnni, apple-ane, or host (the export machine's class, resolved at export). Unset: the
    # backend's default (onnx x86-avx512-vnni, tflite arm64, coreml apple-ane, pytorch host).
    device: str | None = None
    # Backend options, e.g. onnx: fused, per_channel, calibration (minmax | percentile | entropy).
    options: dict[str, Any] = Field(default_factory=dict)
    # Export backends (onnx, tflite, coreml): trace the classifier with its last encoder layer computing the
    # [CLS] row only, the one row the classification head reads (exact; edgedistill/cls_pruning.py).
    cls_only_last_layer: bool = True
    tolerance: Tolerance = Tolerance()
    # The tasks the profile is made for (its options or gate assume their outputs); empty: every task.
    tasks: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _typed_options(self) -> TargetConfig:
        """The backend's typed options (edgedistill/target_options.py) must parse: checked at load time."""
        from edgedistill.core.devices import check_device
        from edgedistill.core.target_options import parse_options

        try:
            parse_options(self.backend, self.precision, self.options)
        except ConfigError as exc:
            raise ValueError(f"target {self.name}: {exc}") from None
        if self.device is None:
            self.device = FORMATS[self.backend].default_device
        try:
            check_device(self.backend, self.device)
        except ValueError as exc:
            raise ValueError(f"target {self.name}: {exc}") from None
        return self


DEFAULT_TARGETS = (
    "onnx-fp32", "onnx-fp16", "onnx-int8-dynamic", "onnx-fused-int8-dynamic", "onnx-int8-static",
    "tflite-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8-weights", "tflite-int8-static",
    "tflite-int8-static-fc-bmm", "coreml-fp16", "coreml-int8-weights", "coreml-int8-static", "coreml-palettize-6",
)


class BenchConfig(_Section):
    """What `edgedistill run` (and `bench` without options) measures."""

    batch_sizes: list[int] = Field(default_factory=lambda: [1, 8], min_length=1)
    seq_lengths: list[int] = Field(default_factory=lambda: [16, 32, 64, 128], min_length=1)
    real_samples: int = Field(300, ge=1)
    min_time: float = Field(1.0, gt=0)


class IsaCheckConfig(_Section):
    """Replaying every exported TFLite / ONNX artifact on another instruction set (edgedistill.emulation)."""

    # Instruction sets each artifact is replayed on after its export: [] (off) or [arm64].
    isas: list[Literal["arm64"]] = Field(default_factory=list)
    # The emulated CPUs (edgedistill.core.arm_cpus): cortex-a76, cortex-a53, max.
    cpus: list[str] = Field(default_factory=lambda: ["cortex-a76"], min_length=1)
    # Eval sentences replayed per artifact (with its golden vectors).
    samples: int = Field(256, ge=1)

    @field_validator("cpus")
    @classmethod
    def _known_cpus(cls, cpus: list[str]) -> list[str]:
        from edgedistill.core.arm_cpus import CPU_MODELS

        unknown = [cpu for cpu in cpus if cpu not in CPU_MODELS]
        if unknown:
            raise ValueError(f"unknown arm64 CPU {unknown[0]!r}; the CPUs are: {', '.join(CPU_MODELS)}")
        return cpus


class Config(_Section):
    """A whole run."""

    # What the models compute and how they are judged (edgedistill.tasks): classification.
    task: str = DEFAULT_TASK
    workdir: Path = Path("runs/default")
    seed: int = 42
    threads: int = Field(2, ge=1)
    data: DataConfig = DataConfig()
    teacher: TeacherConfig = TeacherConfig()
    distill: DistillConfig = DistillConfig()
    # Deployment targets: profile names from targets/ or inline target mappings.
    targets: list[str | TargetConfig] = Field(default_factory=lambda: list(DEFAULT_TARGETS))
    # Which trained models get exported to every target.
    export_models: list[Literal["student", "qat", "baseline", "teacher"]] = Field(default_factory=lambda: ["student"])
    bench: BenchConfig = BenchConfig()
    verify_isa: IsaCheckConfig = IsaCheckConfig()
    # Stop a run whose teacher or student is not clearly better than the trivial answer (classification: the
    # majority class) on the eval split, instead of exporting and benchmarking a model that learnt nothing.
    require_learning: bool = True

    @field_validator("task")
    @classmethod
    def _known_task(cls, name: str) -> str:
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; the tasks are: {', '.join(TASKS)}")
        return name


def default_config_text() -> str:
    """The embedded default configuration, comments included (what `edgedistill config` prints)."""
    return resources.files("edgedistill.core").joinpath("default_config.yaml").read_text(encoding="utf-8")


def load_config(
    path: str | Path | None = None,
    *,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Build the config: embedded default, then the preset, then the file, then the overrides.

    ``overrides`` maps dotted keys (``"teacher.epochs"``) to values already parsed from YAML.
    """
    merged = _parse_yaml(default_config_text(), "<embedded default>")
    layers: list[dict[str, Any]] = []  # what goes over the default, in order
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; the presets are: {', '.join(PRESETS)}")
        text = resources.files("edgedistill.core").joinpath(f"presets/{preset}.yaml").read_text("utf-8")
        layers.append(_parse_yaml(text, f"<preset {preset}>") or {})
    lines: dict[str, int] = {}
    source = "<embedded default>"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        user = _parse_yaml(text, str(path))
        if user is None:
            user = {}
        if not isinstance(user, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(user).__name__}")
        lines = _key_lines(text)
        source = str(path)
        layers.append(user)
    # A task's own defaults (its data, schedule and targets) sit between the embedded default and the rest.
    chosen = [(overrides or {}).get("task"), *(layer.get("task") for layer in reversed(layers))]
    task = next((name for name in chosen if name), merged.get("task"))
    task_defaults = resources.files("edgedistill.core").joinpath(f"presets/task-{task}.yaml")
    if task_defaults.is_file():
        _deep_merge(merged, _parse_yaml(task_defaults.read_text("utf-8"), f"<task {task} defaults>"))
    for layer in layers:
        _deep_merge(merged, layer)
    for dotted, value in (overrides or {}).items():
        _set_dotted(merged, dotted, value)
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source, lines)) from None


def parse_override(assignment: str) -> tuple[str, Any]:
    """Split ``KEY=VALUE`` from ``--set``; the value is read as YAML (``2``, ``null``, ``[a, b]``)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE (for example teacher.epochs=2), got {assignment!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: the value {raw!r} is not valid YAML ({exc.problem})") from None
    return key.strip(), value


def dump_config(config: Config) -> str:
    """The config as YAML (what every stage saves beside its outputs)."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: invalid YAML at {where}: {problem}") from None


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = tree
    for i, part in enumerate(parents):
        child = node.get(part)
        if not isinstance(child, dict):
            where = ".".join(parents[: i + 1])
            raise ConfigError(f"--set {dotted}: {where!r} is not a section of the config")
        node = child
    node[leaf] = value


def _key_lines(text: str) -> dict[str, int]:
    """Map each dotted key of a YAML mapping to the (1-based) line it is written on."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                dotted = f"{prefix}{key_node.value}"
                lines[dotted] = key_node.start_mark.line + 1
                walk(value_node, dotted + ".")

    root = yaml.compose(text)
    if root is not None:
        walk(root, "")
    return lines


def _describe(exc: ValidationError, source: str, lines: dict[str, int]) -> str:
    problems = []
    for err in exc.errors():
        if isinstance(err.get("input"), dict) and err["loc"][-1:] == ("str",):
            continue  # an inline target (a mapping) against the profile-name branch of `str | TargetConfig`
        # Union branches and validators show up as loc parts such as "function-after[...]": not keys.
        dotted = ".".join(str(part) for part in err["loc"] if not str(part).endswith("]"))
        where = f"{source}, line {lines[dotted]}" if dotted in lines else source
        if err["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown key {dotted!r}{_suggest(dotted)}")
        elif err["type"] == "value_error":  # our validators' messages name the key and the value themselves
            problems.append(f"{where}: {dotted}: {err['msg'].removeprefix('Value error, ')}")
        else:
            problems.append(f"{where}: {dotted}: {err['msg']} (got {err.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(problems)


def _suggest(dotted: str) -> str:
    *parents, leaf = dotted.split(".")
    model: type[BaseModel] = Config
    for part in parents:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    known = list(model.model_fields)
    close = difflib.get_close_matches(leaf, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} Valid keys here: {', '.join(known)}"
