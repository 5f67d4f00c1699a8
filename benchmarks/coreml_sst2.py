"""Core ML on the SST-2 student: every precision, its size and its agreement with PyTorch (emulated on Linux).

    .venv/bin/python benchmarks/coreml_sst2.py      # after benchmarks/distill.py main; ~5 min on 2 cores

Exports the distilled student (runs/default/student) to every Core ML target profile through the
pipeline's export stage (so `edgedistill run` on runs/default reuses them), each gated against the
PyTorch student on all of SST-2 dev. Where Core ML cannot run (Linux), the gate runs on the numpy
emulation of the saved ML Program, and the results say so. Writes benchmarks/results/coreml-sst2.json
and .md, failed gates included with their numbers.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edgedistill.core.config import load_config
from edgedistill.core.logs import configure_console
from edgedistill.pipeline import run_exports
from edgedistill.core.targets import list_targets

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst2"
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "default"))
    args = parser.parse_args()
    configure_console()
    workdir = Path(args.workdir)
    config = load_config(overrides={"data.dataset": str(DATA), "workdir": str(workdir)})
    targets = [t for t in list_targets() if t.backend == "coreml"]
    exports = run_exports(config, targets)
    rows = []
    for target in targets:
        name = f"student-{target.name}"
        entry = exports[name]
        row = {"target": target.name, "precision": target.precision, "status": entry["status"]}
        if entry["status"] == "verified":
            info = json.loads((workdir / "artifacts" / name / "artifact.json").read_text())
            parity, structure = info["parity"], info["structure"]
            row.update(samples=parity["samples"], agreement=parity["agreement"], max_abs=parity["max_abs"],
                       accuracy=parity["artifact_accuracy"], source_accuracy=parity["source_accuracy"],
                       runtime=parity["runtime"], package_mb=round(sum(
                           f["bytes"] for p, f in info["files"].items() if p.startswith("model.mlpackage/")) / 1e6, 2),
                       weight_tensors=structure["weight_tensors"], compressed=structure["compressed_weights"],
                       export_seconds=info["export_seconds"])
        else:
            row["error"] = entry["error"]
        rows.append(row)
    result = {"command": "benchmarks/coreml_sst2.py", "student": str(workdir / "student"), "rows": rows,
              "note": "Core ML cannot run on Linux: agreement and accuracy come from the numpy emulation of "
                      "each saved ML Program (edgedistill/backends/mil_emulator.py), not from Core ML; no latency."}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "coreml-sst2.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Core ML on the SST-2 student (gated on the numpy ML Program emulator, not Core ML)", "",
             result["note"], "",
             "| target | gate | agreement with PyTorch | accuracy (PyTorch) | max logit diff | package MB | weights |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        if row["status"] != "verified":
            lines.append(f"| {row['target']} | **failed** | {row['error'][-260:]} | | | | |")
            continue
        weights = ", ".join(f"{k}: {v['elements'] / 1e6:.1f}M" for k, v in row["weight_tensors"].items())
        lines.append(f"| {row['target']} | passed ({row['samples']} sentences) | {row['agreement']:.2%} "
                     f"| {row['accuracy']:.4f} ({row['source_accuracy']:.4f}) | {row['max_abs']:.3g} "
                     f"| {row['package_mb']:.1f} | {weights} |")
    (RESULTS / "coreml-sst2.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
