"""BERT token types from the ids alone, so the Runner contract stays ``(input_ids, attention_mask)``.

A pair is encoded ``[CLS] a [SEP] b [SEP]`` with token type 0 up to and including the first ``[SEP]`` and 1
after it; a single sentence is all 0 on its real tokens (padding after its ``[SEP]`` gets 1, which the
attention mask hides). Runners of models that embed token types derive them here instead of feeding zeros,
and the TFLite and Core ML exports of such models derive them inside the graph (the same three ops).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def segment_ids(input_ids: Any, sep_token_id: int) -> Any:
    """Token types for a numpy array or a torch tensor of ids (same type and shape; int64, or the ids' dtype
    for a torch tensor, so a traced int32 graph stays int32)."""
    equal = input_ids == sep_token_id  # an explicit cast: a traced `bool * 1` stays bool in TorchScript
    is_sep = equal.to(input_ids.dtype) if hasattr(equal, "to") else equal.astype("int64")
    after_first = (is_sep.cumsum(-1) - is_sep) >= 1
    return after_first.to(input_ids.dtype) if hasattr(after_first, "to") else after_first.astype("int64")


def embeds_token_types(model: Any) -> bool:
    """Whether the model takes and embeds token types (BERT, ELECTRA, ALBERT...; not DistilBERT, RoBERTa's single
    type, DeBERTa-v3 or MPNet)."""
    import inspect

    return getattr(model.config, "type_vocab_size", 0) >= 2 and \
        "token_type_ids" in inspect.signature(model.forward).parameters


def model_sep_token_id(model_dir: Path, model: Any) -> int | None:
    """The ``[SEP]`` id when the model embeds token types (BERT-type: a pair's second sentence is segment 1);
    None for models without them (DistilBERT), which read a pair from the ids alone."""
    return sep_token_id(model_dir) if embeds_token_types(model) else None


def sep_token_id(folder: Path) -> int | None:
    """The ``[SEP]`` id of the tokenizer saved in ``folder`` (``tokenizer.json``), or None without one."""
    folder = Path(folder)
    if not (folder / "tokenizer.json").is_file():
        return None
    from tokenizers import Tokenizer

    config_file = folder / "tokenizer_config.json"
    token = json.loads(config_file.read_text(encoding="utf-8")).get("sep_token", "[SEP]") if config_file.is_file() \
        else "[SEP]"
    if isinstance(token, dict):  # an AddedToken written out
        token = token.get("content", "[SEP]")
    return Tokenizer.from_file(str(folder / "tokenizer.json")).token_to_id(token)
