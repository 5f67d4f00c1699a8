"""Full-integer int8 on SST-2: post-training and quantization-aware, ONNX, TFLite and Core ML, in one run.

    .venv/bin/python benchmarks/full_int8.py       # after `edgedistill distill` (student and qat), ~25 min

Exports the distilled student (runs/default/student) and its quantization-aware twin (runs/default/qat) to
every full-integer profile, each verified against its own PyTorch checkpoint on all SST-2 dev sentences
(a failed gate is kept with its numbers), then benchmarks them with the harness (`edgedistill bench`:
one fresh process per model, 2 threads, batch 1 x 128 tokens) beside the fp32 student, TFLite fp32 and
TFLite dynamic int8. A recipe that fails its gate is timed from the same target exported with the gate
opened (`<target>-ungated`, labelled). Writes benchmarks/results/full-int8/: summary.json (one entry per
artifact: gate, agreement, accuracy and its drop, int8 MAC share, op types left in float, XNNPACK
delegation, p50), summary.md, and the harness's report.json / report.md / report.csv and plots.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgedistill.bench.harness import BenchSettings, discover, run_bench
from edgedistill.bench.report import write_report
from edgedistill.core.config import Tolerance, load_config
from edgedistill.data.task_data import load_task_data
from edgedistill.core.logs import configure_console
from edgedistill.pipeline import run_exports
from edgedistill.core.targets import load_target

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst2"
FULL_INTEGER = ["onnx-int8-static", "onnx-int8-static-percentile", "onnx-int8-static-entropy",
                "tflite-int8-static", "tflite-int8-static-fc-bmm", "coreml-int8-static"]
REFERENCES = ["tflite-fp32", "tflite-int8-dynamic", "onnx-int8-dynamic"]  # latency and accuracy yardsticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "default"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "full-int8"))
    parser.add_argument("--targets", default=",".join(FULL_INTEGER + REFERENCES))
    args = parser.parse_args()
    configure_console()
    workdir, out = Path(args.workdir), Path(args.out)
    config = load_config(overrides={"data.dataset": str(DATA), "workdir": str(workdir),
                                    "export_models": ["student", "qat"]})
    data = load_task_data(config.data, seed=config.seed)
    targets = [load_target(name) for name in args.targets.split(",")]
    exports = run_exports(config, targets)
    # A recipe that fails its gate is still timed: the same target with its gate opened (named
    # "<target>-ungated", recorded as such), so the speed question has an answer either way.
    failed = {e.split("-", 1)[1] for e, entry in exports.items() if entry["status"] != "verified"}
    ungated = [t.model_copy(update={"name": f"{t.name}-ungated", "tolerance": Tolerance(min_agreement=0.0,
                                                                                      max_accuracy_drop=100.0)})
               for t in targets if t.name in failed and t.backend != "coreml"]
    timing_only = run_exports(config, ungated) if ungated else {}
    wanted = {name for name, entry in {**exports, **timing_only}.items() if entry["status"] == "verified"}
    items = [i for i in discover([workdir]) if (i.kind == "checkpoint" and i.role in ("student", "qat"))
             or i.path.name in wanted]
    settings = BenchSettings(threads=config.threads, batch_sizes=(1,), seq_lengths=(128,), max_length=128,
                             real_samples=100)
    report = run_bench(items, data.eval.inputs, data.eval.labels, settings, out)
    report["exports"] = {name: {k: v for k, v in e.items() if k != "files"} for name, e in exports.items()}
    write_report(report, out)
    rows = {r["name"]: r for r in report["rows"]}
    fp32_accuracy = {role: rows.get(f"{role}-pytorch-fp32", {}).get("accuracy") for role in ("student", "qat")}
    summary = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "eval_sentences": len(data.eval),
               "fp32_student_accuracy": fp32_accuracy["student"], "qat_student_accuracy": fp32_accuracy["qat"],
               "host": report["host"], "artifacts": {}}
    for name, entry in sorted(exports.items()):
        parity, structure = entry.get("parity") or {}, entry.get("structure") or {}
        row = rows.get(name) or rows.get(f"{name}-ungated") or {}
        integer = structure.get("integer") or {}
        summary["artifacts"][name] = {
            "target": name.split("-", 1)[1], "model": name.split("-", 1)[0],
            "gate_passed": entry["status"] == "verified", "gate": parity.get("gate"),
            "agreement": parity.get("agreement"), "accuracy": parity.get("artifact_accuracy"),
            "source_accuracy": parity.get("source_accuracy"),
            "accuracy_drop_points": parity.get("accuracy_drop_points"),
            "accuracy_drop_vs_fp32_student_points": None if parity.get("artifact_accuracy") is None else round(
                100 * (fp32_accuracy["student"] - parity["artifact_accuracy"]), 2),
            "int8_mac_fraction": integer.get("int8_mac_fraction"),
            "mac_fraction_by_arithmetic": integer.get("mac_fraction_by_arithmetic"),
            "float_op_types": integer.get("float_op_types"),
            "xnnpack": structure.get("xnnpack"),
            "p50_ms_b1_s128": (row.get("reference_latency") or {}).get("p50_ms"),
            "latency_from": row.get("name") if row and row.get("name") != name else None,
            "latency_note": row.get("latency_note"),
            "error": None if entry["status"] == "verified" else entry.get("error"),
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(render(summary))
    print(render(summary))


def render(summary: dict) -> str:
    lines = ["# Full-integer int8 on SST-2 dev", "",
             f"`{summary['command']}`; {summary['eval_sentences']} sentences; PyTorch fp32 student "
             f"{summary['fp32_student_accuracy']:.4f}, QAT student {summary['qat_student_accuracy']:.4f}; "
             f"{summary['host']['cpu']}, ISA {', '.join(summary['host']['isa'])}, {summary['host']['threads']} threads.",
             "", "Gate: agreement with the artifact's own PyTorch checkpoint and accuracy drop against it; the drop "
             "against the fp32 student is shown beside it. `int8 MACs`: matrix-multiply work at batch 1 x 128 "
             "with int8 weights and int8 activations (scales fixed in the file).", "",
             "| artifact | gate | agreement | accuracy | drop (pts) | drop vs fp32 student | int8 MACs | XNNPACK | "
             "p50 ms b1 s128 | float op types |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, a in summary["artifacts"].items():
        xnn = a["xnnpack"] or {}
        delegated = f"{xnn['delegated_ops']}/{xnn['ops']}" if xnn else "–"
        fmt = lambda v, spec: "–" if v is None else format(v, spec)  # noqa: E731
        lines.append(
            f"| {name} | {'passed' if a['gate_passed'] else '**failed**'} | {fmt(a['agreement'], '.2%')} "
            f"| {fmt(a['accuracy'], '.4f')} | {fmt(a['accuracy_drop_points'], '.2f')} "
            f"| {fmt(a['accuracy_drop_vs_fp32_student_points'], '.2f')} | {fmt(a['int8_mac_fraction'], '.1%')} "
            f"| {delegated} "
            f"| {fmt(a['p50_ms_b1_s128'], '.2f') + ('¹' if a['latency_from'] else '') if not a['latency_note'] else 'n/a (emulated)'} "
            f"| {', '.join(a['float_op_types'] or []) or '–'} |")
    lines += ["", "¹ The recipe failed its gate, so no artifact was published; its latency is that of the same target "
              "exported with the gate opened (`<target>-ungated`), to answer the speed question all the same. "
              "Core ML latency needs macOS: Core ML rows are gated on the numpy emulation and carry no latency."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
