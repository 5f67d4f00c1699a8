"""The SST-2 report: teacher, student, baseline and every ONNX, TFLite and Core ML artifact of the student.

    .venv/bin/python benchmarks/sst2_report.py        # after benchmarks/distill.py main (~10 min)

Exports the distilled student (runs/default/student) to every ONNX, TFLite and Core ML target profile, each
verified against the student on SST-2 dev before it is written (a failed gate is recorded with its
numbers), then benchmarks everything with the harness (`edgedistill bench`: one fresh process per
model, 2 threads) into benchmarks/results/sst2/. Prints the ratios the acceptance criteria ask for,
all taken from that one run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgedistill.bench.harness import BenchSettings, discover, run_bench
from edgedistill.bench.report import write_report
from edgedistill.core.config import load_config
from edgedistill.data.task_data import load_task_data
from edgedistill.core.logs import configure_console
from edgedistill.pipeline import run_exports
from edgedistill.core.targets import list_targets

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "default"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sst2"))
    parser.add_argument("--backends", default="onnx,tflite,coreml")
    args = parser.parse_args()
    configure_console()
    workdir = Path(args.workdir)
    config = load_config(overrides={"data.dataset": str(DATA), "workdir": str(workdir)})
    data = load_task_data(config.data, seed=config.seed)
    targets = [t for t in list_targets() if t.backend in args.backends.split(",")]
    # The pipeline's export stage: each artifact verified before it is written, cached by content hash
    # (so a later `edgedistill run` on this workdir reuses them), a failed gate recorded with its numbers.
    exports = run_exports(config, targets)
    settings = BenchSettings(threads=config.threads, max_length=128)
    wanted = {f"student-{t.name}" for t in targets}
    items = [i for i in discover([workdir]) if i.kind == "checkpoint" or i.path.name in wanted]
    report = run_bench(items, data.eval.inputs, data.eval.labels, settings, Path(args.out))
    report["exports"] = {name: {k: v for k, v in e.items() if k != "files"} for name, e in exports.items()}
    write_report(report, Path(args.out))
    rows = {r["name"]: r for r in report["rows"]}

    def p50(name: str) -> float | None:
        row = rows.get(name)
        return (row.get("reference_latency") or {}).get("p50_ms") if row and row["status"] == "ok" else None

    student, int8 = p50("student-pytorch-fp32"), p50("student-onnx-int8-dynamic")
    def grid_p50(name: str, batch: int, seq: int) -> float | None:
        row = rows.get(name) or {}
        return next((p["p50_ms"] for p in row.get("latency", []) if p["batch"] == batch and p["seq"] == seq), None)

    t32, t128 = grid_p50("student-tflite-fp32", 1, 32), grid_p50("student-tflite-fp32", 1, 128)
    summary = {
        "int8_dynamic_speedup_vs_pytorch_fp32_student": round(student / int8, 2) if student and int8 else None,
        "tflite_fp32_bucket32_speedup_vs_bucket128": round(t128 / t32, 2) if t32 and t128 else None,
        "int8_dynamic_accuracy": rows.get("student-onnx-int8-dynamic", {}).get("accuracy"),
        "fp32_student_accuracy": rows.get("student-pytorch-fp32", {}).get("accuracy"),
        "exports": {k: v["status"] for k, v in exports.items()},
        "failed_exports": {k: v["error"] for k, v in exports.items() if v["status"] != "verified"},
    }
    (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
