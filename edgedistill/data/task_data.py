"""Task data: load labelled text from TSV, CSV, JSONL, a folder of those, or a hub dataset.

Everything here is plain Python (no torch), so the CLI can inspect data instantly. Bad input is met
with a :class:`DataError` naming the file and line, or the field, and what would fix it.
"""

from __future__ import annotations

import os
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedistill.core.config import DataConfig
from edgedistill.core.errors import DataError, MissingDependencyError
from edgedistill.core.hashing import sha256_file, sha256_json
from edgedistill.data.encoding import Example, encode
from edgedistill.data.text_files import column_index, delimited_records, json_records

DATA_DIR_ENV = "EDGEDISTILL_DATA_DIR"
SUFFIXES = (".tsv", ".csv", ".jsonl")
EVAL_NAMES = ("dev", "validation", "eval", "test")
_HUB_ALIASES = {"sst2": ("glue", "sst2")}
# Label names that belong to a published data set, recognised by the sha256 of its train file (its integer
# labels name nothing by themselves): GLUE SST-2's train.tsv (the hub's glue/sst2 carries the same names).
KNOWN_LABEL_NAMES = {
    "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1": ["negative", "positive"],
}


@dataclass
class Split:
    """One split of labelled text. ``labels`` are ids into the task's label names (a similarity task's rows are
    flattened sentence pairs and its labels the pairs' scores: :mod:`edgedistill.data.sts`)."""

    name: str
    texts: list[str]
    labels: list[Any]
    text_pairs: list[str] | None = None
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def inputs(self) -> list[Example]:
        """What a tokenizer takes for each row: the sentence, or the (sentence, pair) tuple of a pair task."""
        return list(zip(self.texts, self.text_pairs)) if self.text_pairs is not None else list(self.texts)

    def features(self, tokenizer: Any, max_length: int, *, with_token_type_ids: bool = False) -> list[dict]:
        """The rows tokenized for the Trainer (unpadded), labels attached (:func:`edgedistill.data.encoding.encode`)."""
        return encode(self.texts, self.text_pairs, self.labels, tokenizer, max_length,
                      with_token_type_ids=with_token_type_ids)

    def subset(self, indices: Sequence[int]) -> Split:
        pairs = [self.text_pairs[i] for i in indices] if self.text_pairs is not None else None
        return Split(
            self.name, [self.texts[i] for i in indices], [self.labels[i] for i in indices], pairs, self.source
        )


@dataclass
class TaskData:
    """Train and eval splits, label names, and a fingerprint of exactly what was loaded."""

    train: Split
    eval: Split
    label_names: list[str]
    fingerprint: str
    sources: list[str] = field(default_factory=list)

    def calibration_inputs(self, n: int, seed: int) -> list[Example]:
        """A seeded sample of training rows (sentences, or sentence pairs) for static-quantization calibration."""
        if n < 1:
            raise DataError("the calibration sample needs at least one sentence (data.calibration_samples)")
        k = min(n, len(self.train))
        indices = random.Random(seed).sample(range(len(self.train)), k)
        inputs = self.train.inputs
        return [inputs[i] for i in indices]

    def summary(self) -> dict[str, Any]:
        def describe(split: Split) -> dict[str, Any]:
            # a tagged split's labels are a list per sentence: its counts are of word tags
            counts = Counter(v for label in split.labels for v in (label if isinstance(label, list) else [label]))
            return {
                "rows": len(split),
                "labels": {self.label_names[i]: counts.get(i, 0) for i in range(len(self.label_names))},
                "source": split.source,
            }

        return {
            "label_names": self.label_names,
            "train": describe(self.train),
            "eval": describe(self.eval),
            "fingerprint": self.fingerprint,
        }


# ---------------------------------------------------------------------------------------------
# Reading one file
# ---------------------------------------------------------------------------------------------


@dataclass
class _Rows:
    """Raw rows of one file: text, optional pair, raw label string, and the line each came from."""

    path: Path
    texts: list[str]
    pairs: list[str] | None
    labels: list[str]
    lines: list[int]


def _read_delimited(path: Path, cfg: DataConfig, delimiter: str) -> _Rows:
    header, records = delimited_records(path, delimiter)
    text_i = column_index(path, header, cfg.text_column, "--text-column")
    label_i = column_index(path, header, cfg.label_column, "--label-column")
    pair_i = (
        column_index(path, header, cfg.text_pair_column, "data.text_pair_column")
        if cfg.text_pair_column
        else None
    )
    rows = _Rows(path, [], [] if pair_i is not None else None, [], [])
    for number, fields in records:
        rows.texts.append(fields[text_i].strip())
        rows.labels.append(fields[label_i].strip())
        if pair_i is not None:
            rows.pairs.append(fields[pair_i].strip())
        rows.lines.append(number)
    return rows


def _read_jsonl(path: Path, cfg: DataConfig) -> _Rows:
    columns = [cfg.text_column, cfg.label_column] + ([cfg.text_pair_column] if cfg.text_pair_column else [])
    rows = _Rows(path, [], [] if cfg.text_pair_column else None, [], [])
    for number, record in json_records(path):
        for column in columns:
            if column not in record:
                option = {cfg.text_column: "--text-column", cfg.label_column: "--label-column"}.get(
                    column, "data.text_pair_column"
                )
                raise DataError(
                    f"{path}, line {number}: no field {column!r} (set it with {option}); "
                    f"the fields are: {', '.join(record)}"
                )
        rows.texts.append(str(record[cfg.text_column]))
        label = record[cfg.label_column]
        rows.labels.append(str(int(label)) if isinstance(label, bool) else str(label))
        if rows.pairs is not None:
            rows.pairs.append(str(record[cfg.text_pair_column]))
        rows.lines.append(number)
    return rows


def _read_file(path: Path, cfg: DataConfig) -> _Rows:
    suffix = path.suffix.lower()
    if suffix == ".tsv":
        return _read_delimited(path, cfg, "\t")
    if suffix == ".csv":
        return _read_delimited(path, cfg, ",")
    if suffix in (".jsonl", ".json"):
        return _read_jsonl(path, cfg)
    raise DataError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUFFIXES)}")


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _infer_label_names(raw_labels: Iterable[str]) -> list[str]:
    values = set(raw_labels)
    if values and all(_is_int(v) for v in values):
        top = max(int(v) for v in values)
        if min(int(v) for v in values) < 0:
            raise DataError(
                f"negative integer labels {sorted(int(v) for v in values if int(v) < 0)} cannot be used as "
                "ids; give data.label_names to name them"
            )
        return [str(i) for i in range(top + 1)]
    return sorted(values)


def _to_ids(rows: _Rows, label_names: list[str]) -> list[int]:
    by_name = {name: i for i, name in enumerate(label_names)}
    ids = []
    for value, line in zip(rows.labels, rows.lines):
        if value in by_name:
            ids.append(by_name[value])
        elif _is_int(value) and 0 <= int(value) < len(label_names):
            ids.append(int(value))
        else:
            raise DataError(
                f"{rows.path}, line {line}: label {value!r} is not in the label set "
                f"{label_names} (ids 0..{len(label_names) - 1}); fix the row or set data.label_names"
            )
    return ids


def _split_from_rows(name: str, rows: _Rows, label_names: list[str]) -> Split:
    if not rows.texts:
        raise DataError(f"{rows.path}: the {name} split has no rows")
    return Split(name, rows.texts, _to_ids(rows, label_names), rows.pairs, str(rows.path))


# ---------------------------------------------------------------------------------------------
# Resolving the dataset string
# ---------------------------------------------------------------------------------------------


def find_split_file(folder: Path, names: Sequence[str]) -> Path | None:
    """The first ``<name>.tsv`` / ``.csv`` / ``.jsonl`` in ``folder``, names tried in order."""
    for name in names:
        for suffix in SUFFIXES:
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def hub_splits(dataset: str, cfg: DataConfig, kind: str, columns: Sequence[str]) -> tuple[Any, Any, str]:
    """The train and eval tables (``data.train_split`` / ``eval_split``) of a hub dataset id (``name`` or
    ``name:subset``) that has ``columns``, and its source line; one-line errors for a missing ``datasets``
    package, a dataset that cannot be loaded (offline: pass a local ``kind`` with --data), a missing split or
    column."""
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError(f"data {dataset!r} is not a local file or folder, and loading it from the hub "
                                     "needs the 'datasets' package: pip install 'edgedistill[hub]'") from None
    hub_id, _, subset = dataset.partition(":")
    try:
        loaded = datasets.load_dataset(hub_id, subset or None)
    except Exception as exc:  # offline, unknown id, ...
        raise DataError(f"could not load {dataset!r} from the Hugging Face hub ({type(exc).__name__}: {exc}); "
                        f"offline, pass a local {kind} folder or file with --data") from None
    tables = []
    for wanted in (cfg.train_split, cfg.eval_split):
        if wanted not in loaded:
            raise DataError(f"hub dataset {dataset!r} has no split {wanted!r}; it has: {', '.join(loaded)}")
        missing = [c for c in columns if c not in loaded[wanted].column_names]
        if missing:
            raise DataError(f"hub dataset {dataset!r}: no column {missing[0]!r} (a {kind} split needs "
                            f"{', '.join(columns)}); columns: {loaded[wanted].column_names}")
        tables.append(loaded[wanted])
    return tables[0], tables[1], f"hub:{dataset}@{tables[0]._fingerprint}"


def carve_rows(rows: list[Any], cfg: DataConfig, seed: int, source: str, unit: str) -> tuple[list[Any], list[Any]]:
    """A seeded ``data.eval_fraction`` of ``rows`` held out as the eval split (for data with no eval file): the
    rest and the held-out rows, each in file order."""
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    n_eval = max(1, round(len(order) * cfg.eval_fraction))
    if n_eval >= len(order):
        raise DataError(f"{source}: {len(order)} {unit} are too few to carve an eval split "
                        f"(data.eval_fraction={cfg.eval_fraction}); give a separate eval file")
    held = set(order[:n_eval])
    return [r for i, r in enumerate(rows) if i not in held], [r for i, r in enumerate(rows) if i in held]


def _resolve_alias(name: str) -> Path | None:
    """The local folder for an alias such as ``sst2``, from $EDGEDISTILL_DATA_DIR, if any."""
    root = os.environ.get(DATA_DIR_ENV)
    if not root:
        return None
    for candidate in (Path(root) / name, Path(root)):
        if find_split_file(candidate, ("train",)):
            return candidate
    raise DataError(
        f"${DATA_DIR_ENV}={root} holds no {name}/train.tsv (or .csv/.jsonl); point it at the folder "
        f"that contains {name}/, or pass --data with the folder itself"
    )


def _carve_eval(train: Split, cfg: DataConfig, seed: int) -> tuple[Split, Split]:
    indices = list(range(len(train)))
    random.Random(seed).shuffle(indices)
    n_eval = max(1, round(len(indices) * cfg.eval_fraction))
    if n_eval >= len(indices):
        raise DataError(
            f"{train.source}: {len(indices)} rows are too few to carve an eval split "
            f"(data.eval_fraction={cfg.eval_fraction}); give a separate eval file"
        )
    eval_split = train.subset(sorted(indices[:n_eval]))
    eval_split.name = "eval"
    return train.subset(sorted(indices[n_eval:])), eval_split


def _load_local(path: Path, cfg: DataConfig, seed: int) -> tuple[Split, Split, list[str], list[str]]:
    if path.is_dir():
        train_file = find_split_file(path, (cfg.train_split, "train"))
        if train_file is None:
            listing = ", ".join(sorted(p.name for p in path.iterdir())) or "nothing"
            raise DataError(
                f"{path}: no train file (train.tsv, train.csv or train.jsonl); the folder holds: {listing}"
            )
        eval_file = find_split_file(path, (cfg.eval_split, *EVAL_NAMES))
    else:
        train_file, eval_file = path, None
    train_rows = _read_file(train_file, cfg)
    eval_rows = _read_file(eval_file, cfg) if eval_file else None
    label_names = list(cfg.label_names or KNOWN_LABEL_NAMES.get(sha256_file(train_file), [])
                       or _infer_label_names(train_rows.labels))
    train = _split_from_rows("train", train_rows, label_names)
    if eval_rows is not None:
        evaluation = _split_from_rows("eval", eval_rows, label_names)
    else:
        train, evaluation = _carve_eval(train, cfg, seed)
    files = [str(train_file)] + ([str(eval_file)] if eval_file else [])
    return train, evaluation, label_names, files


def _load_hub(dataset: str, cfg: DataConfig) -> tuple[Split, Split, list[str], list[str]]:
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError(
            f"data {dataset!r} is not a local file or folder, and loading it from the hub needs the "
            "'datasets' package: pip install 'edgedistill[hub]', or pass a local file or folder with --data"
        ) from None
    hub_id, _, subset = dataset.partition(":")
    hub_id, subset = _HUB_ALIASES.get(dataset, (hub_id, subset or None))
    try:
        loaded = datasets.load_dataset(hub_id, subset)
    except Exception as exc:  # offline, unknown id, ...: all mean "cannot get it from the hub"
        raise DataError(
            f"could not load {dataset!r} from the Hugging Face hub ({type(exc).__name__}: {exc}); "
            f"offline, pass a local folder or file with --data (or set ${DATA_DIR_ENV})"
        ) from None
    splits = {}
    for role, wanted in (("train", cfg.train_split), ("eval", cfg.eval_split)):
        if wanted not in loaded:
            raise DataError(f"hub dataset {dataset!r} has no split {wanted!r}; it has: {', '.join(loaded)}")
        splits[role] = loaded[wanted]
    columns = splits["train"].column_names
    for column, option in ((cfg.text_column, "--text-column"), (cfg.label_column, "--label-column")):
        if column not in columns:
            raise DataError(f"hub dataset {dataset!r}: no column {column!r} (set {option}); columns: {columns}")
    feature = splits["train"].features[cfg.label_column]
    label_names = list(cfg.label_names or getattr(feature, "names", None) or [])

    def to_rows(role: str) -> _Rows:
        table = splits[role]
        pairs = [str(p) for p in table[cfg.text_pair_column]] if cfg.text_pair_column else None
        labels = [str(v) for v in table[cfg.label_column]]
        return _Rows(Path(f"{dataset}[{role}]"), [str(t) for t in table[cfg.text_column]], pairs, labels,
                     list(range(1, len(labels) + 1)))

    train_rows, eval_rows = to_rows("train"), to_rows("eval")
    if not label_names:
        label_names = _infer_label_names(train_rows.labels)
    return (
        _split_from_rows("train", train_rows, label_names),
        _split_from_rows("eval", eval_rows, label_names),
        label_names,
        [f"hub:{hub_id}:{subset or ''}@{splits['train']._fingerprint}"],
    )


def sample_indices(n: int, limit: int | None, seed: int) -> list[int]:
    """A seeded sample of at most ``limit`` of ``n`` rows (``max_*_samples``), in file order; all when None."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), limit))


def _sample(split: Split, limit: int | None, seed: int) -> Split:
    return split if limit is None or limit >= len(split) else split.subset(sample_indices(len(split), limit, seed))


def load_task_data(cfg: DataConfig, seed: int = 42) -> TaskData:
    """Load, validate and (optionally) subsample the task's train and eval splits."""
    dataset = cfg.dataset
    local = Path(dataset).expanduser()
    if local.exists():
        train, evaluation, names, sources = _load_local(local, cfg, seed)
    elif alias_dir := (_resolve_alias(dataset) if dataset in _HUB_ALIASES else None):
        train, evaluation, names, sources = _load_local(alias_dir, cfg, seed)
    elif dataset.endswith(SUFFIXES) or dataset.startswith(("/", "./", "../", "~")):
        raise DataError(f"data path {dataset} does not exist")
    else:
        train, evaluation, names, sources = _load_hub(dataset, cfg)
    train = _sample(train, cfg.max_train_samples, seed)
    evaluation = _sample(evaluation, cfg.max_eval_samples, seed)
    content = [sha256_file(Path(s)) if Path(s).is_file() else s for s in sources]
    # the label names as resolved (given, known for the data set, or inferred), not as configured
    settings = {**cfg.model_dump(exclude={"dataset", "calibration_samples", "max_length"}), "label_names": names}
    fingerprint = sha256_json({"content": content, "settings": settings, "seed": seed})
    return TaskData(train, evaluation, names, fingerprint, sources)
