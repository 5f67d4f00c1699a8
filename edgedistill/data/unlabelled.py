"""Unlabelled text, a file or a folder of files: rows for teacher-labelled augmentation (classification), the
corpus an embedding student learns its teacher's vectors on.

``.txt``: one text per line, except a CoNLL file (``.conll``, or a ``.txt`` whose first line is ``-DOCSTART-``:
one token per line in the first column, blank lines between sentences), which gives its sentences.
``.tsv`` / ``.csv`` / ``.jsonl``: the task's text column (and, for a pair task, its pair column); any label column
is ignored, since the teacher labels these rows. Plain Python, no torch.
Bad input is a :class:`DataError` naming the file (and line): missing, unreadable, binary, not UTF-8,
without the column, or holding no text at all.
"""

from __future__ import annotations

from pathlib import Path

from edgedistill.core.config import DataConfig
from edgedistill.data.text_files import column_index, decode_lines, delimited_records, json_records
from edgedistill.core.errors import DataError

SUFFIXES = (".txt", ".conll", ".tsv", ".csv", ".jsonl")


def read_unlabelled(path: str | Path, cfg: DataConfig, role: str = "augmentation") -> tuple[list[str], list[str] | None]:
    """The texts (and pair texts for a pair task) of ``path``; a folder contributes every file with one of
    :data:`SUFFIXES`, in name order. ``role`` names what the text is for in error messages."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise DataError(f"{role} folder {path} holds no {', '.join(SUFFIXES)} file")
    elif path.exists():
        files = [path]
    else:
        raise DataError(f"{role} file {path} does not exist")
    texts: list[str] = []
    pairs: list[str] | None = [] if cfg.text_pair_column else None
    for file in files:
        file_texts, file_pairs = _read_one(file, cfg, role)
        texts += file_texts
        if pairs is not None:
            pairs += file_pairs
    return texts, pairs


def _read_one(path: Path, cfg: DataConfig, role: str) -> tuple[list[str], list[str]]:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{role} file {path}: unsupported type {suffix!r}; use one of {', '.join(SUFFIXES)}")
    if suffix == ".conll" or (suffix == ".txt" and _is_conll(path)):
        rows = [(sentence, "") for sentence in conll_sentences(path)]
    elif suffix == ".txt":
        if cfg.text_pair_column:
            raise DataError(f"{role} file {path}: a pair task needs both texts of each row; "
                            f"give a .tsv, .csv or .jsonl with columns {cfg.text_column!r} and {cfg.text_pair_column!r}")
        rows = [(line.strip(), "") for line in decode_lines(path)]
    elif suffix == ".jsonl":
        rows = _jsonl_rows(path, cfg)
    else:
        rows = _delimited_rows(path, cfg, "\t" if suffix == ".tsv" else ",")
    rows = [(text, pair) for text, pair in rows if text.strip()]
    if not rows:
        raise DataError(f"{role} file {path} holds no text")
    return [text for text, _ in rows], [pair for _, pair in rows]


def _delimited_rows(path: Path, cfg: DataConfig, delimiter: str) -> list[tuple[str, str]]:
    """The text (and pair) column of every record; a short or long row is refused as the task reader refuses it."""
    header, records = delimited_records(path, delimiter)
    text_i = column_index(path, header, cfg.text_column, "--text-column")
    pair_i = column_index(path, header, cfg.text_pair_column, "data.text_pair_column") if cfg.text_pair_column else None
    return [(fields[text_i].strip(), fields[pair_i].strip() if pair_i is not None else "") for _, fields in records]


def _jsonl_rows(path: Path, cfg: DataConfig) -> list[tuple[str, str]]:
    rows = []
    for number, record in json_records(path):
        for column in filter(None, (cfg.text_column, cfg.text_pair_column)):
            if column not in record:
                raise DataError(f"{path}, line {number}: no field {column!r} (the fields are: {', '.join(record)})")
        rows.append((str(record[cfg.text_column]), str(record[cfg.text_pair_column]) if cfg.text_pair_column else ""))
    return rows


def _is_conll(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.readline().startswith(b"-DOCSTART-")


def conll_sentences(path: Path) -> list[str]:
    """The sentences of a CoNLL file: the first column's tokens joined by spaces, a blank line ending each
    sentence, ``-DOCSTART-`` lines skipped."""
    sentences, tokens = [], []
    for line in decode_lines(path) + [""]:
        fields = line.split()
        if not fields:
            if tokens:
                sentences.append(" ".join(tokens))
            tokens = []
        elif fields[0] != "-DOCSTART-":
            tokens.append(fields[0])
    return sentences


def train_files_beside(folder: Path) -> list[Path]:
    """The training files of the data sets in the folders beside ``folder`` (``train.tsv`` / ``.csv`` / ``.jsonl``
    / ``.txt`` / ``.conll``, one per folder, in name order): where ``distill.corpus: auto`` finds more text."""
    found = []
    parent = Path(folder).resolve().parent
    for sibling in sorted(p for p in parent.iterdir() if p.is_dir() and p.resolve() != Path(folder).resolve()):
        for suffix in (".tsv", ".csv", ".jsonl", ".txt", ".conll"):
            if (sibling / f"train{suffix}").is_file():
                found.append(sibling / f"train{suffix}")
                break
    return found
