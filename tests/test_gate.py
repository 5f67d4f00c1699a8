"""The gate's rejections: each way an artifact fails gets a one-line reason, and failures reach the exit code.

The judge is tested on outputs built to break exactly one bound (so each test fails if that bound stops being
checked); the export and the command line are tested on a tiny student whose artifact is made to misbehave.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from edgedistill.core.config import Tolerance
from edgedistill.export.backends.base import ParityError
from edgedistill.tasks.classification import TASK

N = 200  # eval rows of the synthetic judgements: one changed label is 0.5 points


def _logits(predicted: np.ndarray, margin: float = 3.0) -> np.ndarray:
    """Two-class logits whose argmax is ``predicted``, ``margin`` apart."""
    out = np.zeros((len(predicted), 2), dtype=np.float32)
    out[np.arange(len(predicted)), predicted] = margin
    return out


def _flip(predicted: np.ndarray, rows: list[int]) -> np.ndarray:
    changed = predicted.copy()
    changed[rows] = 1 - changed[rows]
    return changed


LABELS = np.arange(N) % 2  # the checkpoint is right on every row


def test_a_passing_artifact_has_no_reason():
    report = TASK.judge(_logits(LABELS), _logits(LABELS) + 1e-6, LABELS, Tolerance(max_abs=1e-4))
    assert report.passed and report.failures == [] and report.measures["agreement"] == 1.0


def test_agreement_below_the_bound_is_named_with_the_changed_labels():
    out = _logits(_flip(LABELS, [0, 1, 2, 3, 4]))  # 5 of 200: 97.5% agreement
    report = TASK.judge(_logits(LABELS), out, LABELS, Tolerance(min_agreement=0.99))
    assert not report.passed
    assert report.failures == ["label agreement 97.50% < 99.00% (5 of 200 labels changed)"]


def test_accuracy_drop_beyond_the_bound_is_named():
    out = _logits(_flip(LABELS, [0, 1, 2, 3]))  # 4 right answers lost: 2 points
    report = TASK.judge(_logits(LABELS), out, LABELS, Tolerance(max_accuracy_drop=1.0))
    assert report.failures == ["accuracy drop 2.00 points (1.0000 -> 0.9800) > 1"]


def test_nan_or_infinite_outputs_fail_whatever_the_bounds():
    out = _logits(LABELS)
    out[7, 1] = np.nan
    out[8, 0] = np.inf
    report = TASK.judge(_logits(LABELS), out, LABELS, Tolerance(min_agreement=0.0, max_accuracy_drop=100.0))
    assert not report.passed
    assert "the artifact produced 2 NaN or infinite output value(s)" in report.failures


def test_a_wrong_output_shape_is_a_reason_not_a_crash():
    report = TASK.judge(_logits(LABELS), np.zeros((N, 3), dtype=np.float32), LABELS, Tolerance(max_abs=1e-4))
    assert report.failures == ["the artifact's output has shape (200, 3), the checkpoint's (200, 2)"]
    assert "max |diff| inf" in TASK.describe_gate(report)


def test_fp32_logits_beyond_max_abs_fail():
    report = TASK.judge(_logits(LABELS), _logits(LABELS) + 2e-3, LABELS, TASK.tolerance("fp32", Tolerance()))
    assert report.failures == ["max |logit difference| 0.002 > 0.0001"]


@pytest.mark.parametrize("changed, passes", [(1, True), (2, True), (3, False)])
def test_a_small_eval_split_reads_a_bound_finer_than_two_sentences_as_two(changed, passes):
    """139 sentence pairs: one changed label is 0.72 points, so "drop <= 0.5 points" would fail on any change."""
    labels = np.arange(139) % 2
    out = _logits(_flip(labels, list(range(changed))))
    report = TASK.judge(_logits(labels), out, labels, TASK.tolerance("int8-static", Tolerance()))
    assert report.passed is passes, report.failures
    assert report.gate["max_accuracy_drop_resolved"] == pytest.approx(200 / 139, abs=1e-4)
    assert report.gate["min_agreement_resolved"] == pytest.approx(1 - 2 / 139, abs=1e-6)
    assert report.measures["resolution_points"] == pytest.approx(100 / 139, abs=1e-4)
    assert "139 eval sentences: one changed label is 0.72 points" in report.gate["resolution"]


def test_a_large_eval_split_keeps_the_bounds_as_set():
    labels = np.arange(872) % 2
    report = TASK.judge(_logits(labels), _logits(_flip(labels, [0, 1, 2, 3, 4])), labels,
                        TASK.tolerance("int8-static", Tolerance()))
    assert report.failures == ["accuracy drop 0.57 points (1.0000 -> 0.9943) > 0.5"]
    assert "max_accuracy_drop_resolved" not in report.gate and "resolution" not in report.gate


# -- through the export stage and the command line --------------------------------------------------


@pytest.fixture
def nan_runner(monkeypatch):
    """ONNX Runtime sessions whose logits come out NaN on one row of every batch."""
    from edgedistill.export.backends import onnx

    real = onnx.OnnxRunner.predict

    def broken(self, input_ids, attention_mask):
        out = real(self, input_ids, attention_mask)
        out[0, 0] = np.nan
        return out

    monkeypatch.setattr(onnx.OnnxRunner, "predict", broken)


def test_an_export_that_fails_its_gate_writes_nothing_and_says_why(tiny_student_dir, data, tmp_path, nan_runner):
    from edgedistill.core.targets import load_target
    from edgedistill.export.stage import ExportSettings, export_target

    settings = ExportSettings(max_length=32, threads=1, calibration_samples=16, seed=0, verify_samples=32)
    with pytest.raises(ParityError) as failure:
        export_target(tiny_student_dir, load_target("onnx-fp32"), data, tmp_path / "a", settings)
    assert "NaN or infinite output value(s)" in str(failure.value) and "No artifact was written" in str(failure.value)
    assert failure.value.parity["passed"] is False
    assert not (tmp_path / "a").exists()


def test_the_export_command_exits_1_when_the_gate_fails(tiny_student_dir, export_data_dir, tmp_path, capsys):
    from edgedistill.cli import main

    profile = tmp_path / "strict.yaml"
    profile.write_text("backend: onnx\nprecision: int8-dynamic\ntolerance: {max_abs: 1.0e-9}\n", encoding="utf-8")
    code = main(["export", "--model", str(tiny_student_dir), "--target", str(profile), "--out", str(tmp_path / "o"),
                 "--data", str(export_data_dir), "--eval-samples", "32", "--threads", "1"])
    assert code == 1
    assert "edgedistill export: failed: target strict: the onnx int8-dynamic artifact failed verification" in \
        capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def gated_artifact(tmp_path_factory, tiny_student_dir, export_data_dir, data):
    """An ONNX fp32 artifact exported as the command line exports, its data settings recorded."""
    from edgedistill.core.config import load_config
    from edgedistill.core.targets import load_target
    from edgedistill.export.stage import ExportSettings, export_target

    config = load_config(overrides={"data.dataset": str(export_data_dir), "data.max_length": 32, "threads": 1,
                                    "data.label_names": ["negative", "positive"]})
    settings = replace(ExportSettings.from_config(config, verify_samples=32), calibration_samples=16)
    return export_target(tiny_student_dir, load_target("onnx-fp32"), data, tmp_path_factory.mktemp("gated") / "a",
                         settings)


def test_verify_exits_1_on_a_tampered_artifact_and_0_on_the_original(gated_artifact, tmp_path, capsys):
    from edgedistill.cli import main

    assert main(["verify", str(gated_artifact.path), "--files-only"]) == 0
    tampered = tmp_path / "tampered"
    shutil.copytree(gated_artifact.path, tampered)
    model = tampered / "model.onnx"
    raw = bytearray(model.read_bytes())
    raw[-100] ^= 0xFF
    model.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["verify", str(tampered), "--files-only"]) == 1
    err = capsys.readouterr().err
    assert "edgedistill verify: failed:" in err and "model.onnx: changed" in err


def test_verify_without_data_uses_what_the_artifact_was_gated_on(gated_artifact, export_data_dir, data, capsys):
    from edgedistill.cli import main

    gated_on = json.loads((gated_artifact.path / "artifact.json").read_text())["gated_on"]
    assert gated_on["data"]["dataset"] == str(export_data_dir) and gated_on["samples"] == 32
    assert gated_on["fingerprint"] == data.fingerprint and gated_on["split"] == "eval"
    capsys.readouterr()
    assert main(["verify", str(gated_artifact.path), "--eval-samples", "32", "--threads", "1"]) == 0
    captured = capsys.readouterr()
    assert f"using the data the artifact was gated on ({export_data_dir})" in captured.err
    report = json.loads(captured.out)
    assert report["parity"]["passed"] is True and "data" not in report  # the same data: nothing to say


def test_verify_says_when_the_data_given_differs_from_the_gating_data(gated_artifact, toy_data_dir, capsys):
    from edgedistill.cli import main

    assert main(["verify", str(gated_artifact.path), "--data", str(toy_data_dir), "--threads", "1",
                 "--label-names", "negative,positive"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["data"].startswith(f"differs from the data this artifact was gated on ({gated_artifact.info['gated_on']['data']['dataset']}")
