"""The model card of an artifact: ``README.md`` in its folder, with the Hugging Face model-card YAML header.

It says what the file is, where it came from, its inputs and outputs exactly as the file names them, its
labels, the parity gate's numbers, its integer coverage, the last benchmark on this host when there is
one, and how to load it — Python for every backend, Kotlin for LiteRT, Swift for Core ML. The snippets
come from :data:`SNIPPETS`, the one template the README's examples are generated from as well
(``edgedistill.model_card.readme_examples``; a test keeps the two in step).

The card is documentation, rewritten when a benchmark adds its numbers, so it is not among the hashed
files of ``artifact.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgedistill.golden import INPUT_DTYPE
from edgedistill.target_options import parse_options

CARD_FILE = "README.md"

LIBRARY = {"pytorch": "transformers", "onnx": "onnx", "tflite": "tflite", "coreml": "coreml"}
MODEL_FILE = {"pytorch": "model.safetensors", "onnx": "model.onnx", "tflite": "model.tflite",
              "coreml": "model.mlpackage"}

SNIPPETS: dict[str, dict[str, str]] = {
    "onnx": {
        "python": '''import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

tokenizer = Tokenizer.from_file("tokenizer.json")
tokenizer.enable_truncation({max_length})
encoding = tokenizer.encode("{example}")
session = ort.InferenceSession("{model_file}", providers=["CPUExecutionProvider"])
feed = {{
{onnx_feed}
}}
logits = session.run(["logits"], feed)[0]
print({labels}[int(logits.argmax(-1)[0])])''',
        "optimum": '''from optimum.onnxruntime import ORTModelForSequenceClassification
from transformers import AutoTokenizer

model = ORTModelForSequenceClassification.from_pretrained(".", file_name="{model_file}")
tokenizer = AutoTokenizer.from_pretrained(".")
logits = model(**tokenizer("{example}", return_tensors="np")).logits''',
    },
    "tflite": {
        "python": '''import numpy as np
from ai_edge_litert.interpreter import Interpreter
from tokenizers import Tokenizer

tokenizer = Tokenizer.from_file("tokenizer.json")
tokenizer.enable_truncation({max_length})
ids = tokenizer.encode("{example}").ids
runner = Interpreter(model_path="{model_file}").get_signature_runner("seq_{seq}")  # buckets: {buckets}
input_ids = np.zeros((1, {seq}), np.int32)
attention_mask = np.zeros((1, {seq}), np.int32)
input_ids[0, :len(ids)], attention_mask[0, :len(ids)] = ids, 1
logits = runner(input_ids=input_ids, attention_mask=attention_mask)["logits"]
print({labels}[int(logits.argmax(-1)[0])])''',
        "kotlin": '''// LiteRT (org.tensorflow.lite.Interpreter), model.tflite and golden.json in the app's assets.
// The first golden case: its ids are padded to a bucket ({buckets}), the signature "seq_<length>".
val golden = JSONObject(context.assets.open("golden.json").bufferedReader().readText())
val case = golden.getJSONArray("cases").getJSONObject(0)
val ids = case.getJSONArray("input_ids")
val mask = case.getJSONArray("attention_mask")
val inputIds = Array(1) {{ IntArray(ids.length()) {{ ids.getInt(it) }} }}
val attentionMask = Array(1) {{ IntArray(mask.length()) {{ mask.getInt(it) }} }}
val logits = Array(1) {{ FloatArray({num_labels}) }}
val interpreter = Interpreter(FileUtil.loadMappedFile(context, "{model_file}"))
interpreter.runSignature(
    mapOf("input_ids" to inputIds, "attention_mask" to attentionMask),
    mapOf("logits" to logits),
    "seq_${{ids.length()}}",
)
val expected = case.getJSONArray("logits")
val tolerance = golden.getJSONObject("tolerance").getDouble("max_abs")
check((0 until {num_labels}).all {{ abs(logits[0][it] - expected.getDouble(it)) <= tolerance }})''',
    },
    "coreml": {
        "python": '''import coremltools as ct
import numpy as np
from tokenizers import Tokenizer

tokenizer = Tokenizer.from_file("tokenizer.json")
tokenizer.enable_truncation({max_length})
ids = tokenizer.encode("{example}").ids
model = ct.models.MLModel("{model_file}")  # predict() needs macOS
input_ids = np.zeros((1, {seq}), np.int32)  # lengths: {buckets}
attention_mask = np.zeros((1, {seq}), np.int32)
input_ids[0, :len(ids)], attention_mask[0, :len(ids)] = ids, 1
logits = model.predict({{"input_ids": input_ids, "attention_mask": attention_mask}})["logits"]
print({labels}[int(logits.argmax(-1)[0])])''',
        "swift": '''// Core ML, with model.mlpackage and golden.json in the app bundle.
// The first golden case: its ids are padded to a length the model takes ({buckets}).
let url = Bundle.main.url(forResource: "golden", withExtension: "json")!
let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
let first = (golden["cases"] as! [[String: Any]])[0]
let ids = first["input_ids"] as! [Int], mask = first["attention_mask"] as! [Int]
let inputIds = try MLMultiArray(shape: [1, NSNumber(value: ids.count)], dataType: .int32)
let attentionMask = try MLMultiArray(shape: [1, NSNumber(value: ids.count)], dataType: .int32)
for i in 0..<ids.count {{ inputIds[i] = NSNumber(value: ids[i]); attentionMask[i] = NSNumber(value: mask[i]) }}
let model = try MLModel(contentsOf: MLModel.compileModel(at: Bundle.main.url(forResource: "model",
                                                                             withExtension: "mlpackage")!))
let input = try MLDictionaryFeatureProvider(dictionary: ["input_ids": inputIds, "attention_mask": attentionMask])
let logits = try model.prediction(from: input).featureValue(for: "logits")!.multiArrayValue!
let expected = first["logits"] as! [Double]
let tolerance = (golden["tolerance"] as! [String: Any])["max_abs"] as! Double
assert((0..<{num_labels}).allSatisfy {{ abs(logits[$0].doubleValue - expected[$0]) <= tolerance }})''',
    },
    "pytorch": {
        "python": '''from transformers import AutoModelForSequenceClassification, AutoTokenizer

model = AutoModelForSequenceClassification.from_pretrained(".")
tokenizer = AutoTokenizer.from_pretrained(".")
logits = model(**tokenizer("{example}", return_tensors="pt")).logits
print(model.config.id2label[int(logits.argmax(-1)[0])])''',
    },
}
TEXT_SNIPPET = '''import numpy as np
import onnxruntime as ort
from onnxruntime_extensions import get_library_path

options = ort.SessionOptions()
options.register_custom_ops_library(get_library_path())  # the BertTokenizer op
session = ort.InferenceSession("model_with_tokenizer.onnx", options, providers=["CPUExecutionProvider"])
logits, token_ids = session.run(["logits", "token_ids"], {{"text": np.array(["{example}", "dull"], dtype=object)}})
print([{labels}[i] for i in logits.argmax(-1)])'''
LANGUAGE = {"python": "python", "optimum": "python", "kotlin": "kotlin", "swift": "swift"}
SNIPPET_TITLE = {"python": "Python", "optimum": "Python (optimum)", "kotlin": "Kotlin (Android, LiteRT)",
                 "swift": "Swift (iOS / macOS, Core ML)"}


def snippet_values(backend: str, *, buckets: list[int] | None, max_length: int, labels: list[str],
                   token_types: bool) -> dict[str, Any]:
    """What the templates are filled with, from the artifact's own facts."""
    feed = ['    "input_ids": np.array([encoding.ids], np.int64),',
            '    "attention_mask": np.array([encoding.attention_mask], np.int64),']
    if token_types:
        feed.append('    "token_type_ids": np.array([encoding.type_ids], np.int64),')
    seq = (buckets or [max_length])[-1]
    return {"model_file": MODEL_FILE[backend], "max_length": min(max_length, seq), "seq": seq,
            "buckets": buckets or "any length", "labels": json.dumps(labels), "num_labels": len(labels),
            "example": "a gripping, funny and moving film", "onnx_feed": "\n".join(feed)}


def render_snippets(backend: str, values: dict[str, Any]) -> str:
    return "\n\n".join(f"**{SNIPPET_TITLE[kind]}**\n\n```{LANGUAGE[kind]}\n{template.format(**values)}\n```"
                       for kind, template in SNIPPETS[backend].items())


def readme_examples() -> str:
    """The README's "load an artifact" examples: the cards' own templates, for the default targets' facts."""
    labels = ["negative", "positive"]
    parts = []
    for backend, kind in (("onnx", "python"), ("tflite", "kotlin"), ("coreml", "swift")):
        buckets = getattr(parse_options(backend, "fp32", {}), "buckets", None)  # the profiles' defaults
        values = snippet_values(backend, buckets=buckets, max_length=128, labels=labels, token_types=False)
        parts.append(f"```{LANGUAGE[kind]}\n{SNIPPETS[backend][kind].format(**values)}\n```")
    return "\n\n".join(parts)


def render_card(info: dict[str, Any], golden: dict[str, Any] | None, bench_row: dict[str, Any] | None = None) -> str:
    """The Markdown of an artifact's card from its ``artifact.json`` record (and golden vectors, bench row)."""
    target, parity = info["target"], info.get("parity") or {}
    backend, precision = target["backend"], target["precision"]
    labels = list(info.get("label_names") or [])
    options = parse_options(backend, precision, dict(target.get("options") or {}))
    buckets = getattr(options, "buckets", None)  # fixed-shape backends only
    token_types = bool(golden and golden["cases"] and "token_type_ids" in golden["cases"][0])
    model_type = info.get("source", {}).get("model_type") or "BERT-family"
    tags = ["edgedistill", backend, precision, model_type, "text-classification"]
    header = ["---", "pipeline_tag: text-classification", f"library_name: {LIBRARY[backend]}", "tags:",
              *[f"- {t}" for t in tags], "metrics:", "- accuracy", "- agreement", "---", ""]
    lines = [f"# {target['name']}: {model_type} text classifier, {backend} {precision}", "",
             target.get("description") or "", "",
             f"Built by edgedistill for device class `{(info.get('device') or {}).get('target', 'host')}` from "
             f"`{info['source']['path']}` (sha256 `{info['source']['sha256'][:16]}`).", ""]
    lines += ["## Inputs and outputs", "", "| name | dtype | shape |", "| --- | --- | --- |"]
    dtype = INPUT_DTYPE[backend]
    shape = "(batch, sequence)" if backend in ("onnx", "pytorch") else \
        f"(1, N), N in {buckets}" if backend == "coreml" else f"(batch, N), signature `seq_N`, N in {buckets}"
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_types else [])
    lines += [f"| `{name}` (input) | {dtype} | {shape} |" for name in names]
    batch = "1" if backend == "coreml" else "batch"  # the Core ML package's shapes are batch 1
    lines += [f"| `logits` (output) | float32 | ({batch}, {len(labels)}) |", ""]
    lines += ["Token ids come from `tokenizer.json` (WordPiece, `[CLS] text [SEP]`, a pair as "
              "`[CLS] a [SEP] b [SEP]`); 1 in the mask for real tokens, 0 for padding."
              + (" Shorter input is padded with 0 up to the smallest length that holds it." if buckets else ""),
              "", f"Labels, in logit order: {', '.join(f'`{x}`' for x in labels)}.", ""]
    lines += ["## Verification", ""]
    if parity:
        lines += [f"Parity gate on {parity.get('samples')} eval sentences against the source model "
                  f"({parity.get('runtime', backend)}): label agreement {parity['agreement']:.2%}, accuracy "
                  f"{parity['source_accuracy']:.4f} → {parity['artifact_accuracy']:.4f}, max |logit difference| "
                  f"{parity['max_abs']:.3g}; gate {json.dumps(parity.get('gate', {}))}.", ""]
    if golden:
        lines += [f"`golden.json`: {len(golden['cases'])} texts (eval sentences and hard cases) with their "
                  f"input ids, masks and the logits this file gave (tolerance {golden['tolerance']['max_abs']:g}). "
                  "Run them in a unit test on the device; `edgedistill verify .` re-runs them here.", ""]
    integer = (info.get("structure") or {}).get("integer")
    if integer:
        lines += ["## Integer coverage", "", f"{integer['int8_mac_fraction']:.1%} of matrix-multiply MACs at "
                  f"batch 1 × {integer.get('shape', [1, 128])[-1]} run in int8 (int8 weights and activations); "
                  f"op types left in float: {', '.join(integer.get('float_op_types', [])) or 'none'}.", ""]
    if bench_row:
        lines += ["## Last benchmark on this host", "", _bench_line(bench_row), ""]
    if info.get("note"):
        lines += [f"Note: {info['note']}.", ""]
    values = snippet_values(backend, buckets=buckets, max_length=info.get("max_length", 128), labels=labels,
                            token_types=token_types)
    lines += ["## How to load it", "", f"From this folder; `{MODEL_FILE[backend]}` is the model.", "",
              render_snippets(backend, values), ""]
    if "model_with_tokenizer.onnx" in info.get("model_files", []):
        gate = parity.get("text_model") or {}
        lines += ["### Strings in: `model_with_tokenizer.onnx`", "",
                  f"The same model with the tokenizer in the graph (onnxruntime-extensions' `BertTokenizer` op in a "
                  f"`Loop` over the batch): input `text` (string, `[batch]`, single sentences, truncated at "
                  f"{options.text_max_length} tokens), outputs `logits` and `token_ids` (the ids it "
                  f"fed the model, 0-padded). Checked at export on {gate.get('texts', '?')} texts: token ids equal to "
                  f"the Hugging Face tokenizer's on {gate.get('token_ids_equal', '?')}, logits within "
                  f"{gate.get('max_abs_vs_id_model', float('nan')):.2g} of `model.onnx`'s. ONNX Runtime needs the "
                  "extensions' custom-op library registered (Python `onnxruntime-extensions`; Android "
                  "`onnxruntime-extensions-android`; iOS `onnxruntime-extensions-c`). optimum's "
                  "`ORTModelForSequenceClassification` keeps working on `model.onnx` (token ids in); it cannot "
                  "load this file, whose input is text.", "",
                  f"```python\n{TEXT_SNIPPET.format(**values)}\n```", ""]
    return "\n".join(header + lines)


def _bench_line(row: dict[str, Any]) -> str:
    ref = row.get("reference_latency") or {}
    latency = (f"p50 {ref['p50_ms']:.2f} ms at batch {ref['batch']} × {ref['seq']} tokens"
               if ref.get("p50_ms") is not None else f"latency n/a ({row.get('latency_note', 'not measured')})")
    host = row.get("host_cpu") or "this host"
    return (f"{latency}, {row.get('threads')} threads on {host}; peak RSS {row.get('peak_rss_mb')} MB; "
            f"accuracy {row.get('accuracy', float('nan')):.4f} on the eval split.")


def write_card(folder: Path, info: dict[str, Any], golden: dict[str, Any] | None,
               bench_row: dict[str, Any] | None = None) -> Path:
    from edgedistill.atomic import write_text_atomic

    path = Path(folder) / CARD_FILE
    write_text_atomic(path, render_card(info, golden, bench_row))
    return path


def update_cards(report: dict[str, Any]) -> None:
    """Each benchmarked artifact's card, rewritten with its latency and memory from ``report`` (this host)."""
    from edgedistill.golden import read_golden

    for row in report["rows"]:
        folder = Path(row["path"])
        record = folder / "artifact.json"
        if row.get("status") == "ok" and record.is_file():
            info = json.loads(record.read_text(encoding="utf-8"))
            write_card(folder, info, read_golden(folder), {**row, "host_cpu": report["host"].get("cpu")})


if __name__ == "__main__":  # the README's examples block: python -m edgedistill.model_card
    print(readme_examples())
