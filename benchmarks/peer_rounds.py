"""Ours against the peers, paired: a ratio near 1.0 needs a measurement that noise cannot fake.

    .venv/bin/python benchmarks/peer_rounds.py --rounds 3      # after benchmarks/bert_base.py; ~5 min

On this shared 2-core VM one p50 moves by ±5% between processes and, when the host is busy, ONNX Runtime
jumps between ~21 and ~30 ms for the same model (benchmarks/results/bert-base/onnx-session-options.md):
as much as the differences being judged. So each pair (ours, peer) is loaded into one process and timed
**alternately**, call by call (A B B A ...), at batch 1 x sequence 128 with 2 threads; both sides see the
same machine state, and the verdict is the median of the per-call ratios ours / peer, pooled over
``--rounds`` fresh processes (shuffled pair order), with the per-round medians as its spread. Two ONNX
Runtime sessions in one process slow each other (both ~42 ms instead of ~21): their ratio is taken under
the same interference, their absolute times are not the solo latency (see report.md for those). Writes
benchmarks/results/bert-base/peer-rounds.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAIRS = {  # ours -> the peer it is judged against
    "onnx-int8-dynamic": "peer-optimum-int8-dynamic",
    "onnx-fused-int8-dynamic": "peer-optimum-int8-dynamic",
    "onnx-int8-dynamic-per-tensor": "peer-optimum-int8-dynamic",
    "tflite-int8-dynamic": "peer-litert-int8-dynamic",
}
PEER_DIRS = {"peer-optimum-int8-dynamic": ("onnx", "optimum-int8"),
             "peer-litert-int8-dynamic": ("tflite", "litert-int8")}
LOADERS = {"artifact": "edgedistill.bench.worker:load_artifact", "onnx": "edgedistill.bench.peers:load_onnx_peer",
           "tflite": "edgedistill.bench.peers:load_tflite_peer"}


def _paired(ours: tuple[str, Path], peer: tuple[str, Path], threads: int, pairs: int
            ) -> tuple[list[float], list[float]]:
    from edgedistill.bench.paired import paired_calls

    return paired_calls((LOADERS[ours[0]], ours[1]), (LOADERS[peer[0]], peer[1]), threads, pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "bert-base"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "bert-base"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=200, help="alternating calls per side and round")
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
    pairs = [(student, ours, peer) for student in args.students.split(",") for ours, peer in PAIRS.items()]
    calls: dict[tuple[str, str], tuple[list[float], list[float]]] = {(s, o): ([], []) for s, o, _ in pairs}
    round_medians: dict[tuple[str, str], list[float]] = {(s, o): [] for s, o, _ in pairs}
    rng = random.Random(0)
    for round_no in range(args.rounds):
        order = list(pairs)
        rng.shuffle(order)
        for student, ours, peer in order:
            a, b = _paired(models[f"{student}-{ours}"], models[f"{student}-{peer}"], args.threads, args.pairs)
            calls[(student, ours)][0].extend(a)
            calls[(student, ours)][1].extend(b)
            round_medians[(student, ours)].append(statistics.median(x / y for x, y in zip(a, b, strict=True)))
        print(f"round {round_no + 1}: " + ", ".join(f"{s}-{o} {round_medians[(s, o)][-1]:.3f}"
                                                   for s, o, _ in pairs), flush=True)
    verdicts = []
    for student, ours, peer in pairs:
        a, b = calls[(student, ours)]
        verdicts.append({"student": student, "ours": ours, "peer": peer,
                         "median_ratio": round(statistics.median(x / y for x, y in zip(a, b, strict=True)), 3),
                         "round_medians": [round(r, 3) for r in round_medians[(student, ours)]],
                         "ours_p50_ms": round(statistics.median(a), 2), "peer_p50_ms": round(statistics.median(b), 2),
                         "calls_per_side": len(a)})
    from edgedistill.core.host import host_info

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {"command": f"benchmarks/peer_rounds.py --rounds {args.rounds} --pairs {args.pairs}",
              "threads": args.threads, "method": "paired: ours and peer in one process, calls alternated",
              "shape": [1, 128], "verdicts": verdicts, "host": host_info(args.threads)}
    (out / "peer-rounds.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Ours / peer, paired calls, batch 1 x 128, {args.threads} threads", "",
             f"Each round: one process per pair, {args.pairs} calls per side alternated A B B A; {args.rounds} "
             "rounds. Ratio < 1.0: ours is faster. Verdict: median of all per-call ratios.", "",
             "| student | ours | peer | median ratio | per-round medians | ours p50 ms | peer p50 ms |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for v in verdicts:
        lines.append(f"| {v['student']} | {v['ours']} | {v['peer']} | **{v['median_ratio']}** "
                     f"| {', '.join(str(r) for r in v['round_medians'])} | {v['ours_p50_ms']:.2f} "
                     f"| {v['peer_p50_ms']:.2f} |")
    lines += ["", f"Host: {result['host']['cpu']}", ""]
    (out / "peer-rounds.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
