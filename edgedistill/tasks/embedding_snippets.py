"""The embedding task's model-card snippets: load the artifact, embed two texts, compare them by cosine.

Templates by backend and language, filled by :func:`edgedistill.export.model_card.snippet_values`. The vectors
come out of the file already mean-pooled and L2-normalised, so a cosine is a dot product.
"""

SNIPPETS: dict[str, dict[str, str]] = {
    "onnx": {
        "python": '''import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

tokenizer = Tokenizer.from_file("tokenizer.json")
tokenizer.enable_truncation({max_length})
tokenizer.enable_padding()
encodings = tokenizer.encode_batch(["{example}", "a moving and funny film"])
session = ort.InferenceSession("{model_file}", providers=["CPUExecutionProvider"])
feed = {{"input_ids": np.array([e.ids for e in encodings], np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], np.int64)}}
embedding = session.run(["embedding"], feed)[0]  # (2, dimension), unit norm
print("cosine", float(embedding[0] @ embedding[1]))''',
    },
    "tflite": {
        "python": '''import numpy as np
from ai_edge_litert.interpreter import Interpreter
from tokenizers import Tokenizer

tokenizer = Tokenizer.from_file("tokenizer.json")
tokenizer.enable_truncation({max_length})
interpreter = Interpreter(model_path="{model_file}")


def embed(text):
    ids = tokenizer.encode(text).ids
    seq = next(b for b in {buckets} if b >= len(ids))  # the smallest bucket that holds it
    input_ids = np.zeros((1, seq), np.int32)
    attention_mask = np.zeros((1, seq), np.int32)
    input_ids[0, :len(ids)], attention_mask[0, :len(ids)] = ids, 1
    runner = interpreter.get_signature_runner(f"seq_{{seq}}")
    return runner(input_ids=input_ids, attention_mask=attention_mask)["embedding"][0]


print("cosine", float(embed("{example}") @ embed("a moving and funny film")))''',
        "kotlin": '''// LiteRT (org.tensorflow.lite.Interpreter), model.tflite and golden.json in the app's assets.
// The first two golden cases: their ids are padded to a bucket ({buckets}), the signature "seq_<length>".
val golden = JSONObject(context.assets.open("golden.json").bufferedReader().readText())
val interpreter = Interpreter(FileUtil.loadMappedFile(context, "{model_file}"))
fun embed(case: JSONObject): FloatArray {{
    val ids = case.getJSONArray("input_ids")
    val mask = case.getJSONArray("attention_mask")
    val inputIds = Array(1) {{ IntArray(ids.length()) {{ ids.getInt(it) }} }}
    val attentionMask = Array(1) {{ IntArray(mask.length()) {{ mask.getInt(it) }} }}
    val embedding = Array(1) {{ FloatArray(case.getInt("dimension")) }}
    interpreter.runSignature(
        mapOf("input_ids" to inputIds, "attention_mask" to attentionMask),
        mapOf("embedding" to embedding),
        "seq_${{ids.length()}}",
    )
    return embedding[0]
}}
val cases = golden.getJSONArray("cases")
val a = embed(cases.getJSONObject(0))
val b = embed(cases.getJSONObject(1))
val cosine = a.indices.sumOf {{ (a[it] * b[it]).toDouble() }}  // unit vectors: the dot product''',
    },
    "coreml": {
        "python": '''import coremltools as ct
import numpy as np
from tokenizers import Tokenizer

tokenizer = Tokenizer.from_file("tokenizer.json")
tokenizer.enable_truncation({max_length})
model = ct.models.MLModel("{model_file}")  # predict() needs macOS


def embed(text):
    ids = tokenizer.encode(text).ids
    seq = next(b for b in {buckets} if b >= len(ids))
    input_ids = np.zeros((1, seq), np.int32)
    attention_mask = np.zeros((1, seq), np.int32)
    input_ids[0, :len(ids)], attention_mask[0, :len(ids)] = ids, 1
    return model.predict({{"input_ids": input_ids, "attention_mask": attention_mask}})["embedding"][0]


print("cosine", float(embed("{example}") @ embed("a moving and funny film")))''',
        "swift": '''// Core ML, with model.mlpackage and golden.json in the app bundle.
// The first two golden cases: their ids are padded to a length the model takes ({buckets}).
let url = Bundle.main.url(forResource: "golden", withExtension: "json")!
let golden = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
let cases = golden["cases"] as! [[String: Any]]
let model = try MLModel(contentsOf: MLModel.compileModel(at: Bundle.main.url(forResource: "model",
                                                                             withExtension: "mlpackage")!))
func embed(_ golden: [String: Any]) throws -> MLMultiArray {{
    let ids = golden["input_ids"] as! [Int], mask = golden["attention_mask"] as! [Int]
    let inputIds = try MLMultiArray(shape: [1, NSNumber(value: ids.count)], dataType: .int32)
    let attentionMask = try MLMultiArray(shape: [1, NSNumber(value: ids.count)], dataType: .int32)
    for i in 0..<ids.count {{ inputIds[i] = NSNumber(value: ids[i]); attentionMask[i] = NSNumber(value: mask[i]) }}
    let input = try MLDictionaryFeatureProvider(dictionary: ["input_ids": inputIds, "attention_mask": attentionMask])
    return try model.prediction(from: input).featureValue(for: "embedding")!.multiArrayValue!
}}
let a = try embed(cases[0]), b = try embed(cases[1])
let cosine = (0..<a.count).reduce(0.0) {{ $0 + a[$1].doubleValue * b[$1].doubleValue }}  // unit vectors''',
    },
    "pytorch": {
        "python": '''from sentence_transformers import SentenceTransformer

model = SentenceTransformer(".")  # the same vectors as the exported files, before export
embedding = model.encode(["{example}", "a moving and funny film"], normalize_embeddings=True)
print("cosine", float(embedding[0] @ embedding[1]))''',
    },
}
TEXT_SNIPPET = '''import numpy as np
import onnxruntime as ort
from onnxruntime_extensions import get_library_path

options = ort.SessionOptions()
options.register_custom_ops_library(get_library_path())  # the BertTokenizer op
session = ort.InferenceSession("model_with_tokenizer.onnx", options, providers=["CPUExecutionProvider"])
embedding, token_ids = session.run(None, {{"text": np.array(["{example}", "a moving and funny film"], dtype=object)}})
print("cosine", float(embedding[0] @ embedding[1]))'''
