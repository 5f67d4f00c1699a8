"""The benchmark harness: statistics on known series, the isolated run, the report and its plots."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgedistill.bench.plots import pareto_front
from edgedistill.bench.timing import measure, percentile, summarize
from edgedistill.export.stage import ExportSettings

SETTINGS = ExportSettings(max_length=32, threads=1, calibration_samples=16, seed=0)


def test_percentiles_on_a_known_series():
    series = list(range(1, 11))  # 1..10
    assert percentile(series, 50) == 5.5
    assert percentile(series, 90) == pytest.approx(9.1)
    assert percentile(series, 99) == pytest.approx(9.91)
    assert percentile([7.0], 99) == 7.0
    for q in (50, 90, 99):
        assert percentile(series[::-1], q) == pytest.approx(np.percentile(series, q))


def test_summary_statistics_and_noise_flag():
    stats = summarize([10.0, 10.0, 10.0, 10.0], first_ms=50.0, warmup_runs=2, batch=8)
    assert (stats.mean_ms, stats.std_ms, stats.p50_ms, stats.noisy) == (10.0, 0.0, 10.0, False)
    assert stats.throughput_per_s == pytest.approx(800.0)
    noisy = summarize([1.0, 10.0, 1.0, 10.0], first_ms=1.0, warmup_runs=0, batch=1)
    assert noisy.noisy and noisy.std_ms == pytest.approx(np.std([1, 10, 1, 10], ddof=1))


def test_measure_respects_counts():
    calls = []
    stats = measure(lambda: calls.append(1), batch=1, warmup_runs=4, warmup_s=0.0, min_runs=7, min_s=0.0)
    assert stats.n == 7 and stats.warmup_runs == 4 and len(calls) == 1 + 4 + 7


def test_pareto_front():
    points = [(10, 0.90), (5, 0.85), (20, 0.91), (6, 0.80), (12, 0.89)]
    assert pareto_front(points) == [1, 0, 2]


@pytest.fixture(scope="module")
def bench_workdir(tmp_path_factory, tiny_student_dir, tiny_tokenizer_dir, export_data_dir):
    from conftest import train_tiny_classifier
    from edgedistill.core.config import DataConfig
    from edgedistill.data.task_data import load_task_data
    from edgedistill.export.stage import export_target
    from edgedistill.core.targets import load_target

    work = tmp_path_factory.mktemp("work")
    shutil.copytree(tiny_student_dir, work / "student")
    (work / "student" / "metrics.json").write_text(json.dumps({"role": "student"}))
    train_tiny_classifier(work / "teacher", tiny_tokenizer_dir, export_data_dir, steps=60, seed=1)
    (work / "teacher" / "metrics.json").write_text(json.dumps({"role": "teacher"}))
    data = load_task_data(DataConfig(dataset=str(export_data_dir), label_names=["negative", "positive"]))
    for name in ("onnx-fp32", "onnx-int8-dynamic"):
        export_target(work / "student", load_target(name), data, work / "artifacts" / f"student-{name}", SETTINGS)
    broken = work / "artifacts" / "student-broken"
    shutil.copytree(work / "artifacts" / "student-onnx-fp32", broken)
    (broken / "model.onnx").write_bytes(b"not an onnx file")
    info = json.loads((broken / "artifact.json").read_text())
    info["target"]["name"] = "onnx-broken"
    (broken / "artifact.json").write_text(json.dumps(info))
    return work, data


def test_tiny_bench_writes_every_output_and_survives_a_crash(tmp_path, bench_workdir):
    from edgedistill.bench.harness import BenchSettings, discover, run_bench
    from edgedistill.bench.report import compare_reports, write_report

    work, data = bench_workdir
    items = discover([work])
    assert [i.name for i in items] == ["teacher-pytorch-fp32", "student-pytorch-fp32", "student-onnx-broken",
                                       "student-onnx-fp32", "student-onnx-int8-dynamic"]
    from edgedistill.bench.peers import peer_item

    peer = tmp_path / "peer"  # a peer's folder as optimum-cli leaves it: model_quantized.onnx and the tokenizer
    shutil.copytree(work / "artifacts" / "student-onnx-fp32", peer, ignore=shutil.ignore_patterns("model.onnx"))
    shutil.copy(work / "artifacts" / "student-onnx-fp32" / "model.onnx", peer / "model_quantized.onnx")
    items.append(peer_item("student-peer-optimum", "onnx", peer, (work / "student").resolve()))
    settings = BenchSettings(threads=1, batch_sizes=(1, 2), seq_lengths=(8, 16), reference=(1, 16),
                             max_length=32, real_samples=10,
                             timing={"warmup_runs": 1, "warmup_s": 0.0, "min_runs": 3, "min_s": 0.0})
    report = run_bench(items, data.eval.texts, data.eval.labels, settings, tmp_path, progress=False)
    written = write_report(report, tmp_path)
    from edgedistill.export.model_card import update_cards

    update_cards(report)  # each artifact's card gets its latency on this host; the record stays intact
    card = (work / "artifacts" / "student-onnx-fp32" / "README.md").read_text(encoding="utf-8")
    assert "## Last benchmark on this host" in card and "p50" in card and "batch 1 × 16 tokens" in card
    names = {p.name for p in written}
    assert names == {"report.json", "report.md", "report.csv", "accuracy_vs_latency.png", "size.png",
                     "latency_vs_length.png"}
    rows = {r["name"]: r for r in json.loads((tmp_path / "report.json").read_text())["rows"]}
    broken = rows["student-onnx-broken"]
    assert broken["status"] == "error" and "ONNX Runtime cannot load" in broken["error"]
    for name, row in rows.items():
        if name == "student-onnx-broken":
            continue
        assert row["status"] == "ok"
        assert len(row["latency"]) == 4 and row["reference_latency"]["seq"] == 16
        for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "first_ms", "n", "throughput_per_s"):
            assert row["reference_latency"][key] is not None
        for key in ("accuracy", "f1_macro", "agreement_with_teacher", "agreement_with_fp32_student",
                    "max_logit_diff", "mean_logit_diff", "size_bytes", "parameters", "peak_rss_mb",
                    "peak_rss_after_load_mb", "load_s", "speedup_vs_teacher", "speedup_vs_fp32_student"):
            assert row.get(key) is not None, (name, key)
        assert row["real_lengths"]["sentences"] == 10
    assert rows["student-pytorch-fp32"]["agreement_with_fp32_student"] == 1.0
    assert rows["student-onnx-fp32"]["max_logit_diff"] < 1e-4
    # A peer runs through the loader its maker named (edgedistill/bench/peers.py), with no branch in the harness.
    assert rows["student-peer-optimum"]["runtime"] == "onnxruntime (defaults)"
    assert rows["student-peer-optimum"]["max_logit_diff"] < 1e-4
    assert rows["student-peer-optimum"]["size_bytes"] == (peer / "model_quantized.onnx").stat().st_size
    # (On a 32-wide model the int8 file is not smaller: scales and extra nodes outweigh the weights.)
    int8, fp32 = rows["student-onnx-int8-dynamic"], rows["student-pytorch-fp32"]
    assert int8["size_ratio_vs_fp32_student"] == round(int8["size_bytes"] / fp32["size_bytes"], 4)
    assert int8["size_bytes"] == (Path(int8["path"]) / "model.onnx").stat().st_size
    assert rows["teacher-pytorch-fp32"]["speedup_vs_teacher"] == 1.0
    md = (tmp_path / "report.md").read_text()
    assert md.index("teacher-pytorch-fp32") < md.index("student-pytorch-fp32")
    assert "**error**" in md and "## Host" in md
    assert rows["student-onnx-fp32"]["cls_only_last_layer"] is True and "cls_only_last_layer" not in rows[
        "student-pytorch-fp32"]
    assert re.search(r"\| student-onnx-fp32‡§? \|", md) and "| student-pytorch-fp32 |" in md and "‡ Exported with the last" in md
    csv_lines = (tmp_path / "report.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 4 * 5 + 1  # header, 4 shapes x 5 good rows (the peer among them), 1 error row
    assert "| student-onnx-fp32 |" in compare_reports(tmp_path / "report.json", tmp_path / "report.json")


def test_a_worker_peak_rss_is_its_own_not_its_parents():
    import subprocess
    import sys

    ballast = bytearray(800 * 1024 * 1024)  # the parent's high-water mark goes past 800 MB
    ballast[::4096] = b"x" * len(ballast[::4096])
    out = subprocess.run([sys.executable, "-c", "from edgedistill.bench.memory import peak_rss_mb; "
                          "print(peak_rss_mb())"], capture_output=True, text=True, check=True)
    del ballast
    assert float(out.stdout) < 300
