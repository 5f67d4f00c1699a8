"""Compute the last encoder layer for the ``[CLS]`` row only: the one row a sequence classifier reads.

Every BERT-family sequence classifier reads ``hidden_state[:, 0]`` and nothing else (DistilBERT's
``pre_classifier``, BERT's pooler, the RoBERTa / XLM-R / CamemBERT / ELECTRA classification heads). In
the last layer the other rows' query projection, attention output, feed-forward network and layer norms
are computed and thrown away. Keys and values still need every row, but the rest can run on one:

* DistilBERT geometry (6 x 768, sequence 128): 14% of the model's matrix-multiply work removed;
* the 3 x 384 MiniLM-geometry student: 28%.

The rewrite is exact: the same modules and weights applied to fewer rows (logits agree to float
rounding, checked here on a padded batch and again by every artifact's parity gate against the
unmodified checkpoint). It is applied to the in-memory model an exporter traces, never to the
checkpoint, so the last layer's hidden states of the other rows are not in the exported graph: it is a
classifier export, not an encoder export. Imports torch: exporters import this module when they run.
"""

from __future__ import annotations

import copy
import logging
import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgedistill.core.errors import ExportError
from edgedistill.tasks import task_of_model
from edgedistill.tasks.base import Task

log = logging.getLogger(__name__)

# Agreement of the pruned model with the original on the self-check batch (float32 logits).
SELF_CHECK_ATOL = 1e-4


def load_for_export(model_dir: str | Path, cls_only_last_layer: bool) -> tuple[Any, Task]:
    """The model an exporter traces, in eval mode, and its task; with ``cls_only_last_layer`` and a task whose
    output reads the ``[CLS]`` row alone, its last encoder layer computes that row only."""
    task = task_of_model(Path(model_dir))
    model = task.load_model(model_dir).eval()
    if cls_only_last_layer and task.reads_first_row_only:
        model = prune_last_layer_to_cls(model)
    return model, task


def traced_module(model_dir: str | Path, model: Any, task: Task, output_name: str | None = None) -> Any:
    """``(input_ids, attention_mask) -> output`` around ``model`` for a converter (the task's module); a model
    that embeds token types derives them from the ids in the graph (:mod:`edgedistill.data.segments`)."""
    from edgedistill.data.segments import model_sep_token_id

    return task.export_module(model, output_name, model_sep_token_id(Path(model_dir), model))


def prune_last_layer_to_cls(model: Any) -> Any:
    """A copy of ``model`` whose last encoder layer computes the ``[CLS]`` row only; ``model`` itself for a family
    whose layer the rewrite does not know (DeBERTa-v2, MPNet, ALBERT, MobileBERT: the full graph, logged).

    Raises :class:`ExportError` for a layout it should know and does not find, naming the option that turns it off.
    """
    from edgedistill.core.families import family_of

    family = family_of(model.config.model_type)
    if not family.cls_only_rewrite:
        log.info("[CLS]-only last layer: not for %s layers; the full graph is exported", family.title)
        return model
    pruned = copy.deepcopy(model).eval()
    layers, block_type = _encoder_layers(pruned)
    layers[-1] = block_type(layers[-1])
    _self_check(model, pruned)
    return pruned


def _encoder_layers(model: Any) -> tuple[Any, type]:
    """The model's list of encoder layers and the CLS-only block that replaces the last one."""
    base = getattr(model, model.base_model_prefix, None)
    if base is not None and hasattr(getattr(base, "transformer", None), "layer"):  # DistilBERT
        return base.transformer.layer, _ClsOnlyDistilBertBlock
    if base is not None and hasattr(getattr(base, "encoder", None), "layer"):  # BERT layout
        layer = base.encoder.layer[-1]
        attention = getattr(getattr(layer, "attention", None), "self", None)
        if attention is not None and getattr(attention, "position_embedding_type", "absolute") == "absolute" \
                and all(hasattr(attention, name) for name in ("query", "key", "value")):
            return base.encoder.layer, _ClsOnlyBertLayer
    raise ExportError(f"{type(model).__name__}: no known encoder layout to prune to the [CLS] row; "
                      "set cls_only_last_layer: false in the target")


def _self_check(original: Any, pruned: Any) -> None:
    """Both models on a short padded batch: the logits must agree to float rounding."""
    vocab = int(getattr(original.config, "vocab_size", 1000))
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(min(5, vocab - 1), vocab, (2, 12), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    with torch.no_grad():
        want = original(input_ids=ids, attention_mask=mask).logits
        got = pruned(input_ids=ids, attention_mask=mask).logits
    diff = float((want - got).abs().max())
    if not diff <= SELF_CHECK_ATOL:
        raise ExportError(f"{type(original).__name__}: the [CLS]-only last layer changed the logits by {diff:.3g} "
                          f"(> {SELF_CHECK_ATOL}); set cls_only_last_layer: false in the target")


def _first_row_mask(mask: Any) -> Any:
    """The additive 4-D mask (batch, 1, queries, keys) for the first query; 2-D 0/1 masks pass through."""
    return mask[:, :, :1, :] if mask is not None and mask.dim() == 4 else mask


class _ClsOnlyDistilBertBlock(nn.Module):
    """DistilBERT's ``TransformerBlock`` on the first row; keys and values from every row.

    Returns ``(batch, 1, dim)``: ``hidden_state[:, 0]`` in the classifier head reads it unchanged.
    """

    def __init__(self, block: Any):
        super().__init__()
        self.block = block

    def forward(self, x: Any, attn_mask: Any = None, head_mask: Any = None, output_attentions: bool = False
                ) -> tuple[Any, ...]:
        block = self.block
        cls = x[:, :1]
        attended = block.attention(query=cls, key=x, value=x, mask=_first_row_mask(attn_mask))[0]
        attended = block.sa_layer_norm(attended + cls)
        return (block.output_layer_norm(block.ffn(attended) + attended),)


class _ClsOnlyBertLayer(nn.Module):
    """A BERT-layout layer (BERT, RoBERTa, XLM-R, CamemBERT, ELECTRA) on the first row.

    Self-attention is written out (the library's modules attend queries to keys of the same length),
    with the layer's own projections, output block and feed-forward modules.
    """

    def __init__(self, layer: Any):
        super().__init__()
        self.layer = layer

    def forward(self, hidden_states: Any, attention_mask: Any = None, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        attention = self.layer.attention.self
        heads, size = attention.num_attention_heads, attention.attention_head_size
        batch = hidden_states.shape[0]

        def split(x: Any) -> Any:
            return x.view(batch, -1, heads, size).transpose(1, 2)

        cls = hidden_states[:, :1]
        query = split(attention.query(cls))
        key, value = split(attention.key(hidden_states)), split(attention.value(hidden_states))
        scores = query @ key.transpose(-1, -2) / math.sqrt(size)
        if attention_mask is not None:
            scores = scores + _first_row_mask(attention_mask)
        context = (scores.softmax(dim=-1) @ value).transpose(1, 2).reshape(batch, 1, heads * size)
        attended = self.layer.attention.output(context, cls)
        return (self.layer.output(self.layer.intermediate(attended), attended),)
