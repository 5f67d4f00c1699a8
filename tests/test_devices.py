"""A target names the device class it is for: the export host's CPU never decides what the file contains."""

from __future__ import annotations

import hashlib

import pytest

from edgedistill.core.config import load_config
from edgedistill.core.errors import ConfigError
from edgedistill.export.stage import ExportSettings, export_target
from edgedistill.core.targets import load_target

SETTINGS = ExportSettings(max_length=32, threads=1, calibration_samples=16, seed=0)


def _pretend_host(monkeypatch, isa: list[str], machine: str = "x86_64") -> None:
    """This process as an x86-64 host (by default) with these ISA flags, whatever machine runs the test: the
    architecture is faked with the flags, so an arm64 host (Apple Silicon, Graviton) pretends as well."""
    import platform

    import edgedistill.core.host

    real = edgedistill.core.host.host_info
    monkeypatch.setattr(edgedistill.core.host, "host_info", lambda threads=None: {**real(threads), "isa": isa})
    monkeypatch.setattr(platform, "machine", lambda: machine)


def _export(tiny_student_dir, data, out, device: str | None = None):
    target = load_target("onnx-int8-dynamic")
    if device is not None:
        target = target.model_copy(update={"device": device})
    return export_target(tiny_student_dir, target, data, out, SETTINGS)


def _sha(artifact) -> str:
    return hashlib.sha256((artifact.path / "model.onnx").read_bytes()).hexdigest()


def _weight_types(artifact) -> set[int]:
    """The element types of the integer matmuls' weights."""
    import onnx

    model = onnx.load(str(artifact.path / "model.onnx"))
    initializers = {t.name: t.data_type for t in model.graph.initializer}
    types = {initializers[n.input[1]] for n in model.graph.node
             if n.op_type == "MatMulInteger" and n.input[1] in initializers}
    assert types, "no integer matmul with a constant weight"
    return types


def test_same_target_on_hosts_with_different_isas_gives_the_same_bytes(tiny_student_dir, data, tmp_path,
                                                                       monkeypatch):
    from edgedistill.core.devices import host_device

    _pretend_host(monkeypatch, ["avx", "avx2", "fma"])
    assert host_device() == "x86-avx2"
    on_avx2 = _export(tiny_student_dir, data, tmp_path / "avx2-host")
    _pretend_host(monkeypatch, ["avx", "avx2", "fma", "avx512f", "avx512_vnni"])
    assert host_device() == "x86-avx512-vnni"
    on_vnni = _export(tiny_student_dir, data, tmp_path / "vnni-host")
    assert _sha(on_avx2) == _sha(on_vnni)
    assert on_avx2.info["device"] == {"target": "x86-avx512-vnni", "export_host": "x86-avx2"}
    assert on_vnni.info["device"] == {"target": "x86-avx512-vnni", "export_host": "x86-avx512-vnni"}


def test_each_device_gets_its_recipe_and_host_means_the_exporting_machine(tiny_student_dir, data, tmp_path,
                                                                          monkeypatch):
    import onnx

    _pretend_host(monkeypatch, ["avx", "avx2", "fma", "avx512f", "avx512_vnni"])
    arm64 = _export(tiny_student_dir, data, tmp_path / "arm64", device="arm64")
    avx2 = _export(tiny_student_dir, data, tmp_path / "avx2", device="x86-avx2")
    assert arm64.info["device"]["target"] == "arm64"
    assert _weight_types(arm64) == {onnx.TensorProto.INT8}  # optimum's arm64 recipe, on this x86 host
    assert _weight_types(avx2) == {onnx.TensorProto.UINT8}  # the AVX2 recipe: uint8 weights
    _pretend_host(monkeypatch, ["avx", "avx2", "fma"])
    host = _export(tiny_student_dir, data, tmp_path / "host", device="host")
    assert host.info["device"]["target"] == "x86-avx2" and _sha(host) == _sha(avx2)


@pytest.mark.parametrize(("target", "message"), [
    ({"backend": "onnx", "precision": "int8-dynamic", "device": "apple-ane"},
     "device 'apple-ane' is not a onnx device class; onnx targets take: host, arm64, x86-avx2"),
    ({"backend": "coreml", "precision": "fp16", "device": "arm64"}, "coreml targets take: apple-ane"),
])
def test_a_device_the_backend_cannot_target_fails_at_config_load(target, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides={"targets": [{"name": "bad", **target}]})


def test_every_profile_names_its_device():
    from pathlib import Path

    import yaml

    for path in sorted(Path(__file__).resolve().parents[1].joinpath("targets").glob("*.yaml")):
        assert "device" in yaml.safe_load(path.read_text()), path.name


def test_a_bench_row_built_for_another_device_says_so():
    from edgedistill.bench.report import render_markdown

    row = {"name": "student-tflite-int8-static", "backend": "tflite", "precision": "int8-static", "status": "ok",
           "device": "arm64", "bench_host_device": "x86-avx2", "latency": [], "size_bytes": 1, "parameters": 1}
    from edgedistill.core.host import host_info

    report = {"settings": {"reference": {"batch": 1, "seq": 128}, "threads": 2, "eval_samples": 1,
                           "batch_sizes": [1], "seq_lengths": [128], "timing": "test"},
              "host": host_info(2), "created": "now", "rows": [row]}
    text = render_markdown(report)
    assert "student-tflite-int8-static§" in text
    assert "§ Built for another device class than this x86-avx2 host (arm64 (tflite))" in text
    same = render_markdown({**report, "rows": [{**row, "bench_host_device": "arm64"}]})
    assert "§" not in same


def test_the_host_class_comes_from_the_architecture_and_the_flags(monkeypatch):
    """What the export machine is, whatever machine runs the test (an x86 CI box, an arm64 laptop)."""
    from edgedistill.core.devices import host_device

    _pretend_host(monkeypatch, ["asimd", "asimddp", "i8mm"], machine="aarch64")
    assert host_device() == "arm64"
    _pretend_host(monkeypatch, ["avx", "avx2", "fma", "avx512f"])
    assert host_device() == "x86-avx512"
