"""arm64 replay: the emulation environment's refusals, the feeds, the comparison, and the tiny artifacts replayed
on arm64 kernels under qemu (those skip, saying why, where `edgedistill arm64 setup` has not been run)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgedistill.cli import main
from edgedistill.core.errors import ConfigError
from edgedistill.emulation import environment as env_module
from edgedistill.core.arm_cpus import cpu_model, cpuinfo_text, feature_names
from edgedistill.emulation.environment import Arm64Environment, EnvironmentUnavailable, build_environment
from edgedistill.emulation.replay import build_feeds, describe_failure, record_verification, replay
from edgedistill.export.backends.base import Artifact


def _environment() -> Arm64Environment | None:
    try:
        return Arm64Environment.load()
    except EnvironmentUnavailable:
        return None


ENVIRONMENT = _environment()
needs_arm64 = pytest.mark.skipif(ENVIRONMENT is None, reason="no arm64 emulation environment: run `edgedistill "
                                                               "arm64 setup` (bash setup.sh --arm64) to replay here")


def _copy(artifact: Artifact, folder: Path) -> Path:
    return Path(shutil.copytree(artifact.path, folder / artifact.path.name))


# -- what the emulated CPUs say about themselves -----------------------------------------------------------------

def test_hardware_capability_bits_are_named_as_the_kernel_names_them():
    # bits 0, 1 and 20 of AT_HWCAP: fp, asimd, asimddp (the dot product); bit 13 of AT_HWCAP2: i8mm
    assert feature_names((1 << 0) | (1 << 1) | (1 << 20), 1 << 13) == ["fp", "asimd", "asimddp", "i8mm"]
    text = cpuinfo_text(cpu_model("cortex-a76"), ["fp", "asimd", "asimddp"], processors=2)
    assert text.count("processor\t:") == 2 and "CPU part\t: 0xd0b" in text and "Features\t: fp asimd asimddp" in text


def test_an_unknown_cpu_is_refused_with_the_ones_offered():
    with pytest.raises(ConfigError, match="cortex-a76.*cortex-a53.*max"):
        cpu_model("cortex-x4")


# -- the environment refuses instead of half-building -----------------------------------------------------------

def test_setup_refuses_in_one_line_when_qemu_is_missing_and_it_is_not_root(monkeypatch, tmp_path):
    monkeypatch.setattr(env_module.shutil, "which", lambda tool: None if tool == env_module.QEMU else f"/usr/bin/{tool}")
    monkeypatch.setattr(env_module.os, "geteuid", lambda: 1000)
    with pytest.raises(EnvironmentUnavailable, match=r"needs root: run `sudo apt-get install qemu-user-static`") as error:
        build_environment(tmp_path / "arm64")
    assert "\n" not in str(error.value) and not (tmp_path / "arm64").exists()


def test_setup_refuses_without_apt(monkeypatch, tmp_path):
    monkeypatch.setattr(env_module.shutil, "which", lambda tool: None if tool == "apt-get" else f"/usr/bin/{tool}")
    with pytest.raises(EnvironmentUnavailable, match="needs apt-get .*Debian or Ubuntu"):
        build_environment(tmp_path / "arm64")
    assert not (tmp_path / "arm64").exists()


def test_a_missing_or_stale_environment_says_what_to_run(tmp_path):
    with pytest.raises(EnvironmentUnavailable, match="edgedistill arm64 setup"):
        Arm64Environment.load(tmp_path)
    host = env_module.host_runtime_versions()
    record = {"qemu": {"path": shutil.which("python3") or "/bin/sh"},
              "runtimes": {**host, "ai-edge-litert": "0.0.1"}}
    (tmp_path / "environment.json").write_text(json.dumps(record))
    with pytest.raises(EnvironmentUnavailable, match=r"holds ai-edge-litert 0\.0\.1 but this host has ai-edge-litert "
                                                     r".*setup --force"):
        Arm64Environment.load(tmp_path)


def test_a_run_that_asks_for_arm64_without_an_environment_stops_before_training(tmp_path, monkeypatch, capsys,
                                                                                toy_data_dir):
    monkeypatch.setenv("EDGEDISTILL_ARM64_ENV", str(tmp_path / "none"))
    code = main(["run", "--data", str(toy_data_dir), "--workdir", str(tmp_path / "run"), "--verify-isa", "arm64"])
    assert code == 2 and "edgedistill arm64 setup" in capsys.readouterr().err
    assert not (tmp_path / "run" / "teacher").exists()


def test_core_ml_is_refused_for_replay_naming_why(tmp_path):
    (tmp_path / "artifact.json").write_text(json.dumps({"target": {"name": "coreml-fp16", "backend": "coreml",
                                                                   "precision": "fp16"}}))
    with pytest.raises(ConfigError, match="Apple's own runtime"):
        replay(tmp_path, None)


# -- what is fed, and how a difference is named -----------------------------------------------------------------

def test_feeds_are_the_golden_rows_then_eval_rows_padded_to_their_bucket(tiny_tflite_artifacts, data):
    from transformers import AutoTokenizer

    from edgedistill.export.golden import read_golden

    artifact = tiny_tflite_artifacts["tflite-int8-static"]
    golden = read_golden(artifact.path)
    tokenizer = AutoTokenizer.from_pretrained(artifact.path)
    feeds = build_feeds(artifact, tokenizer, golden, data.eval.inputs[:5])
    assert len(feeds) == len(golden["cases"]) + 5 and feeds.golden == len(golden["cases"])
    assert feeds.arrays["0/input_ids"][0].tolist() == golden["cases"][0]["input_ids"]
    first_eval = feeds.golden
    ids = tokenizer(data.eval.inputs[0])["input_ids"]
    row = feeds.arrays[f"{first_eval}/input_ids"][0]
    assert len(row) == (8 if len(ids) <= 8 else 16) and row[: len(ids)].tolist() == ids
    assert feeds.masks[first_eval].sum() == len(ids) and feeds.signatures[first_eval] == f"seq_{len(row)}"


class _HostAsArm64:
    """An 'arm64' that is the host's own Python: the comparison and the record without qemu."""

    def cpu_record(self, cpu):
        return {"features": ["fp", "asimd"]}

    def python(self, cpu):
        import sys

        return [sys.executable, "-I"]

    site = None

    def describe(self, cpu):
        return {"isa": "arm64", "cpu": cpu, "cpu_features": ["fp", "asimd"], "emulated": "no (test)",
                "python": "test"}


def test_sentences_whose_label_changes_between_the_instruction_sets_are_named(tiny_tflite_artifacts, data,
                                                                              monkeypatch, tmp_path):
    from edgedistill.emulation import replay as replay_module

    real_worker = replay_module.run_worker
    flipped = {}

    def arm_flips_one_row(python, site, artifact, feeds, folder, *, threads, label):
        outputs, info = real_worker(python, site, artifact, feeds, folder, threads=threads, label=label)
        if label.startswith("arm64"):
            row = feeds.golden + 3  # the fourth eval sentence: its logits swapped, its label changed
            outputs[row] = outputs[row][:, ::-1].copy()
            flipped["row"] = 3
        return outputs, info

    monkeypatch.setattr(replay_module, "run_worker", arm_flips_one_row)
    path = _copy(tiny_tflite_artifacts["tflite-fp32"], tmp_path)
    record = replay(path, data, cpu="cortex-a76", samples=24, environment=_HostAsArm64())
    assert record["changed_count"] == 1 and record["changed"][0]["row"] == flipped["row"]
    assert record["changed"][0]["text"] == data.eval.inputs[3]
    assert record["changed"][0]["x86"]["label"] != record["changed"][0]["arm64"]["label"]
    assert record["agreement_x86"] == pytest.approx(23 / 24)
    assert record["golden_reproduced"] and not record["passed"]  # fp32 gate: max |diff| 1e-4 broken on that row
    assert "row 3" in describe_failure(path, record)


# -- the real thing: arm64 kernels under qemu --------------------------------------------------------------------

# About 10 s each here (qemu starts an arm64 Python and imports LiteRT): the full-integer replay runs in CI, the
# other two precisions with -m slow.
@needs_arm64
@pytest.mark.parametrize("name", [pytest.param("tflite-fp32", marks=pytest.mark.slow),
                                  pytest.param("tflite-int8-dynamic", marks=pytest.mark.slow), "tflite-int8-static"])
def test_tiny_tflite_artifacts_replay_on_arm64(tiny_tflite_artifacts, name, export_data_dir, tmp_path, capsys):
    path = _copy(tiny_tflite_artifacts[name], tmp_path)
    code = main(["verify", str(path), "--isa", "arm64", "--eval-samples", "48", "--data", str(export_data_dir)])
    assert code == 0, capsys.readouterr().err
    info = json.loads((path / "artifact.json").read_text())
    (record,) = info["verified_on"]
    assert record["isa"] == "arm64" and record["cpu"] == "cortex-a76" and "asimddp" in record["cpu_features"]
    assert record["golden_reproduced"] and record["passed"] and record["samples"] == 48
    assert record["xnnpack_weight_cache"]  # as the runner that recorded the golden vectors
    assert record["runtimes"]["ai-edge-litert"] == ENVIRONMENT.record["runtimes"]["ai-edge-litert"]
    assert record["agreement_x86"] >= 0.98 and record["agreement_checkpoint"] >= 0.98
    if name == "tflite-fp32":
        assert record["max_abs_diff"] <= 1e-4 and record["gate"]["max_abs"] <= 1e-4
    assert "## Verified on other instruction sets" in (path / "README.md").read_text()
    assert main(["verify", str(path), "--files-only"]) == 0  # the record is outside the artifact's hashes


@needs_arm64
@pytest.mark.slow
def test_a_run_folder_replays_each_of_its_artifacts(tiny_tflite_artifacts, export_data_dir, tmp_path, capsys):
    run = tmp_path / "run"
    (run / "artifacts").mkdir(parents=True)
    (run / "manifest.json").write_text("{}")
    copied = [_copy(tiny_tflite_artifacts[name], run / "artifacts") for name in ("tflite-fp16", "tflite-int8-weights")]
    code = main(["verify", str(run), "--isa", "arm64", "--eval-samples", "16", "--data", str(export_data_dir)])
    assert code == 0, capsys.readouterr().err
    for path in copied:
        (record,) = json.loads((path / "artifact.json").read_text())["verified_on"]
        assert record["passed"] and record["samples"] == 16


@needs_arm64
def test_an_altered_artifact_is_caught_on_arm64(tiny_tflite_artifacts, export_data_dir, tmp_path, capsys):
    from ai_edge_litert.tools import flatbuffer_utils

    from edgedistill.export.stage import file_records

    path = _copy(tiny_tflite_artifacts["tflite-int8-static"], tmp_path)
    model = flatbuffer_utils.read_model(str(path / "model.tflite"))
    damaged = 0
    for subgraph in model.subgraphs:  # the int8 scale of every GELU output, in every bucket, 50x too small
        for tensor in subgraph.tensors:
            if b"GELUActivation" in tensor.name and tensor.quantization is not None \
                    and tensor.quantization.scale is not None and len(tensor.quantization.scale):
                tensor.quantization.scale = [s / 50 for s in tensor.quantization.scale]
                damaged += 1
    assert damaged
    flatbuffer_utils.write_model(model, str(path / "model.tflite"))
    info = json.loads((path / "artifact.json").read_text())
    info["files"] = file_records(path)  # its record rewritten to match: only the numbers can tell
    (path / "artifact.json").write_text(json.dumps(info))
    code = main(["verify", str(path), "--isa", "arm64", "--eval-samples", "48", "--data", str(export_data_dir)])
    err = capsys.readouterr().err
    assert code == 1, err[-1500:]
    assert "not verified on arm64 cortex-a76" in err and "golden case" in err
    (record,) = json.loads((path / "artifact.json").read_text())["verified_on"]
    assert not record["passed"] and not record["golden_reproduced"]


@needs_arm64
@pytest.mark.slow
def test_an_onnx_artifact_replays_on_arm64_onnx_runtime(tiny_student_dir, data, tmp_path):
    from edgedistill.core.targets import load_target
    from edgedistill.export.stage import ExportSettings, export_target

    artifact = export_target(tiny_student_dir, load_target("onnx-int8-dynamic"), data, tmp_path / "onnx",
                             ExportSettings(max_length=16, threads=1, calibration_samples=64, seed=0))
    record = replay(artifact.path, data, samples=32)
    assert record["runtimes"]["onnxruntime"] and record["golden_reproduced"] and record["passed"]
    info = record_verification(artifact.path, record)
    assert info["verified_on"][0]["cpu"] == "cortex-a76"
