"""Toy data files of every task, in the formats users bring: STS rows (embeddings) and CoNLL columns (tags);
the toy sentiment TSV is conftest's ``toy_rows`` / ``write_tsv``."""

from __future__ import annotations

import random
from pathlib import Path

from conftest import FILLER, NEGATIVE, POSITIVE

WORDS = POSITIVE + NEGATIVE + FILLER


def random_sentence(rng: random.Random) -> str:
    return " ".join(rng.sample(WORDS, rng.randint(3, 9)))


def write_sts(path: Path, pairs: int, seed: int) -> Path:
    """An STS-format file (genre, file, year, id, score, sentence 1, sentence 2), one row with an extra field."""
    rng = random.Random(seed)
    lines = []
    for i in range(pairs):
        first = random_sentence(rng)
        second = first if i % 5 == 0 else random_sentence(rng)
        extra = "\textra\tfields" if i == 3 else ""
        lines.append(f"main-captions\tMSRvid\t2012test\t{i:04d}\t{rng.uniform(0, 5):.3f}\t{first}\t{second}{extra}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path



# Words the tiny vocabulary spells letter by letter ("zorp" -> z ##o ##r ##p): sub-tokens to align.
NAMES = ["zorp", "quix", "blen", "vask"]


def tagged_sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    """Sentences whose tags follow from the words: positive words PER, negative words LOC (two in a row make
    one two-word entity), spelled-out names ORG; filler O."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        words: list[tuple[str, str]] = [(w, "O") for w in rng.sample(FILLER, rng.randint(2, 5))]
        for kind, pool in (("PER", POSITIVE), ("LOC", NEGATIVE), ("ORG", NAMES)):
            if rng.random() < 0.7:
                span = rng.sample(pool, 2 if kind == "LOC" and rng.random() < 0.4 else 1)
                at = rng.randrange(len(words) + 1)
                for offset, word in enumerate(span):
                    words.insert(at + offset, (word, ("B-" if offset == 0 else "I-") + kind))
        sentences.append(words)
    return sentences


def write_conll(path: Path, sentences: list[list[tuple[str, str]]], scheme: str = "iob2") -> Path:
    """CoNLL-2003's four columns (token POS chunk NER), -DOCSTART- first; tags converted to ``scheme``."""
    lines = ["-DOCSTART- -X- -X- O", ""]
    for sentence in sentences:
        tags = [t for _, t in sentence]
        if scheme == "iob1":  # B- only after an entity of the same type
            tags = [("B-" if t.startswith("B-") and i and tags[i - 1][2:] == t[2:] else "I-") + t[2:]
                    if t != "O" else "O" for i, t in enumerate(tags)]
        elif scheme == "bioes":
            out = []
            for i, t in enumerate(tags):
                following = tags[i + 1] if i + 1 < len(tags) else "O"
                ends = not following.startswith("I-")
                out.append("O" if t == "O" else (("S-" if ends else "B-") if t.startswith("B-")
                                                 else ("E-" if ends else "I-")) + t[2:])
            tags = out
        lines += [f"{w} NN B-NP {t}" for (w, _), t in zip(sentence, tags)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
