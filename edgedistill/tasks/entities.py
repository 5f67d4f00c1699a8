"""Entities from per-token tag scores, grouped as transformers' token-classification pipeline groups them.

The rules of ``pipeline("token-classification", aggregation_strategy="first")``, on any runtime's logits, so an
app gets from an artifact exactly what the PyTorch pipeline gives from the checkpoint:

1. scores are the softmax of each token's logits; special tokens are skipped;
2. a token continues the previous word when it is a sub-word: with a word-aware tokenizer (WordPiece's ``##``)
   when its text is not its token's spelling, otherwise when no space precedes it; ``[UNK]`` always starts a word;
3. a word takes its first token's tag, scored by that token's probability;
4. adjacent words of one entity type merge unless the later one is ``B-``; the group's score is the words' mean,
   its span runs from the first word's start to the last word's end; ``O`` groups are dropped.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _tag(name: str) -> tuple[str, str]:
    """(``B`` or ``I``, entity type) of a tag; a tag without a prefix continues (``I``)."""
    if name.startswith(("B-", "I-")):
        return name[0], name[2:]
    return "I", name


def _words(text: str, logits: np.ndarray, tokenizer: Any, label_names: list[str]) -> list[dict[str, Any]]:
    """Each word's tag (its first token's), score, text and character span."""
    encoded = tokenizer(text, truncation=True, max_length=len(logits), return_offsets_mapping=True,
                        return_special_tokens_mask=True)
    scores = _softmax(np.asarray(logits, dtype=np.float64)[: len(encoded["input_ids"])])
    word_aware = bool(getattr(getattr(getattr(tokenizer, "_tokenizer", None), "model", None),
                              "continuing_subword_prefix", None))
    groups: list[list[dict[str, Any]]] = []
    for index, token_id in enumerate(encoded["input_ids"]):
        if encoded["special_tokens_mask"][index]:
            continue
        start, end = encoded["offset_mapping"][index]
        token = tokenizer.convert_ids_to_tokens(int(token_id))
        spelled = text[start:end]
        if word_aware:
            subword = len(token) != len(spelled)
        else:
            subword = start > 0 and " " not in text[start - 1:start + 1]
        if int(token_id) == tokenizer.unk_token_id:
            token, subword = spelled, False
        piece = {"token": token, "scores": scores[index], "start": int(start), "end": int(end)}
        if groups and subword:
            groups[-1].append(piece)
        else:
            groups.append([piece])
    words = []
    for pieces in groups:
        best = int(pieces[0]["scores"].argmax())
        words.append({"entity": label_names[best], "score": float(pieces[0]["scores"][best]),
                      "word": tokenizer.convert_tokens_to_string([p["token"] for p in pieces]),
                      "start": pieces[0]["start"], "end": pieces[-1]["end"]})
    return words


def group_entities(text: str, logits: np.ndarray, tokenizer: Any, label_names: list[str]) -> list[dict[str, Any]]:
    """The entities in ``text`` from its tokens' ``logits`` (``[tokens, tags]``, padding rows allowed after the
    real tokens): ``entity_group``, ``score``, ``word``, ``start``, ``end`` as the pipeline names them."""
    groups: list[list[dict[str, Any]]] = []
    for word in _words(text, logits, tokenizer, label_names):
        prefix, kind = _tag(word["entity"])
        if groups and _tag(groups[-1][-1]["entity"])[1] == kind and prefix != "B":
            groups[-1].append(word)
        else:
            groups.append([word])
    entities = []
    for words in groups:
        kind = words[0]["entity"].split("-", 1)[-1]
        if kind == "O":
            continue
        entities.append({"entity_group": kind, "score": round(float(np.mean([w["score"] for w in words])), 6),
                         "word": tokenizer.convert_tokens_to_string([w["word"] for w in words]),
                         "start": words[0]["start"], "end": words[-1]["end"]})
    return entities
