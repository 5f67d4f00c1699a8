"""Word-tagged data: one tag per word (named entities, parts of speech), read as token classification needs it.

Formats (a file, or a folder holding a train file and a valid / dev file of one of them):

* CoNLL columns (``.txt``, ``.conll``, ``.tsv``): one word a line, whitespace-separated columns, the word first
  and its tag last (CoNLL-2003's ``token POS chunk NER`` and two-column ``token<TAB>tag`` alike), a blank line
  between sentences, ``-DOCSTART-`` lines skipped;
* ``.jsonl``: one sentence a line, ``{"tokens": [...], "tags": [...]}`` (``ner_tags`` is read as ``tags``);
* a hub dataset id whose splits have ``tokens`` and ``ner_tags`` (named by the dataset's ``ClassLabel``).

Tag schemes: IOB1 (``I-`` opens an entity, ``B-`` only between two of one type), IOB2 (every entity opens with
``B-``) and BIOES (``S-`` single, ``E-`` end) are detected from the tags (``data.tag_scheme: auto``) or set, and
every split is converted to IOB2 on reading, so that entities are scored one way everywhere (seqeval, strict
spans: :mod:`edgedistill.tasks.token_classification`). Bad input is a :class:`DataError` naming the file and
line: a line with one column, a tag outside the scheme, an empty file.

A split keeps its sentences as the words joined by single spaces (what a tokenizer, the gate and ``predict``
read) and its labels as one tag id per word. :meth:`WordSplit.token_labels` puts each word's tag on its first
sub-token (the rest, and the special tokens, -100: transformers' convention); a sentence whose words do not all
fit in ``max_length`` tokens is truncated and counted, or refused (``data.long_sentences``). Plain Python: no
torch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgedistill.core.config import DataConfig
from edgedistill.core.errors import DataError
from edgedistill.core.hashing import sha256_file, sha256_json
from edgedistill.data.encoding import encode
from edgedistill.data.task_data import Split, TaskData, carve_rows, hub_splits, sample_indices
from edgedistill.data.text_files import decode_lines, json_records

log = logging.getLogger("edgedistill.data")

TRAIN_NAMES = ("train",)
EVAL_NAMES = ("valid", "dev", "validation", "eval", "test")
SUFFIXES = (".txt", ".conll", ".tsv", ".jsonl")
IGNORED = -100  # a token that carries no tag (transformers' ignore index)
PREFIXES = {"iob1": ("B", "I"), "iob2": ("B", "I"), "bioes": ("B", "I", "E", "S")}


@dataclass
class Sentence:
    words: list[str]
    tags: list[str]
    line: int  # where it starts in its file (1-based)
    line_per_word: bool = True  # CoNLL columns: word i is on line ``line + i`` (JSONL: the whole row on one)


# -- reading ----------------------------------------------------------------------------------------


def read_column_file(path: Path) -> list[Sentence]:
    """The sentences of a CoNLL-style file: word first, tag last, blank lines between sentences."""
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    start = 0
    for number, line in enumerate(decode_lines(path), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if words:
                sentences.append(Sentence(words, tags, start))
                words, tags = [], []
            continue
        if len(fields) < 2:
            raise DataError(f"{path}, line {number}: one column ({line.strip()!r}); a tagged line holds the word "
                            "first and its tag last (CoNLL: token POS chunk NER, or token<TAB>tag)")
        if not words:
            start = number
        words.append(fields[0])
        tags.append(fields[-1])
    if words:
        sentences.append(Sentence(words, tags, start))
    if not sentences:
        raise DataError(f"{path} holds no tagged sentences (one word and its tag a line, blank lines between "
                        "sentences)")
    return sentences


def read_jsonl_file(path: Path) -> list[Sentence]:
    """The sentences of a JSON Lines file with ``tokens`` and ``tags`` (or ``ner_tags``) lists of strings."""
    sentences = []
    for number, record in json_records(path):
        tag_key = "tags" if "tags" in record else "ner_tags"
        words, tags = record.get("tokens"), record.get(tag_key)
        if not isinstance(words, list) or not isinstance(tags, list):
            raise DataError(f"{path}, line {number}: a tagged JSONL row needs lists 'tokens' and 'tags' (it has: "
                            f"{', '.join(record)})")
        if len(words) != len(tags):
            raise DataError(f"{path}, line {number}: {len(words)} tokens but {len(tags)} tags")
        if not all(isinstance(t, str) for t in tags):
            raise DataError(f"{path}, line {number}: tags must be strings such as 'B-PER' (integer tags name "
                            "nothing without their label list)")
        if words:
            sentences.append(Sentence([str(w) for w in words], list(tags), number, line_per_word=False))
    if not sentences:
        raise DataError(f"{path} holds no tagged sentences")
    return sentences


def read_tagged_file(path: Path) -> list[Sentence]:
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty")
    return read_jsonl_file(path) if path.suffix.lower() == ".jsonl" else read_column_file(path)


# -- tag schemes ------------------------------------------------------------------------------------


def _split_tag(tag: str) -> tuple[str, str]:
    prefix, _, kind = tag.partition("-")
    return (prefix, kind) if kind else (tag, "")


def detect_scheme(sentences: list[Sentence]) -> str:
    """BIOES when any tag is ``S-`` or ``E-``; IOB1 when some entity opens with ``I-`` (after ``O`` or another
    type); IOB2 otherwise."""
    iob1 = False
    for sentence in sentences:
        previous = "O"
        for tag in sentence.tags:
            prefix, kind = _split_tag(tag)
            if prefix in ("S", "E"):
                return "bioes"
            if prefix == "I" and _split_tag(previous)[1] != kind:
                iob1 = True
            previous = tag
    return "iob1" if iob1 else "iob2"


def check_tags(sentences: list[Sentence], scheme: str, where: str) -> None:
    """Every tag is ``O`` or ``<prefix>-<type>`` with a prefix of ``scheme``; a :class:`DataError` naming the
    line of the first that is not."""
    allowed = PREFIXES[scheme]
    for sentence in sentences:
        for offset, tag in enumerate(sentence.tags):
            prefix, kind = _split_tag(tag)
            if tag != "O" and (prefix not in allowed or not kind):
                line = sentence.line + offset if sentence.line_per_word else sentence.line
                raise DataError(f"{where}, line {line}: tag {tag!r} is outside the {scheme.upper()} scheme (O, or "
                                f"{' / '.join(p + '-TYPE' for p in allowed)}); set data.tag_scheme if the file uses "
                                "another")


def to_iob2(tags: list[str], scheme: str) -> list[str]:
    """One sentence's tags in IOB2: every entity opens with ``B-``, continues with ``I-``."""
    out = []
    previous = "O"
    for tag in tags:
        prefix, kind = _split_tag(tag)
        if tag == "O":
            out.append("O")
        elif scheme == "bioes":
            out.append(f"{'B' if prefix in ('B', 'S') else 'I'}-{kind}")
        elif scheme == "iob1" and prefix == "I" and _split_tag(previous)[1] != kind:
            out.append(f"B-{kind}")  # IOB1: I- opens an entity unless one of its type is open
        else:
            out.append(f"{prefix}-{kind}")
        previous = out[-1] if scheme == "iob1" else tag
    return out


def tag_names(sentences: list[Sentence]) -> list[str]:
    """``O`` then ``B-`` / ``I-`` of each entity type, types sorted: the label order of a new head."""
    kinds = sorted({_split_tag(t)[1] for s in sentences for t in s.tags if t != "O"})
    return ["O", *(f"{p}-{k}" for k in kinds for p in ("B", "I"))]


# -- splits -----------------------------------------------------------------------------------------


@dataclass
class WordSplit(Split):
    """A split of tagged sentences: ``texts`` the words joined by spaces, ``labels`` a list of tag ids per
    sentence (one per word), ``lines`` where each sentence starts in its file."""

    lines: list[int] = field(default_factory=list)
    long_sentences: str = "truncate"
    _aligned: dict[tuple[Any, ...], list[list[int]]] = field(default_factory=dict, repr=False, compare=False)

    def words(self, row: int) -> list[str]:
        return self.texts[row].split(" ")

    def token_labels(self, tokenizer: Any, max_length: int) -> list[list[int]]:
        """Each row's labels on its tokens as the tokenizer encodes its text: a word's tag id on its first
        sub-token, -100 elsewhere. Words cut off by ``max_length`` are counted (and refused under
        ``long_sentences: refuse``). Computed once per tokenizer and length (the gate asks for every artifact)."""
        key = (tokenizer.name_or_path, len(tokenizer), max_length, self.long_sentences)
        if key not in self._aligned:
            self._aligned[key] = self._align(tokenizer, max_length)
        return self._aligned[key]

    def _align(self, tokenizer: Any, max_length: int) -> list[list[int]]:
        encoded = tokenizer(self.texts, truncation=True, max_length=max_length, return_offsets_mapping=True)
        out, cut_sentences, cut_words = [], 0, 0
        for row, offsets in enumerate(encoded["offset_mapping"]):
            aligned, missing = align_word_labels(self.words(row), self.labels[row], offsets)
            if missing:
                if self.long_sentences == "refuse":
                    raise DataError(f"{self.source}, line {self.lines[row]}: the sentence's last {missing} word(s) "
                                    f"do not fit in {max_length} tokens (data.max_length); raise it, or set "
                                    "data.long_sentences: truncate")
                cut_sentences, cut_words = cut_sentences + 1, cut_words + missing
            out.append(aligned)
        if cut_sentences:
            log.warning("%s: %d sentence(s) longer than %d tokens truncated; their last %d word(s) carry no tag "
                        "(data.long_sentences: refuse stops instead)", self.source, cut_sentences, max_length,
                        cut_words)
        return out

    def features(self, tokenizer: Any, max_length: int, *, with_token_type_ids: bool = False) -> list[dict]:
        """The rows encoded as every task's are (:func:`~edgedistill.data.encoding.encode`), labels on tokens."""
        return encode(self.texts, None, self.token_labels(tokenizer, max_length), tokenizer, max_length,
                      with_token_type_ids=with_token_type_ids)

    def subset(self, indices: Any) -> WordSplit:
        return WordSplit(self.name, [self.texts[i] for i in indices], [self.labels[i] for i in indices], None,
                         self.source, [self.lines[i] for i in indices], self.long_sentences)


def word_starts(words: list[str]) -> list[int]:
    """Where each word starts in the words joined by single spaces."""
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + 1
    return starts


def align_word_labels(words: list[str], labels: list[int], offsets: list[tuple[int, int]]
                      ) -> tuple[list[int], int]:
    """Labels on tokens from labels on words: the first token inside each word (by character offsets into the
    space-joined text) carries the word's label, every other token -100. Returns them and how many words have
    no token (cut off by truncation)."""
    aligned = [IGNORED] * len(offsets)
    starts = word_starts(words)
    labelled: set[int] = set()
    word = 0
    for position, (start, end) in enumerate(offsets):
        if end <= start:  # special tokens have empty spans
            continue
        while word + 1 < len(words) and start >= starts[word + 1]:
            word += 1
        if word not in labelled:
            aligned[position] = labels[word]
            labelled.add(word)
    return aligned, len(words) - len(labelled)


def _to_split(name: str, sentences: list[Sentence], scheme: str, names: list[str], source: str,
              long_sentences: str) -> WordSplit:
    index = {n: i for i, n in enumerate(names)}
    labels = []
    for s in sentences:
        iob2 = to_iob2(s.tags, scheme)
        unknown = next((t for t in iob2 if t not in index), None)
        if unknown is not None:
            raise DataError(f"{source}, line {s.line}: tag {unknown!r} is not among the training tags {names}")
        labels.append([index[t] for t in iob2])
    return WordSplit(name, [" ".join(s.words) for s in sentences], labels, None, source,
                     [s.line for s in sentences], long_sentences)


def _find(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        for suffix in SUFFIXES:
            if (folder / f"{name}{suffix}").is_file():
                return folder / f"{name}{suffix}"
    return None


def _local(path: Path, cfg: DataConfig) -> tuple[list[Sentence], list[Sentence] | None, list[str]]:
    """The train file's sentences and the eval file's (None when there is none: one is carved after checking)."""
    if path.is_dir():
        train_file = _find(path, (cfg.train_split, *TRAIN_NAMES))
        if train_file is None:
            listing = ", ".join(sorted(p.name for p in path.iterdir())) or "nothing"
            raise DataError(f"{path}: no tagged train file (train.txt, train.conll, train.tsv or train.jsonl); the "
                            f"folder holds: {listing}")
        eval_file = _find(path, (cfg.eval_split, *EVAL_NAMES))
    else:
        train_file, eval_file = path, None
    if eval_file is None:
        return read_tagged_file(train_file), None, [str(train_file)]
    return read_tagged_file(train_file), read_tagged_file(eval_file), [str(train_file), str(eval_file)]


def _hub(dataset: str, cfg: DataConfig) -> tuple[list[Sentence], list[Sentence], list[str]]:
    train, evaluation, source = hub_splits(dataset, cfg, "CoNLL", ("tokens", "ner_tags"))
    out = []
    for table in (train, evaluation):
        names = table.features["ner_tags"].feature.names
        out.append([Sentence(list(w), [names[t] for t in tags], i, line_per_word=False)
                    for i, (w, tags) in enumerate(zip(table["tokens"], table["ner_tags"]), 1) if w])
    return out[0], out[1], [source]


def load_tagged_data(cfg: DataConfig, seed: int = 42) -> TaskData:
    """The train and eval sentences, tags converted to IOB2, label names from the training tags (or
    ``data.label_names``)."""
    local = Path(cfg.dataset).expanduser()
    if local.exists():
        train, evaluation, sources = _local(local, cfg)
    elif cfg.dataset.endswith(SUFFIXES) or cfg.dataset.startswith(("/", "./", "../", "~")):
        raise DataError(f"data path {cfg.dataset} does not exist")
    else:
        train, evaluation, sources = _hub(cfg.dataset, cfg)
    scheme = cfg.tag_scheme if cfg.tag_scheme != "auto" else detect_scheme(train)
    for split_sentences, source in ((train, sources[0]), (evaluation or [], sources[-1])):
        check_tags(split_sentences, scheme, source)
    if evaluation is None:
        train, evaluation = carve_rows(train, cfg, seed, sources[0], "sentences")
    log.info("data: tag scheme %s%s, read as IOB2", scheme.upper(), " (detected)" if cfg.tag_scheme == "auto" else "")
    train = [train[i] for i in sample_indices(len(train), cfg.max_train_samples, seed)]
    evaluation = [evaluation[i] for i in sample_indices(len(evaluation), cfg.max_eval_samples, seed)]
    names = list(cfg.label_names) if cfg.label_names else tag_names(
        [Sentence(s.words, to_iob2(s.tags, scheme), s.line) for s in train])
    content = [sha256_file(Path(s)) if Path(s).is_file() else s for s in sources]
    settings = cfg.model_dump(include={"train_split", "eval_split", "eval_fraction", "max_train_samples",
                                       "max_eval_samples", "tag_scheme", "label_names"})
    fingerprint = sha256_json({"content": content, "settings": settings, "seed": seed, "format": "word-tags"})
    return TaskData(_to_split("train", train, scheme, names, sources[0], cfg.long_sentences),
                    _to_split("eval", evaluation, scheme, names, sources[-1], cfg.long_sentences), names, fingerprint,
                    sources)
