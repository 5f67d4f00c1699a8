"""The classification task's model-card snippets: load the artifact, feed a text, read the label.

Templates by backend and language, filled by :func:`edgedistill.export.model_card.snippet_values` from the
artifact's own facts; the README's "load an artifact" examples are generated from them too
(``python -m edgedistill.export.model_card``; a test keeps the two in step).
"""

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
val logits = Array(1) {{ FloatArray({output_size}) }}
val interpreter = Interpreter(FileUtil.loadMappedFile(context, "{model_file}"))
interpreter.runSignature(
    mapOf("input_ids" to inputIds, "attention_mask" to attentionMask),
    mapOf("logits" to logits),
    "seq_${{ids.length()}}",
)
val expected = case.getJSONArray("logits")
val tolerance = golden.getJSONObject("tolerance").getDouble("max_abs")
check((0 until {output_size}).all {{ abs(logits[0][it] - expected.getDouble(it)) <= tolerance }})''',
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
assert((0..<{output_size}).allSatisfy {{ abs(logits[$0].doubleValue - expected[$0]) <= tolerance }})''',
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
