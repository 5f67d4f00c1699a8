"""Ours against the peers, in interleaved rounds: a ratio near 1.0 needs more than one sample per side.

    .venv/bin/python benchmarks/peer_rounds.py --rounds 5      # after benchmarks/bert_base.py; ~8 min

On this shared 2-core machine one p50 moves by ±5% between processes (benchmarks/results/bert-base/
onnx-session-options.md), as much as the differences being judged. So each round runs every model once,
in a fresh process, in a shuffled order, at batch 1 x sequence 128 with 2 threads; the verdict is the
median over rounds of the per-round ratio ours / peer, with its range. Writes
benchmarks/results/bert-base/peer-rounds.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = {  # ours -> the peer it is judged against
    "onnx-int8-dynamic": "peer-optimum-int8-dynamic",
    "onnx-fused-int8-dynamic": "peer-optimum-int8-dynamic",
    "onnx-int8-dynamic-per-tensor": "peer-optimum-int8-dynamic",
    "tflite-int8-dynamic": "peer-litert-int8-dynamic",
}
PEER_DIRS = {"peer-optimum-int8-dynamic": ("onnx", "optimum-int8"), "peer-litert-int8-dynamic": ("tflite", "litert-int8")}
CHILD = r"""
import json, sys
from pathlib import Path
import numpy as np
from edgedistill.bench.timing import measure
kind, path, threads = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
if kind == "artifact":
    from edgedistill.backends.base import Artifact, get_backend
    artifact = Artifact.open(path)
    runner = get_backend(artifact.target.backend).load(artifact, threads)
else:
    from edgedistill.bench.peers import load_peer
    runner = load_peer(kind, path, threads)
rng = np.random.default_rng(0)
ids = rng.integers(1000, 30000, size=(1, 128), dtype=np.int64)
mask = np.ones_like(ids)
stats = measure(lambda: runner.predict(ids, mask), batch=1, warmup_runs=10, warmup_s=1.0, min_runs=60, min_s=3.0)
print(json.dumps(stats.as_dict()))
"""


def _p50(kind: str, path: Path, threads: int) -> float:
    done = subprocess.run([sys.executable, "-c", CHILD, kind, str(path), str(threads)], capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["p50_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "bert-base"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bert-base"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--students", default="distilbert,minilm")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    models: dict[str, tuple[str, Path]] = {}
    for student in args.students.split(","):
        for ours in PAIRS:
            models[f"{student}-{ours}"] = ("artifact", workdir / "artifacts" / f"{student}-{ours}")
        for peer, (kind, folder) in PEER_DIRS.items():
            models[f"{student}-{peer}"] = (kind, workdir / "peers" / f"{student}-{folder}")
    samples: dict[str, list[float]] = {name: [] for name in models}
    rng = random.Random(0)
    for round_no in range(args.rounds):
        order = list(models)
        rng.shuffle(order)
        for name in order:
            samples[name].append(_p50(*models[name], args.threads))
        print(f"round {round_no + 1}: " + ", ".join(f"{n} {samples[n][-1]:.2f}" for n in sorted(models)), flush=True)
    verdicts = []
    for student in args.students.split(","):
        for ours, peer in PAIRS.items():
            a, b = samples[f"{student}-{ours}"], samples[f"{student}-{peer}"]
            ratios = [x / y for x, y in zip(a, b, strict=True)]
            verdicts.append({"student": student, "ours": ours, "peer": peer,
                             "ours_p50_ms": a, "peer_p50_ms": b,
                             "median_ratio": round(statistics.median(ratios), 3),
                             "ratio_range": [round(min(ratios), 3), round(max(ratios), 3)],
                             "ratio_of_medians": round(statistics.median(a) / statistics.median(b), 3)})
    from edgedistill.host import host_info

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": f"benchmarks/peer_rounds.py --rounds {args.rounds}", "threads": args.threads,
              "shape": [1, 128], "verdicts": verdicts, "host": host_info(args.threads)}
    (out / "peer-rounds.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Ours / peer, {args.rounds} interleaved rounds, batch 1 x 128, {args.threads} threads", "",
             "Each round: every model once, its own process, shuffled order. Ratio < 1.0: ours is faster.", "",
             "| student | ours | peer | median ratio | range | ours median p50 ms | peer median p50 ms |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for v in verdicts:
        lines.append(f"| {v['student']} | {v['ours']} | {v['peer']} | **{v['median_ratio']}** "
                     f"| {v['ratio_range'][0]}–{v['ratio_range'][1]} | {statistics.median(v['ours_p50_ms']):.2f} "
                     f"| {statistics.median(v['peer_p50_ms']):.2f} |")
    lines += ["", f"Host: {result['host']['cpu']}", ""]
    (out / "peer-rounds.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
