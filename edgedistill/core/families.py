"""The encoder families edgedistill distils and exports, and how a student is taken from each.

Two ways to take a smaller student from a teacher, both starting from the teacher's own weights:

* ``distilbert``: the DistilBERT paper's student, a ``DistilBert*`` model whose layers are copies of teacher
  layers. Exact for the families whose layers compute what DistilBERT's do (post-LayerNorm attention + GELU
  feed-forward, absolute positions) *and* whose layer norms use DistilBERT's epsilon: DistilBERT fixes it at
  1e-12 in code, so a RoBERTa checkpoint trained with 1e-5 (roberta-base, XLM-R, CamemBERT as published) is
  reproduced only approximately (relative error ~ eps / variance of the normalised activations).
* ``teacher``: the teacher's own class with fewer layers, copied through the same layer map: exact for every
  family, the only way for those whose layers are not DistilBERT's (DeBERTa-v2's disentangled relative
  attention, MPNet's relative bias, ALBERT's one shared layer, MobileBERT's bottlenecks, ELECTRA's embedding
  projection).

The automatic choice is the DistilBERT student wherever it is exact, else the teacher's architecture
(:func:`student_architecture`); ``distill.student_architecture`` forces either where both are possible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgedistill.core.errors import ModelError
from edgedistill.core.registry import TASKS

# DistilBERT's layer norms, fixed in transformers' modeling code (not a config field).
DISTILBERT_LAYER_NORM_EPS = 1e-12


@dataclass(frozen=True)
class Family:
    """One encoder family (a transformers ``model_type``) and what a student taken from it looks like."""

    model_type: str
    title: str
    # The layers can be renamed into DistilBERT's (BERT's layer, absolute positions).
    distilbert_layers: bool
    # Where the encoder's layer list sits under the base model; None: one layer shared by every pass (ALBERT).
    layer_list: str | None
    # RoBERTa-type position ids start after the padding index: position i of a sentence reads row i + pad + 1.
    position_offset: bool = False
    # The padding index those positions count from when the modeling code fixes it (MPNet: 1) instead of reading
    # the config's pad_token_id.
    fixed_padding_index: int | None = None
    # The [CLS]-only last layer rewrite (quant/cls_pruning) knows this family's layer.
    cls_only_rewrite: bool = False


FAMILIES: dict[str, Family] = {f.model_type: f for f in (
    Family("bert", "BERT", distilbert_layers=True, layer_list="encoder.layer", cls_only_rewrite=True),
    Family("roberta", "RoBERTa", distilbert_layers=True, layer_list="encoder.layer", position_offset=True,
           cls_only_rewrite=True),
    Family("xlm-roberta", "XLM-RoBERTa", distilbert_layers=True, layer_list="encoder.layer",
           position_offset=True, cls_only_rewrite=True),
    Family("camembert", "CamemBERT", distilbert_layers=True, layer_list="encoder.layer", position_offset=True,
           cls_only_rewrite=True),
    Family("distilbert", "DistilBERT", distilbert_layers=False, layer_list="transformer.layer",
           cls_only_rewrite=True),
    Family("electra", "ELECTRA", distilbert_layers=True, layer_list="encoder.layer", cls_only_rewrite=True),
    Family("deberta-v2", "DeBERTa-v2/v3", distilbert_layers=False, layer_list="encoder.layer"),
    Family("mpnet", "MPNet", distilbert_layers=False, layer_list="encoder.layer", position_offset=True,
           fixed_padding_index=1),
    Family("albert", "ALBERT", distilbert_layers=False, layer_list=None),
    Family("mobilebert", "MobileBERT", distilbert_layers=False, layer_list="encoder.layer"),
)}


def family_of(model_type: str) -> Family:
    """The family of a ``model_type``; a one-line refusal naming it and the supported ones otherwise."""
    if model_type not in FAMILIES:
        raise ModelError(f"a {model_type!r} model is not an encoder family edgedistill distils and exports "
                         f"(supported: {', '.join(FAMILIES)})")
    return FAMILIES[model_type]


def positions_before_first_token(config: Any) -> int:
    """Rows of the position table before a sentence's first position: RoBERTa-type ids start after the padding
    index (``pad + 1``, MPNet's padding index fixed at 1 in code); 0 for tables that start at 0."""
    family = family_of(config.model_type)
    if not family.position_offset:
        return 0
    padding = family.fixed_padding_index if family.fixed_padding_index is not None else config.pad_token_id
    return padding + 1


def longest_sequence(config: Any) -> int:
    """The most tokens the model's position table can take (``max_position_embeddings`` less the rows before the
    first position)."""
    return config.max_position_embeddings - positions_before_first_token(config)


def distilbert_mismatch(config: Any) -> str | None:
    """Why a DistilBERT student would not reproduce this teacher's layers exactly, or None when it would."""
    family = family_of(config.model_type)
    if not family.distilbert_layers:
        return f"{family.title} layers are not DistilBERT's"
    if getattr(config, "embedding_size", config.hidden_size) != config.hidden_size:
        return (f"its embeddings are {config.embedding_size}-wide, projected to {config.hidden_size}: DistilBERT "
                "has no embedding projection")
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return f"its position embeddings are {config.position_embedding_type!r}; DistilBERT's are absolute"
    if getattr(config, "hidden_act", "gelu") not in ("gelu", "relu"):
        return f"its activation is {config.hidden_act!r}; DistilBERT's is gelu or relu"
    eps = getattr(config, "layer_norm_eps", DISTILBERT_LAYER_NORM_EPS)
    if eps != DISTILBERT_LAYER_NORM_EPS:
        return (f"its layer norms use eps {eps:g}, DistilBERT's are fixed at {DISTILBERT_LAYER_NORM_EPS:g} "
                "(the student would be an approximation)")
    return None


def student_architecture(config: Any, requested: str = "auto", narrower: bool = False) -> tuple[str, str]:
    """The student's architecture for a teacher config (``distilbert`` or ``teacher``) and why, as one phrase.

    ``requested`` is ``distill.student_architecture``; a narrower student (``distill.hidden_size``) is always a
    randomly initialised DistilBERT one. Forcing ``distilbert`` where it is only approximate is allowed and said;
    forcing it where the layers cannot be mapped is refused."""
    family = family_of(config.model_type)
    if narrower:
        if requested == "teacher":
            raise ModelError("distill.hidden_size makes a narrower, randomly initialised DistilBERT student; "
                             "distill.student_architecture: teacher copies the teacher's layers at its width")
        return "distilbert", "narrower than the teacher: a DistilBERT student, randomly initialised"
    mismatch = distilbert_mismatch(config)
    if requested == "distilbert":
        if not family.distilbert_layers or (mismatch and "eps" not in mismatch):
            raise ModelError(f"distill.student_architecture: distilbert is not possible for this {family.title} "
                             f"teacher: {mismatch}; use auto or teacher")
        return "distilbert", ("DistilBERT, as asked" + (f" (approximate: {mismatch})" if mismatch else ""))
    if requested == "teacher" or mismatch:
        why = "as asked" if requested == "teacher" else f"not DistilBERT: {mismatch}"
        return "teacher", f"{family.title} with fewer layers ({why})"
    return "distilbert", f"DistilBERT: {family.title} layers map onto it exactly"


# (task, model_type, backend) -> why that backend cannot take that family's model of the task: the failing
# cells of benchmarks/results/families.json, explained (tests/test_families.py holds the two sets together).
_DEBERTA_COREML_FP16 = ("its fp32 package converts and passes the gate, but in fp16 DeBERTa's attention masks "
                        "padded query rows entirely with float32 min, which is -inf in fp16: softmax of an all -inf "
                        "row is NaN and spreads to every token (Core ML fp16, int8-weights, W8A8)")
UNSUPPORTED: dict[tuple[str, str, str], str] = {
    (task, "deberta-v2", "coreml"): _DEBERTA_COREML_FP16 for task in TASKS  # every task: the encoder fails
}
