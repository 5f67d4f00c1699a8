"""A real, non-tiny RoBERTa-architecture teacher, built offline from the packaged MiniLM's weights.

No RoBERTa checkpoint installs without the hub, so this writes one honestly: all-MiniLM-L6-v2's BERT weights
re-laid as a ``RobertaModel`` save_pretrained folder (the same vocabulary and WordPiece tokenizer; the position
table shifted past RoBERTa's padding index, as RoBERTa's position ids start at ``pad + 1``; the single token type
RoBERTa has is BERT's type 0). The converted encoder computes what MiniLM computes, to float rounding (checked
here on real sentences before anything is written), and the default pipeline then fine-tunes it on SST-2 like
any RoBERTa checkpoint a user brings:

    .venv/bin/python benchmarks/roberta_teacher.py runs/roberta-minilm/model
    .venv/bin/edgedistill run --data ../shared/data/sst2 --workdir runs/roberta \\
        --set teacher.model=runs/roberta-minilm/model

``bert_to_roberta`` is also what tests/test_families.py checks on a tiny BERT.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

SENTENCES = ["a gripping, beautifully acted film .", "the plot is thin and the jokes fall flat .",
             "it 's a charming , if slight , comedy about friendship and second chances ."]


def roberta_config(bert_config: Any) -> Any:
    """The RoBERTa config of a BERT config's geometry: positions grown by ``pad + 1`` rows, one token type."""
    from transformers import RobertaConfig

    pad = bert_config.pad_token_id
    return RobertaConfig(
        vocab_size=bert_config.vocab_size, hidden_size=bert_config.hidden_size,
        num_hidden_layers=bert_config.num_hidden_layers, num_attention_heads=bert_config.num_attention_heads,
        intermediate_size=bert_config.intermediate_size, hidden_act=bert_config.hidden_act,
        hidden_dropout_prob=bert_config.hidden_dropout_prob,
        attention_probs_dropout_prob=bert_config.attention_probs_dropout_prob,
        max_position_embeddings=bert_config.max_position_embeddings + pad + 1, type_vocab_size=1,
        layer_norm_eps=bert_config.layer_norm_eps, initializer_range=bert_config.initializer_range,
        pad_token_id=pad)


def bert_to_roberta(bert: Any) -> Any:
    """A ``RobertaModel`` holding a ``BertModel``'s weights, computing the same hidden states."""
    import torch
    from transformers import RobertaModel

    config = roberta_config(bert.config)
    roberta = RobertaModel(config, add_pooling_layer=bert.pooler is not None).eval()
    state = bert.state_dict()
    offset = config.pad_token_id + 1
    positions = torch.zeros_like(roberta.embeddings.position_embeddings.weight)
    positions[offset:] = state["embeddings.position_embeddings.weight"]
    state["embeddings.position_embeddings.weight"] = positions
    state["embeddings.token_type_embeddings.weight"] = state["embeddings.token_type_embeddings.weight"][:1]
    state.pop("embeddings.position_ids", None)
    state.pop("embeddings.token_type_ids", None)
    roberta.load_state_dict(state, strict=True)
    return roberta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the RoBERTa save_pretrained folder to write")
    parser.add_argument("--source", default="packaged:all-MiniLM-L6-v2", help="the BERT model to convert")
    args = parser.parse_args()

    import torch
    from transformers import AutoModel, AutoTokenizer

    from edgedistill.core.atomic import atomic_directory
    from edgedistill.core.models import resolve_model

    location = resolve_model(args.source).location
    bert = AutoModel.from_pretrained(location, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=True,
                                              model_input_names=["input_ids", "attention_mask"])
    roberta = bert_to_roberta(bert)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = bert(**batch).last_hidden_state
        got = roberta(**batch).last_hidden_state
    real = batch["attention_mask"][..., None].bool()
    diff = float((want - got).masked_fill(~real, 0).abs().max())
    if diff > 1e-5:
        raise SystemExit(f"the converted model differs from {args.source} by {diff:.3g} on real tokens")
    with atomic_directory(args.out) as folder:
        roberta.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    print(f"{args.out}: RobertaModel from {args.source} ({location}); last hidden state within {diff:.2g} "
          f"of the BERT original on {len(SENTENCES)} sentences")


if __name__ == "__main__":
    main()
