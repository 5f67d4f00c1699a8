"""The token-classification task's model-card snippets: tag a text's words from the artifact's per-token logits.

Templates by backend and language, filled by :func:`edgedistill.export.model_card.snippet_values`. Every snippet
does the word alignment an app has to do: a word's tag is the argmax of its *first* sub-token's row (WordPiece
marks the others with ``##``); special tokens and padding rows carry no tag.
"""

SNIPPETS: dict[str, dict[str, str]] = {
    "onnx": {
        "python": '''import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

tags = {labels}
tokenizer = Tokenizer.from_file("tokenizer.json")
tokenizer.enable_truncation({max_length})
text = "Angela Merkel met Tim Cook in Berlin ."
encoding = tokenizer.encode(text)
session = ort.InferenceSession("{model_file}", providers=["CPUExecutionProvider"])
feed = {{
{onnx_feed}
}}
logits = session.run(["logits"], feed)[0][0]  # (tokens, tags)
seen = set()
for i, word in enumerate(encoding.word_ids):  # the first sub-token of each word carries its tag
    if word is not None and word not in seen:
        seen.add(word)
        start, end = encoding.offsets[i]
        print(text[start:end], tags[int(logits[i].argmax())])''',
        "optimum": '''from optimum.onnxruntime import ORTModelForTokenClassification
from transformers import AutoTokenizer, pipeline

model = ORTModelForTokenClassification.from_pretrained(".", file_name="{model_file}")
tagger = pipeline("token-classification", model=model, tokenizer=AutoTokenizer.from_pretrained("."),
                  aggregation_strategy="first")
print(tagger("Angela Merkel met Tim Cook in Berlin."))''',
    },
    "tflite": {
        "python": '''import numpy as np
from ai_edge_litert.interpreter import Interpreter
from tokenizers import Tokenizer

tags = {labels}
tokenizer = Tokenizer.from_file("tokenizer.json")
tokenizer.enable_truncation({max_length})
encoding = tokenizer.encode("Angela Merkel met Tim Cook in Berlin .")
ids = encoding.ids
runner = Interpreter(model_path="{model_file}").get_signature_runner("seq_{seq}")  # buckets: {buckets}
input_ids = np.zeros((1, {seq}), np.int32)
attention_mask = np.zeros((1, {seq}), np.int32)
input_ids[0, :len(ids)], attention_mask[0, :len(ids)] = ids, 1
logits = runner(input_ids=input_ids, attention_mask=attention_mask)["logits"][0]  # ({seq}, tags)
for i, token in enumerate(encoding.tokens):
    if encoding.word_ids[i] is not None and not token.startswith("##"):  # a word's first sub-token
        print(token, tags[int(logits[i].argmax())])''',
        "kotlin": '''// LiteRT (org.tensorflow.lite.Interpreter), model.tflite and golden.json in the app's assets.
// The first golden case: its ids are padded to a bucket ({buckets}), the signature "seq_<length>".
val golden = JSONObject(context.assets.open("golden.json").bufferedReader().readText())
val case = golden.getJSONArray("cases").getJSONObject(0)
val ids = case.getJSONArray("input_ids")
val mask = case.getJSONArray("attention_mask")
val n = ids.length()
val inputIds = Array(1) {{ IntArray(n) {{ ids.getInt(it) }} }}
val attentionMask = Array(1) {{ IntArray(n) {{ mask.getInt(it) }} }}
val logits = Array(1) {{ Array(n) {{ FloatArray({output_size}) }} }}
val interpreter = Interpreter(FileUtil.loadMappedFile(context, "{model_file}"))
interpreter.runSignature(
    mapOf("input_ids" to inputIds, "attention_mask" to attentionMask),
    mapOf("logits" to logits),
    "seq_$n",
)
// One tag per token (argmax); your WordPiece tokenizer says which tokens open a word (no "##" prefix):
// those tokens' tags are the words' tags. The golden case records every token's expected tag.
val tags = golden.getJSONArray("labels")
val expected = case.getJSONArray("tags")
for (i in 0 until case.getInt("tokens")) {{
    val best = logits[0][i].indices.maxBy {{ logits[0][i][it] }}
    check(tags.getString(best) == expected.getString(i))
}}''',
    },
    "coreml": {
        "python": '''import coremltools as ct
import numpy as np
from tokenizers import Tokenizer

tags = {labels}
tokenizer = Tokenizer.from_file("tokenizer.json")
tokenizer.enable_truncation({max_length})
encoding = tokenizer.encode("Angela Merkel met Tim Cook in Berlin .")
ids = encoding.ids
model = ct.models.MLModel("{model_file}")  # predict() needs macOS
input_ids = np.zeros((1, {seq}), np.int32)  # lengths: {buckets}
attention_mask = np.zeros((1, {seq}), np.int32)
input_ids[0, :len(ids)], attention_mask[0, :len(ids)] = ids, 1
logits = model.predict({{"input_ids": input_ids, "attention_mask": attention_mask}})["logits"][0]
for i, token in enumerate(encoding.tokens):
    if encoding.word_ids[i] is not None and not token.startswith("##"):  # a word's first sub-token
        print(token, tags[int(logits[i].argmax())])''',
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
let logits = try model.prediction(from: input).featureValue(for: "logits")!.multiArrayValue!  // [1, tokens, tags]
// One tag per token (argmax); the tokens your WordPiece tokenizer does not mark "##" open a word and carry its tag.
let tags: [String] = {labels}
let expected = first["tags"] as! [String]
for i in 0..<(first["tokens"] as! Int) {{
    let row = (0..<{output_size}).map {{ logits[[0, NSNumber(value: i), NSNumber(value: $0)]].doubleValue }}
    assert(tags[row.indices.max {{ row[$0] < row[$1] }}!] == expected[i])
}}''',
    },
    "pytorch": {
        "python": '''from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

tagger = pipeline("token-classification", model=AutoModelForTokenClassification.from_pretrained("."),
                  tokenizer=AutoTokenizer.from_pretrained("."), aggregation_strategy="first")
print(tagger("Angela Merkel met Tim Cook in Berlin."))''',
    },
}
