"""Artifacts an app can ship: golden vectors that `verify` re-runs, a model card per artifact, and `predict`
on checkpoints and artifacts of every backend. Tiny models, seconds each."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edgedistill.core.config import load_config
from edgedistill.core.errors import EdgeDistillError
from edgedistill.export.stage import ExportSettings, export_target, verify_artifact
from edgedistill.export.golden import HARD_CASES
from edgedistill.core.targets import load_target

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ExportSettings(max_length=32, threads=1, calibration_samples=0, seed=0)
TARGETS = {"onnx-fp32": {}, "tflite-fp32": {"buckets": [16, 32]},
           "coreml-fp16": {"buckets": [16, 32], "weight_threshold": 256}}


@pytest.fixture(scope="module")
def shipped(tmp_path_factory, tiny_student_dir, data):
    root = tmp_path_factory.mktemp("shipped")
    out = {}
    for name, options in TARGETS.items():
        target = load_target(name)
        target = target.model_copy(update={"options": {**target.options, **options}})
        out[name] = export_target(tiny_student_dir, target, data, root / name, SETTINGS)
    return out


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgedistill", *args], capture_output=True, input=stdin,
                          cwd=ROOT, timeout=300)


@pytest.mark.parametrize("name", list(TARGETS))
def test_every_artifact_carries_golden_vectors_that_reproduce(shipped, name, data):
    artifact = shipped[name]
    golden = json.loads((artifact.path / "golden.json").read_text(encoding="utf-8"))
    kinds = [case["kind"] for case in golden["cases"]]
    assert kinds == ["eval"] * 8 + [kind for kind, _ in HARD_CASES]
    assert golden["cases"][0]["text"] == data.eval.texts[0]
    for case in golden["cases"]:
        width = len(case["input_ids"])
        assert len(case["attention_mask"]) == width and sum(case["attention_mask"]) == case["tokens"]
        assert case["label"] in ("negative", "positive") and len(case["logits"]) == 2
        if name != "onnx-fp32":  # fixed-shape files: padded to the bucket the runtime feeds
            assert width in TARGETS[name]["buckets"]
        else:
            assert width == case["tokens"]
    empty = next(c for c in golden["cases"] if c["kind"] == "empty")
    assert empty["tokens"] == 2  # [CLS] [SEP]
    long = next(c for c in golden["cases"] if c["kind"] == "long")
    assert long["tokens"] == 32  # truncated to the longest input the artifact takes
    assert golden["input_dtype"] == ("int64" if name.startswith("onnx") else "int32")
    result = verify_artifact(artifact.path, None, threads=1)
    assert result["golden"] == f"{len(kinds)} cases reproduce"


def test_verify_names_the_text_whose_golden_logits_no_longer_reproduce(shipped, tmp_path):
    import shutil

    folder = tmp_path / "edited"
    shutil.copytree(shipped["onnx-fp32"].path, folder)
    golden = json.loads((folder / "golden.json").read_text(encoding="utf-8"))
    golden["cases"][9]["logits"][0] += 0.5  # the second hard case: emoji
    golden["cases"][2]["input_ids"][1] += 1  # a tokenizer that no longer gives the recorded ids
    (folder / "golden.json").write_text(json.dumps(golden), encoding="utf-8")
    with pytest.raises(EdgeDistillError) as failure:
        verify_artifact(folder, None, threads=1)
    message = str(failure.value)
    assert 'golden case 9 (emoji) "loved every minute' in message and "differ from the recorded" in message
    assert "golden case 2 (eval)" in message and "differ from the recorded ones" in message
    assert "golden.json: changed" in message
    done = run_cli("verify", str(folder), "--files-only")
    assert done.returncode == 1 and "golden case 9 (emoji)" in done.stderr.decode()  # a check failed: exit 1


@pytest.mark.parametrize("name", list(TARGETS))
def test_model_card_names_the_inputs_as_the_file_does(shipped, name):
    card = (shipped[name].path / "README.md").read_text(encoding="utf-8")
    header = card.split("---")[1]
    assert "pipeline_tag: text-classification" in header and "library_name:" in header
    assert "- accuracy" in header and f"- {name.split('-')[0]}" in header
    for field in ("`input_ids` (input)", "`attention_mask` (input)", "`logits` (output)", "`negative`",
                  "golden.json", "label agreement"):
        assert field in card, field
    snippets = {"onnx-fp32": ["```python", '"input_ids": np.array', "InferenceSession(\"model.onnx\""],
                "tflite-fp32": ["```kotlin", 'get_signature_runner("seq_32")', '"input_ids" to inputIds',
                                "golden.json"],
                "coreml-fp16": ["```swift", '"input_ids": inputIds', 'featureValue(for: "logits")']}[name]
    for snippet in snippets:
        assert snippet in card, snippet
    # The card is documentation, not a hashed file: a bench may rewrite it without breaking `verify`.
    assert "README.md" not in json.loads((shipped[name].path / "artifact.json").read_text())["files"]


def test_readme_examples_are_the_card_templates(tmp_path):
    from edgedistill.export.model_card import readme_examples

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- card-examples:start.*?-->\n(.*?)\n<!-- card-examples:end -->", readme, re.S)
    assert block is not None, "README.md lost its generated examples block"
    assert block.group(1).strip() == readme_examples().strip(), \
        "README examples differ from the task snippets: run python -m edgedistill.export.model_card > block"


@pytest.mark.parametrize("name", ["checkpoint", *TARGETS])
def test_predict_on_a_checkpoint_and_every_backend(shipped, tiny_student_dir, name):
    from edgedistill.bench.predict import open_model

    path = tiny_student_dir if name == "checkpoint" else shipped[name].path
    predictor = open_model(path, threads=1)
    rows = predictor.predict(["a gripping funny film", "dull and far too long"])
    assert [set(r["probabilities"]) for r in rows] == [{"negative", "positive"}] * 2
    assert all(abs(sum(r["probabilities"].values()) - 1.0) < 1e-5 for r in rows)
    assert all(r["label"] == max(r["probabilities"], key=r["probabilities"].get) for r in rows)
    if name == "coreml-fp16":
        assert "emulated" in predictor.runtime and predictor.note


def test_predict_command_reads_stdin_and_writes_json_lines(shipped, monkeypatch, capsys):
    import io

    from edgedistill.cli import main

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a gripping funny film\n\ndull and far too long\n")))
    assert main(["predict", str(shipped["onnx-fp32"].path), "-", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in lines] == ["a gripping funny film", "dull and far too long"]
    assert main(["predict", str(shipped["onnx-fp32"].path), "a gripping funny film"]) == 0
    assert capsys.readouterr().out.split()[0] in ("negative", "positive")


def test_predict_bad_input_is_a_one_line_error(shipped, tmp_path, capsys):
    from edgedistill.cli import main

    (tmp_path / "latin1.txt").write_bytes("caf\xe9 cr\xe8me\n".encode("latin-1"))
    (tmp_path / "empty_folder").mkdir()
    model = str(shipped["onnx-fp32"].path)
    cases = [
        (["predict", str(tmp_path / "empty_folder"), "text"], "neither an artifact folder"),
        (["predict", str(tmp_path / "missing"), "text"], "no such file or folder"),
        (["predict", model, "--file", str(tmp_path / "nope.txt")], "nope.txt: cannot read"),
        (["predict", model, "--file", str(tmp_path / "latin1.txt")], "latin1.txt: not UTF-8 text (byte 3, line 1)"),
        (["predict", model], "no text to run"),
    ]
    for args, expected in cases:
        code = main(args)
        err = capsys.readouterr().err.strip()
        assert code == 2 and expected in err and len(err.splitlines()) == 1, (args, err)


def test_onnx_with_the_tokenizer_inside_takes_strings(tiny_student_dir, data, tmp_path):
    """model_with_tokenizer.onnx: ids equal to the Hugging Face tokenizer's on every eval sentence and hard
    case, logits those of model.onnx; a pair task is refused."""
    pytest.importorskip("onnxruntime_extensions")
    from edgedistill.export.backends.onnx_tokenizer import OnnxTextRunner
    from edgedistill.core.errors import ConfigError

    target = load_target("onnx-int8-dynamic-with-tokenizer")
    artifact = export_target(tiny_student_dir, target, data, tmp_path / "text", SETTINGS)
    gate = artifact.info["parity"]["text_model"]
    assert gate["passed"] and gate["texts"] == len(data.eval) + len(HARD_CASES) == gate["token_ids_equal"]
    assert gate["max_abs_vs_id_model"] <= 1e-4
    assert artifact.info["model_files"] == ["model.onnx", "model_with_tokenizer.onnx"]
    runner = OnnxTextRunner(artifact.path / "model_with_tokenizer.onnx", threads=1)
    from transformers import AutoTokenizer

    texts = ["a gripping funny film", "", "dull"]
    expected = AutoTokenizer.from_pretrained(tiny_student_dir)(texts)["input_ids"]
    logits, ids = runner.predict_texts(texts)
    assert logits.shape == (3, 2) and ids.shape == (3, max(map(len, expected)))  # padded to the longest row
    assert [row[: len(e)].tolist() for row, e in zip(ids, expected, strict=True)] == expected
    assert ids[1, 2:].tolist() == [0] * (ids.shape[1] - 2)  # the empty string: [CLS] [SEP], then padding
    card = (artifact.path / "README.md").read_text(encoding="utf-8")
    assert "register_custom_ops_library" in card and "ORTModelForSequenceClassification" in card
    with pytest.raises(ConfigError, match="unknown tflite option 'with_tokenizer'"):
        load_config(overrides={"targets": [{"name": "x", "backend": "tflite", "precision": "fp32",
                                            "options": {"with_tokenizer": True}}]})
