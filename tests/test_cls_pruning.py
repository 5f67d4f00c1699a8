"""The [CLS]-only last layer: exact on every BERT-family head, visible in the exported graphs."""

from __future__ import annotations

import pytest
import torch
from transformers import (BertConfig, BertForSequenceClassification, DistilBertConfig,
                          DistilBertForSequenceClassification, ElectraConfig, ElectraForSequenceClassification,
                          RobertaConfig, RobertaForSequenceClassification)

from edgedistill.quant.cls_pruning import prune_last_layer_to_cls
from edgedistill.core.errors import ExportError
from edgedistill.export.stage import ExportSettings

SETTINGS = ExportSettings(max_length=32, threads=1, calibration_samples=0, seed=0)

SIZES = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 4, "intermediate_size": 64,
         "vocab_size": 99, "max_position_embeddings": 64}


def classifier(kind: str, attention: str = "sdpa", **extra):
    torch.manual_seed(0)
    if kind == "distilbert":
        config = DistilBertConfig(vocab_size=99, dim=32, n_layers=3, n_heads=4, hidden_dim=64,
                                  max_position_embeddings=64, **extra)
        model_type = DistilBertForSequenceClassification
    else:
        config_type, model_type = {"bert": (BertConfig, BertForSequenceClassification),
                                   "roberta": (RobertaConfig, RobertaForSequenceClassification),
                                   "electra": (ElectraConfig, ElectraForSequenceClassification)}[kind]
        config = config_type(**SIZES, **extra)
    config._attn_implementation = attention
    return model_type(config).eval()


def padded_batch():
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 99, (3, 20), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[2, 15:] = 0
    return ids, mask


@pytest.mark.parametrize("kind, attention", [(k, a) for k in ("distilbert", "bert", "roberta") for a in ("sdpa", "eager")]
                         + [("electra", "eager")])  # ELECTRA has no sdpa implementation
def test_pruned_classifier_gives_the_same_logits_on_padded_batches(kind, attention):
    model = classifier(kind, attention)
    pruned = prune_last_layer_to_cls(model)
    ids, mask = padded_batch()
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask).logits
        got = pruned(input_ids=ids, attention_mask=mask).logits
        hidden = pruned.base_model(input_ids=ids, attention_mask=mask)[0]
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
    assert hidden.shape == (3, 1, 32)  # the last layer really computed one row
    assert type(model.base_model).__name__ == type(pruned.base_model).__name__  # the original is untouched
    with torch.no_grad():
        assert model.base_model(input_ids=ids, attention_mask=mask)[0].shape == (3, 20, 32)


def test_padding_rows_do_not_leak_into_the_cls_row():
    """Changing tokens under the mask leaves the logits alone: the [CLS] query honours the mask."""
    pruned = prune_last_layer_to_cls(classifier("distilbert"))
    ids, mask = padded_batch()
    other = ids.clone()
    other[1, 9:] = 7
    with torch.no_grad():
        a = pruned(input_ids=ids, attention_mask=mask).logits
        b = pruned(input_ids=other, attention_mask=mask).logits
    assert torch.allclose(a[1], b[1], atol=1e-6)


def test_a_layout_it_cannot_prune_is_an_error_naming_the_option():
    model = classifier("bert", "eager", position_embedding_type="relative_key")
    with pytest.raises(ExportError, match="no known encoder layout .* cls_only_last_layer: false"):
        prune_last_layer_to_cls(model)


def test_onnx_export_runs_the_last_ffn_on_one_row_and_the_option_turns_it_off(tmp_path, tiny_student_dir,
                                                                               export_data_dir):
    """The last layer's first FFN product, made a graph output and run: (batch, 1, ffn) only when pruned."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from edgedistill.core.config import DataConfig
    from edgedistill.data.task_data import load_task_data
    from edgedistill.export.stage import export_target
    from edgedistill.core.targets import load_target

    data = load_task_data(DataConfig(dataset=str(export_data_dir), label_names=["negative", "positive"]))
    shapes = {}
    for pruned in (True, False):
        target = load_target("onnx-fp32").model_copy(update={"cls_only_last_layer": pruned})
        artifact = export_target(tiny_student_dir, target, data, tmp_path / str(pruned), SETTINGS)
        assert artifact.info["target"]["cls_only_last_layer"] is pruned
        model = onnx.load(str(artifact.path / "model.onnx"))
        node = next(n for n in model.graph.node if n.op_type == "MatMul" and "layer.1" in n.name and "lin1" in n.name)
        model.graph.output.append(onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.FLOAT, None))
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        ids = np.full((2, 20), 7, dtype=np.int64)
        shapes[pruned] = session.run([node.output[0]], {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0].shape
    assert shapes == {True: (2, 1, 64), False: (2, 20, 64)}
