"""Export a tiny trained classifier to seven targets with whichever edgedistill is first on sys.path: the
evidence that a change left classification exports as they were, with benchmarks/compare_artifacts.py.

    git worktree add /tmp/old <commit before>
    (cd /tmp/old && PYTHONPATH=/tmp/old /work/main/.venv/bin/python /work/main/benchmarks/tiny_classifier_exports.py /tmp/cls-old)
    .venv/bin/python benchmarks/tiny_classifier_exports.py /tmp/cls-new
    .venv/bin/python benchmarks/compare_artifacts.py /tmp/cls-old /tmp/cls-new --name NAME

The classifier is the tests' (tests/conftest.py ``train_tiny_classifier`` on the toy sentiment data, seconds to
train), built once in /tmp/clsparity and reused by the second run, so both export the same checkpoint.
"""

from __future__ import annotations

import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
WORK = Path("/tmp/clsparity")
TARGETS = ("onnx-fp32", "onnx-int8-dynamic", "onnx-int8-static", "tflite-fp32", "tflite-int8-static", "coreml-fp16",
           "coreml-int8-static")


def tiny_classifier(data_dir: Path) -> Path:
    """The tests' tiny classifier and its toy data, made once."""
    from conftest import toy_rows, train_tiny_classifier, write_tiny_tokenizer, write_tsv

    data_dir.mkdir(parents=True, exist_ok=True)
    write_tsv(data_dir / "train.tsv", toy_rows(256, seed=3))
    write_tsv(data_dir / "dev.tsv", toy_rows(200, seed=4))
    student = WORK / "student"
    if (student / "config.json").is_file():
        return student
    tokenizer = write_tiny_tokenizer(WORK / "tokenizer")
    student.mkdir(parents=True, exist_ok=True)
    return train_tiny_classifier(student, tokenizer, data_dir)


def main() -> None:
    sys.path.insert(1, str(TESTS))
    import edgedistill
    from edgedistill.core.config import DataConfig, load_config
    from edgedistill.core.targets import load_target
    from edgedistill.data.task_data import load_task_data
    from edgedistill.export.stage import ExportSettings, export_target

    print("edgedistill from", edgedistill.__file__)
    data_dir = WORK / "data"
    student = tiny_classifier(data_dir)
    data = load_task_data(DataConfig(dataset=str(data_dir), label_names=["negative", "positive"]))
    config = load_config(overrides={"data.dataset": str(data_dir), "threads": 1, "data.calibration_samples": 64})
    settings = ExportSettings.from_config(config)
    out = Path(sys.argv[1])
    for name in TARGETS:
        export_target(student, load_target(name), data, out / f"student-{name}", settings)
    print("exported to", out)


if __name__ == "__main__":
    main()
