"""Export a tiny trained classifier to seven targets with whichever edgedistill is first on sys.path: the
evidence that a change left classification exports as they were, with benchmarks/compare_artifacts.py.

    git worktree add /tmp/old <commit before>
    (cd /tmp/old && PYTHONPATH=/tmp/old ../work/main/.venv/bin/python /work/main/benchmarks/tiny_classifier_exports.py /tmp/cls-old)
    .venv/bin/python benchmarks/tiny_classifier_exports.py /tmp/cls-new
    .venv/bin/python benchmarks/compare_artifacts.py /tmp/cls-old /tmp/cls-new --name NAME

The classifier is the tests' (tests/conftest.py train_tiny_classifier on the toy sentiment data, seconds to
train), built once in /tmp/clsparity and reused by the second run, so both export the same checkpoint.
"""
import sys
from pathlib import Path

sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))
import edgedistill
print("edgedistill from", edgedistill.__file__)
from conftest import train_tiny_classifier, write_tsv, toy_rows
base = Path("/tmp/clsparity"); base.mkdir(exist_ok=True)
data_dir = base / "data"; data_dir.mkdir(exist_ok=True)
write_tsv(data_dir / "train.tsv", toy_rows(256, seed=3)); write_tsv(data_dir / "dev.tsv", toy_rows(200, seed=4))
tok = base / "tok"
if not (base / "student" / "config.json").is_file():
    from transformers import BertTokenizerFast
    from conftest import POSITIVE, NEGATIVE, FILLER
    tok.mkdir(exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *POSITIVE, *NEGATIVE, *FILLER]
    vocab += [chr(c) for c in range(97, 123)] + [f"##{chr(c)}" for c in range(97, 123)]
    (tok / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    BertTokenizerFast(vocab_file=str(tok / "vocab.txt"), do_lower_case=True).save_pretrained(tok)
    (base / "student").mkdir(exist_ok=True)
    train_tiny_classifier(base / "student", tok, data_dir)
from edgedistill.core.config import DataConfig, load_config
from edgedistill.core.targets import load_target
from edgedistill.data.task_data import load_task_data
from edgedistill.export.stage import ExportSettings, export_target
data = load_task_data(DataConfig(dataset=str(data_dir), label_names=["negative", "positive"]))
config = load_config(overrides={"data.dataset": str(data_dir), "threads": 1, "data.calibration_samples": 64})
settings = ExportSettings.from_config(config)
out = Path(sys.argv[1])
for name in ("onnx-fp32", "onnx-int8-dynamic", "onnx-int8-static", "tflite-fp32", "tflite-int8-static", "coreml-fp16", "coreml-int8-static"):
    export_target(base / "student", load_target(name), data, out / f"student-{name}", settings)
print("done", out)
