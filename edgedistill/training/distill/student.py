"""Build the student and initialise it from the teacher's own layers, as the DistilBERT paper does.

Two architectures (:mod:`edgedistill.core.families` chooses, per teacher, and says why):

* a DistilBERT model of the teacher's task (its class and head from the task,
  :meth:`edgedistill.tasks.base.Task.student_model`) with the teacher's hidden size: the teacher's embeddings
  (the type-0 token-type vector folded into the word embeddings, since DistilBERT has no token types; a
  RoBERTa-type position table shifted past its padding index) and student layer ``i`` a copy of teacher layer
  ``layer_map[i]``. BERT / RoBERTa / ELECTRA layers and DistilBERT's are the same computation under other names;
  with an identity map and DistilBERT's layer-norm epsilon the student reproduces the teacher's hidden states.
* the teacher's own class with fewer layers: every weight outside the layer list copied as it is (embeddings,
  DeBERTa's relative embeddings, MPNet's relative bias, the head), layer ``i`` from teacher layer
  ``layer_map[i]``; ALBERT's one shared layer simply runs fewer times.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

import torch
from torch import nn

from edgedistill.core.errors import ModelError
from edgedistill.core.families import (family_of, longest_sequence, positions_before_first_token,
                                       student_architecture)
from edgedistill.tasks import task_of_instance
from edgedistill.tasks.base import Task

log = logging.getLogger(__name__)

# Teacher (BERT layout) parameter name -> student (DistilBERT layout) name, within one layer.
_LAYER_NAMES = {
    "attention.self.query": "attention.q_lin",
    "attention.self.key": "attention.k_lin",
    "attention.self.value": "attention.v_lin",
    "attention.output.dense": "attention.out_lin",
    "attention.output.LayerNorm": "sa_layer_norm",
    "intermediate.dense": "ffn.lin1",
    "output.dense": "ffn.lin2",
    "output.LayerNorm": "output_layer_norm",
}


def default_layer_map(teacher_layers: int, student_layers: int) -> list[int]:
    """Every other layer for half depth (0, 2, 4 of 6); in general a stride of teacher/student."""
    if not 1 <= student_layers <= teacher_layers:
        raise ModelError(f"a student of {student_layers} layers cannot be taken from {teacher_layers} layers")
    stride = teacher_layers // student_layers
    return [i * stride for i in range(student_layers)]


def ends_layer_map(teacher_layers: int, student_layers: int) -> list[int]:
    """The first and the last layer kept, the others evenly between (halves rounded up): 0, 3, 5 of 6.

    For a student whose output is pooled into a sentence vector: the teacher's last layer shapes the token states
    its pooling was trained on. On STS-B *train* pairs, all-MiniLM-L6-v2's layers 0, 3, 5 with no training
    keep Spearman 89.03 (teacher 92.04) and a mean cosine of 0.71 to the teacher's vectors; the DistilBERT stride
    0, 2, 4 keeps 74.98 and 0.29."""
    if not 1 <= student_layers <= teacher_layers:
        raise ModelError(f"a student of {student_layers} layers cannot be taken from {teacher_layers} layers")
    if student_layers == 1:
        return [teacher_layers - 1]
    step = (teacher_layers - 1) / (student_layers - 1)
    return [int(i * step + 0.5) for i in range(student_layers)]


def check_layer_map(layer_map: list[int], teacher_layers: int) -> None:
    """Every entry a layer of the teacher; the error names the first entry that is not."""
    for index, layer in enumerate(layer_map):
        if not 0 <= layer < teacher_layers:
            raise ModelError(f"distill.layer_map[{index}] = {layer} does not exist in a {teacher_layers}-layer "
                             f"teacher (valid: 0..{teacher_layers - 1}); the map is {layer_map}")


def student_config(teacher_config: Any, n_layers: int, hidden_size: int | None = None) -> Any:
    """A DistilBERT config of the teacher's geometry (or a smaller hidden size); the task adds its head's."""
    from transformers import DistilBertConfig

    dim = hidden_size or teacher_config.hidden_size
    ratio = teacher_config.intermediate_size / teacher_config.hidden_size
    heads = teacher_config.num_attention_heads
    if dim % heads:
        heads = max(h for h in range(1, heads + 1) if dim % h == 0)
    return DistilBertConfig(
        vocab_size=teacher_config.vocab_size,
        max_position_embeddings=longest_sequence(teacher_config),
        dim=dim,
        hidden_dim=int(dim * ratio),
        n_layers=n_layers,
        n_heads=heads,
        activation=teacher_config.hidden_act if teacher_config.hidden_act in ("gelu", "relu") else "gelu",
        dropout=teacher_config.hidden_dropout_prob,
        attention_dropout=teacher_config.attention_probs_dropout_prob,
        pad_token_id=teacher_config.pad_token_id,
    )


@torch.no_grad()
def init_from_teacher(student: nn.Module, teacher: nn.Module, layer_map: list[int], task: Task) -> None:
    """Copy embeddings, mapped layers and (as the task says) the head from a BERT-layout teacher (BERT,
    RoBERTa, XLM-R, CamemBERT, ELECTRA without an embedding projection) into a same-width DistilBERT student."""
    if not family_of(teacher.config.model_type).distilbert_layers:
        raise ModelError(f"a DistilBERT student cannot copy {teacher.config.model_type!r} layers; "
                         "set distill.student_architecture to auto or teacher")
    if student.config.dim != teacher.config.hidden_size:
        raise ModelError("teacher initialisation needs the teacher's hidden size; "
                         "a smaller student is initialised randomly")
    check_layer_map(layer_map, teacher.config.num_hidden_layers)
    t_emb, s_emb = teacher.base_model.embeddings, student.base_model.embeddings
    # DistilBERT has no token types: fold the type-0 vector (what every single-sentence token gets)
    # into the word embeddings so the embedding output is unchanged.
    s_emb.word_embeddings.weight.copy_(t_emb.word_embeddings.weight + t_emb.token_type_embeddings.weight[0])
    offset = positions_before_first_token(teacher.config)
    s_emb.position_embeddings.weight.copy_(t_emb.position_embeddings.weight[offset:])
    s_emb.LayerNorm.load_state_dict(t_emb.LayerNorm.state_dict())
    t_layers, s_layers = teacher.base_model.encoder.layer, student.base_model.transformer.layer
    for s_index, t_index in enumerate(layer_map):
        t_layer, s_layer = t_layers[t_index], s_layers[s_index]
        for t_name, s_name in _LAYER_NAMES.items():
            s_layer.get_submodule(s_name).load_state_dict(t_layer.get_submodule(t_name).state_dict())
    task.copy_head(student, teacher)


@torch.no_grad()
def truncated_teacher(teacher: nn.Module, layer_map: list[int]) -> nn.Module:
    """The teacher's own class with ``len(layer_map)`` layers, layer ``i`` a copy of teacher layer
    ``layer_map[i]`` and every other weight (embeddings, relative-position tables, head) the teacher's."""
    family = family_of(teacher.config.model_type)
    check_layer_map(layer_map, teacher.config.num_hidden_layers)
    if family.layer_list is None and layer_map != list(range(len(layer_map))):
        raise ModelError(f"an {family.title} teacher runs one shared layer {teacher.config.num_hidden_layers} "
                         f"times: its student runs it {len(layer_map)} times (layer map "
                         f"{list(range(len(layer_map)))}); drop distill.layer_map {layer_map}")
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = len(layer_map)
    student = type(teacher)(config)
    state = teacher.state_dict()
    if family.layer_list is not None:
        layers = teacher.base_model.get_submodule(family.layer_list)
        prefix = next(name for name, module in teacher.named_modules() if module is layers) + "."
        pattern = re.compile(re.escape(prefix) + r"(\d+)\.")

        def teacher_key(key: str) -> str:
            return pattern.sub(lambda m: f"{prefix}{layer_map[int(m.group(1))]}.", key, count=1)

        state = {key: state[teacher_key(key)] for key in student.state_dict()}
    student.load_state_dict(state, strict=True)
    return student


def build_student(teacher: nn.Module, n_layers: int, layer_map: list[int] | None = None,
                  hidden_size: int | None = None, architecture: str = "auto") -> tuple[nn.Module, list[int] | None]:
    """A new student of the teacher's task: teacher-initialised at the teacher's width (a DistilBERT model or the
    teacher's own class, :func:`edgedistill.core.families.student_architecture`), a random DistilBERT one when
    narrower."""
    task = task_of_instance(teacher)
    narrower = hidden_size is not None and hidden_size != teacher.config.hidden_size
    chosen, why = student_architecture(teacher.config, architecture, narrower)
    log.info("student architecture: %s", why)
    if narrower:
        if layer_map is not None:
            raise ModelError(f"distill.layer_map copies teacher layers, which needs the teacher's width "
                             f"{teacher.config.hidden_size}; a student of hidden size {hidden_size} starts random: "
                             "drop layer_map or hidden_size")
        return task.student_model(student_config(teacher.config, n_layers, hidden_size), teacher.config), None
    if layer_map is None:
        shared = family_of(teacher.config.model_type).layer_list is None
        layer_map = list(range(n_layers)) if shared else default_layer_map(teacher.config.num_hidden_layers,
                                                                              n_layers)
    if chosen == "teacher":
        return truncated_teacher(teacher, layer_map), layer_map
    student = task.student_model(student_config(teacher.config, n_layers), teacher.config)
    init_from_teacher(student, teacher, layer_map, task)
    return student, layer_map


def set_dropout(model: nn.Module, probability: float) -> None:
    """Every dropout of ``model`` (hidden states, attention probabilities, the head's) at ``probability``, in its
    modules and in its config, so that the saved ``config.json`` says what it was trained with."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = probability
    for name in ("dropout", "attention_dropout", "seq_classif_dropout", "qa_dropout", "hidden_dropout_prob",
                 "attention_probs_dropout_prob", "classifier_dropout", "classifier_dropout_prob"):
        if getattr(model.config, name, None) is not None:
            setattr(model.config, name, probability)


def hidden_size_of(model: nn.Module) -> int:
    config = model.config
    return getattr(config, "dim", None) or config.hidden_size


def num_layers_of(model: nn.Module) -> int:
    config = model.config
    return getattr(config, "n_layers", None) or config.num_hidden_layers
