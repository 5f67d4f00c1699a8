"""Which ONNX Runtime session settings pay off for an int8 student on this CPU: measured, then kept or not.

    .venv/bin/python benchmarks/onnx_session_options.py      # after benchmarks/bert_base.py; ~3 min

For the DistilBERT-geometry student's ONNX int8 artifacts (runs/bert-base), each variant in a fresh
process at batch 1 x sequence 128, 2 threads unless the variant says otherwise: the session edgedistill
uses, thread spinning off, I/O binding with a preallocated output, basic vs full graph optimization, and
one thread. Writes benchmarks/results/bert-base/onnx-session-options.{json,md}; the README says which
settings the ONNX runner keeps and why.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "edgedistill runner (ENABLE_ALL, inter-op 1)": {},
    "spinning off": {"spin": False},
    "I/O binding": {"io_binding": True},
    "basic graph optimization only": {"level": "ORT_ENABLE_BASIC"},
    "1 thread": {"threads": 1},
}
CHILD = r"""
import json, sys, numpy as np, onnxruntime as ort
from edgedistill.bench.timing import measure
path, knobs = sys.argv[1], json.loads(sys.argv[2])
options = ort.SessionOptions()
options.intra_op_num_threads = knobs.get("threads", 2)
options.inter_op_num_threads = 1
options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, knobs.get("level", "ORT_ENABLE_ALL"))
if not knobs.get("spin", True):
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(0)
ids = rng.integers(1000, 30000, size=(1, 128), dtype=np.int64)
feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
feed = {k: v for k, v in feed.items() if k in {i.name for i in session.get_inputs()}}
if knobs.get("io_binding"):
    binding = session.io_binding()
    for name, value in feed.items():
        binding.bind_cpu_input(name, value)
    binding.bind_output(session.get_outputs()[0].name, "cpu")
    run = lambda: session.run_with_iobinding(binding)
else:
    run = lambda: session.run(None, feed)
stats = measure(run, batch=1, warmup_runs=10, warmup_s=1.0, min_runs=100, min_s=4.0)
print(json.dumps(stats.as_dict()))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "bert-base"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bert-base"))
    args = parser.parse_args()
    workdir = Path(args.workdir)
    models = {"onnx-int8-dynamic": workdir / "artifacts" / "distilbert-onnx-int8-dynamic" / "model.onnx",
              "onnx-fused-int8-dynamic": workdir / "artifacts" / "distilbert-onnx-fused-int8-dynamic" / "model.onnx",
              "optimum default (peer)": workdir / "peers" / "distilbert-optimum-int8" / "model_quantized.onnx"}
    rows = []
    for model, path in models.items():
        for variant, knobs in VARIANTS.items():
            done = subprocess.run([sys.executable, "-c", CHILD, str(path), json.dumps(knobs)], capture_output=True,
                                  text=True, check=True)
            stats = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append({"model": model, "variant": variant, **stats})
            print(f"{model:28s} {variant:45s} p50 {stats['p50_ms']:.2f} ms  std {stats['std_ms']:.2f}", flush=True)
    from edgedistill.core.host import host_info

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": "benchmarks/onnx_session_options.py", "shape": [1, 128], "rows": rows,
              "host": host_info(2)}
    (out / "onnx-session-options.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# ONNX Runtime session settings, DistilBERT-geometry int8 student, batch 1 x 128", "",
             "Each line its own process, >= 100 runs after warm-up. Ratios are against the first line of the "
             "same model.", "", "| model | variant | p50 ms | p90 ms | std ms | vs first line |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        base = next(r for r in rows if r["model"] == row["model"])
        lines.append(f"| {row['model']} | {row['variant']} | {row['p50_ms']:.2f} | {row['p90_ms']:.2f} "
                     f"| {row['std_ms']:.2f} | {row['p50_ms'] / base['p50_ms']:.3f} |")
    lines += ["", f"Host: {result['host']['cpu']}; onnxruntime {result['host']['libraries'].get('onnxruntime')}", ""]
    (out / "onnx-session-options.md").write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
