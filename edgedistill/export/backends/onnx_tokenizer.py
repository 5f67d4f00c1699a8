"""The tokenizer inside the ONNX graph: ``model_with_tokenizer.onnx`` takes strings and returns logits.

onnxruntime-extensions' processing-graph generator turns the Hugging Face WordPiece tokenizer into its
``BertTokenizer`` custom op (vocabulary, lower-casing, accent stripping and truncation as attributes).
That op tokenizes one string; this module wraps it in an ONNX ``Loop`` over a batch of strings, pads
each row to the target length, trims the batch to its longest row and feeds the artifact's own
``model.onnx`` (merged with ``onnx.compose``), so the file maps ``text`` (string, ``[batch]``) to ``logits``
and, for checking, ``token_ids`` (the ids it fed the model). ONNX Runtime runs it once the extensions'
custom-op library is registered (``SessionOptions.register_custom_ops_library(get_library_path())``),
on Android and iOS with the onnxruntime-extensions packages.

The export checks it from strings: on every eval sentence and the golden hard cases, its ids must equal
the Hugging Face tokenizer's and its logits those of ``model.onnx`` fed those ids (1e-4).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.core.errors import ExportError

TOKENIZER_MODEL_FILE = "model_with_tokenizer.onnx"
TEXT_INPUT = "text"
IDS_OUTPUT = "token_ids"
MIN_OPSET = 13  # Unsqueeze / ReduceSum take their axes as inputs from opset 13


def tokenizer_op(model_dir: Path, max_length: int) -> Any:
    """The ``BertTokenizer`` node onnxruntime-extensions generates for the model's tokenizer."""
    from onnxruntime_extensions import gen_processing_models
    from transformers import AutoTokenizer, BertTokenizer

    fast = AutoTokenizer.from_pretrained(model_dir)
    if fast.backend_tokenizer.model.__class__.__name__ != "WordPiece":
        raise ExportError(f"with_tokenizer: {model_dir} has a {fast.backend_tokenizer.model.__class__.__name__} "
                          "tokenizer; the ONNX tokenizer graph is built for WordPiece (BERT-family) only")
    lower = bool(fast.init_kwargs.get("do_lower_case", True))
    strip = fast.init_kwargs.get("strip_accents")
    # Hugging Face strips accents whenever it lower-cases unless strip_accents says otherwise; the
    # generator reads only an explicit strip_accents (0 otherwise), which left "cliché" as [UNK].
    strip_accents = int(lower if strip is None else bool(strip))
    pre, _ = gen_processing_models(BertTokenizer.from_pretrained(model_dir),
                                   pre_kwargs={"max_length": max_length, "strip_accents": strip_accents})
    (node,) = [n for n in pre.graph.node if n.op_type == "BertTokenizer"]
    return node


def build_tokenizer_model(model_dir: Path, model_path: Path, out: Path, max_length: int) -> Path:
    """``model_path`` (token ids in) with a batched string tokenizer in front, written to ``out``."""
    import onnx
    from onnx import TensorProto, compose, helper

    model = onnx.load(str(model_path))
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < MIN_OPSET:
        raise ExportError(f"with_tokenizer needs an opset >= {MIN_OPSET} model; this one is {opset}")
    feeds = [i.name for i in model.graph.input]
    source = tokenizer_op(model_dir, max_length)
    tokenize = helper.make_node("BertTokenizer", ["tokenizer/one"], ["tokenizer/ids", "tokenizer/types",
                                                                     "tokenizer/mask"],
                                name="tokenizer/BertTokenizer", domain="ai.onnx.contrib")
    tokenize.attribute.extend(source.attribute)

    def const(name: str, values: Sequence[int]) -> Any:
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.INT64,
                                                                                 [len(values)], values))

    def padded(name: str) -> Any:  # one tokenizer output, zero-padded to max_length
        return helper.make_node("Pad", [f"tokenizer/{name}", "tokenizer/pads", "tokenizer/zero"],
                                [f"tokenizer/{name}_row"])

    body = helper.make_graph(
        [helper.make_node("Gather", [TEXT_INPUT, "tokenizer/i"], ["tokenizer/scalar"], axis=0),
         const("tokenizer/axis0", [0]),
         helper.make_node("Unsqueeze", ["tokenizer/scalar", "tokenizer/axis0"], ["tokenizer/one"]),
         tokenize,
         helper.make_node("Shape", ["tokenizer/ids"], ["tokenizer/length"]),
         const("tokenizer/max", [max_length]),
         helper.make_node("Sub", ["tokenizer/max", "tokenizer/length"], ["tokenizer/missing"]),
         const("tokenizer/start", [0]),
         helper.make_node("Concat", ["tokenizer/start", "tokenizer/missing"], ["tokenizer/pads"], axis=0),
         helper.make_node("Constant", [], ["tokenizer/zero"], value=helper.make_tensor("z", TensorProto.INT64,
                                                                                       [], [0])),
         padded("ids"), padded("types"), padded("mask"),
         helper.make_node("Identity", ["tokenizer/cond_in"], ["tokenizer/cond_out"])],
        "tokenize_one",
        [helper.make_tensor_value_info("tokenizer/i", TensorProto.INT64, []),
         helper.make_tensor_value_info("tokenizer/cond_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("tokenizer/cond_out", TensorProto.BOOL, []),
         *[helper.make_tensor_value_info(f"tokenizer/{n}_row", TensorProto.INT64, [max_length])
           for n in ("ids", "types", "mask")]])
    nodes = [
        helper.make_node("Shape", [TEXT_INPUT], ["tokenizer/batch_shape"]),
        helper.make_node("Constant", [], ["tokenizer/index0"], value=helper.make_tensor("i0", TensorProto.INT64,
                                                                                        [], [0])),
        helper.make_node("Gather", ["tokenizer/batch_shape", "tokenizer/index0"], ["tokenizer/batch"], axis=0),
        helper.make_node("Loop", ["tokenizer/batch", ""], ["tokenizer/all_ids", "tokenizer/all_types",
                                                          "tokenizer/all_mask"], body=body),
        const("tokenizer/axis1", [1]),
        helper.make_node("ReduceSum", ["tokenizer/all_mask", "tokenizer/axis1"], ["tokenizer/lengths"],
                         keepdims=0),
        helper.make_node("ReduceMax", ["tokenizer/lengths"], ["tokenizer/longest"], keepdims=1),
        const("tokenizer/begin", [0]),
    ]
    outputs = {"input_ids": "all_ids", "token_type_ids": "all_types", "attention_mask": "all_mask"}
    for feed in feeds:
        if feed not in outputs:
            raise ExportError(f"with_tokenizer: {model_path} takes an input {feed!r} the tokenizer does not make")
        nodes.append(helper.make_node("Slice", [f"tokenizer/{outputs[feed]}", "tokenizer/begin", "tokenizer/longest",
                                                "tokenizer/axis1"], [feed]))
    nodes.append(helper.make_node("Identity", ["input_ids"], [IDS_OUTPUT]))
    front = helper.make_model(
        helper.make_graph(nodes, "tokenizer", [helper.make_tensor_value_info(TEXT_INPUT, TensorProto.STRING,
                                                                             ["batch"])],
                          [helper.make_tensor_value_info(f, TensorProto.INT64, ["batch", "sequence"])
                           for f in feeds] + [helper.make_tensor_value_info(IDS_OUTPUT, TensorProto.INT64,
                                                                            ["batch", "sequence"])]),
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.contrib", 1)],
        ir_version=model.ir_version)
    merged = compose.merge_models(front, model, io_map=[(f, f) for f in feeds],
                                  outputs=[model.graph.output[0].name, IDS_OUTPUT])
    merged.graph.name = "text_classifier_with_tokenizer"
    onnx.save(merged, str(out))
    return out


class OnnxTextRunner:
    """``model_with_tokenizer.onnx`` in ONNX Runtime with onnxruntime-extensions' custom ops: strings in."""

    def __init__(self, model_path: Path, threads: int):
        import onnxruntime as ort
        from onnxruntime_extensions import get_library_path

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.register_custom_ops_library(get_library_path())
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.output = next(o.name for o in self.session.get_outputs() if o.name != IDS_OUTPUT)

    def predict_texts(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(logits, token_ids)`` for a batch of strings (ids padded with 0 to the batch's longest)."""
        logits, ids = self.session.run([self.output, IDS_OUTPUT], {TEXT_INPUT: np.asarray(list(texts), dtype=object)})
        return logits.astype(np.float32), ids


def check_tokenizer_model(text_runner: OnnxTextRunner, id_runner: Any, tokenizer: Any, texts: Sequence[str],
                          max_length: int, batch_size: int = 16, max_abs: float = 1e-4) -> dict[str, Any]:
    """The string gate: the graph's ids against the Hugging Face tokenizer's on every text, and its logits
    against the id-input model's fed the same padded batch (the same arithmetic) within ``max_abs``."""
    mismatched, worst = [], 0.0
    for start in range(0, len(texts), batch_size):
        batch = list(texts[start:start + batch_size])
        logits, ids = text_runner.predict_texts(batch)
        mask = np.zeros_like(ids)
        for row, text in enumerate(batch):
            expected = tokenizer(text, truncation=True, max_length=max_length)["input_ids"]
            mask[row, : len(expected)] = 1
            if [int(i) for i in ids[row][: len(expected)]] != expected or np.count_nonzero(ids[row][len(expected):]):
                mismatched.append(text)
        worst = max(worst, float(np.max(np.abs(id_runner.predict(ids, mask) - logits))))
    return {"texts": len(texts), "token_ids_equal": len(texts) - len(mismatched), "mismatched": mismatched[:5],
            "max_abs_vs_id_model": worst, "max_abs": max_abs, "passed": not mismatched and worst <= max_abs}
