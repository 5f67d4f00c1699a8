"""The embedding task's acceptance numbers in one file: benchmarks/results/embeddings/summary.{json,md}.

    .venv/bin/edgedistill run --task embedding --data ../shared/data/stsb          # seed 42: the full pipeline
    .venv/bin/python benchmarks/embeddings.py --workdir runs/embedding --seeds 43 44 --data ../shared/data/stsb

Reads the run (teacher, student and baseline metrics; every artifact's gate record; the bench report's p50 at
batch 1 x 128), trains the student again with each extra ``--seeds`` value in its own workdir (only the distill
stage: the teacher is used as it is, the baseline is untrained and the same for every seed), builds the
sentence-transformers peers from the seed-42 student (its ONNX backend, fp32, and
``export_dynamic_quantized_onnx_model``, dynamic int8), and times our best artifact against each peer paired:
both in one process, calls alternated A B B A at batch 1 x 128 (as benchmarks/peer_rounds.py does), the ratio
the median of the per-call ratios over ``--rounds`` fresh processes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
def _metrics(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))


def _extra_seed(seed: int, data: str, workdir: Path) -> dict[str, Any]:
    """The student trained again with ``seed`` (distill stage only, its own workdir); its metrics."""
    out = workdir.with_name(f"{workdir.name}-seed{seed}")
    command = [str(Path(sys.executable).with_name("edgedistill")), "run", "--task", "embedding", "--data", data,
               "--workdir", str(out), "--seed", str(seed), "--only", "distill", "--set", "distill.baseline=false"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    print(f"seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    return _metrics(out / "student")


def _paired(ours: Path, peer: Path, threads: int, pairs: int) -> tuple[list[float], list[float]]:
    from edgedistill.bench.paired import ARTIFACT, paired_calls

    return paired_calls((ARTIFACT, ours), ("edgedistill.bench.peers:load_st_onnx_peer", peer), threads, pairs)


def _artifacts(workdir: Path, report: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    rows = {row["name"]: row for row in report["rows"]}
    out = {}
    for name, entry in sorted((manifest["stages"].get("export") or {}).items()):
        folder = workdir / "artifacts" / name
        if entry["status"] != "verified":
            out[name] = {"gate_passed": False, "reason": entry.get("error", "")[:600]}
            continue
        info = json.loads((folder / "artifact.json").read_text(encoding="utf-8"))
        parity, row = info["parity"], rows.get(name, {})
        integer = (info.get("structure") or {}).get("integer") or {}
        out[name] = {"gate_passed": parity["passed"], "cosine_mean": parity.get("cosine_mean"),
                     "cosine_min": parity.get("cosine_min"), "top10_overlap": parity.get("top10_overlap"),
                     "stsb_dev_spearman": parity.get("artifact_spearman"),
                     "spearman_drop_points": parity.get("spearman_drop_points"), "max_abs": parity["max_abs"],
                     "int8_mac_fraction": integer.get("int8_mac_fraction"),
                     "p50_ms_b1_s128": (row.get("reference_latency") or {}).get("p50_ms"),
                     "size_mb": round(row["size_bytes"] / 1e6, 2) if row.get("size_bytes") else None,
                     "device": (info.get("device") or {}).get("target")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "embedding"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "stsb"))
    parser.add_argument("--seeds", type=int, nargs="*", default=[43, 44], help="extra student seeds (42 is the run's)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=150, help="alternating calls per side and round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--isa", default="avx512_vnni", help="export_dynamic_quantized_onnx_model's config")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "embeddings"))
    parser.add_argument("--timing-manifest", default=None,
                        help="the manifest.json of the run from an empty workdir, when the workdir's last run was "
                             "a partial re-run (its pipeline times are what the summary reports)")
    parser.add_argument("--note", default="", help="a sentence for the summary (what differs from the command)")
    args = parser.parse_args()
    from edgedistill.bench.peers import build_sentence_transformers_peers
    from edgedistill.core.host import host_info, library_versions

    workdir = Path(args.workdir)
    manifest = json.loads((workdir / "manifest.json").read_text(encoding="utf-8"))
    report = json.loads((workdir / "report" / "report.json").read_text(encoding="utf-8"))
    teacher, student, baseline = (_metrics(workdir / role) for role in ("teacher", "student", "baseline"))
    seeds = {manifest["seed"]: student} | {seed: _extra_seed(seed, args.data, workdir) for seed in args.seeds}
    artifacts = _artifacts(workdir, report, manifest)
    timed = {name: a for name, a in artifacts.items() if a["gate_passed"] and a.get("p50_ms_b1_s128")
             and not name.split("-", 1)[1].startswith("coreml")}
    best = min(timed, key=lambda name: timed[name]["p50_ms_b1_s128"])
    peers = build_sentence_transformers_peers(workdir / "student", workdir / "peers" / "st-student", args.isa)
    paired = {}
    for peer, path in peers.items():
        calls: tuple[list[float], list[float]] = ([], [])
        medians = []
        for _ in range(args.rounds):
            a, b = _paired(workdir / "artifacts" / best, path, args.threads, args.pairs)
            calls[0].extend(a)
            calls[1].extend(b)
            medians.append(statistics.median(x / y for x, y in zip(a, b, strict=True)))
        paired[peer] = {"ours": best, "median_ratio": round(statistics.median(
            x / y for x, y in zip(*calls, strict=True)), 3), "round_medians": [round(m, 3) for m in medians],
            "ours_p50_ms": round(statistics.median(calls[0]), 2), "peer_p50_ms": round(statistics.median(calls[1]), 2),
            "calls_per_side": len(calls[0]), "file": str(path.relative_to(workdir))}
    spearmans = [m["eval_spearman"] for m in seeds.values()]
    timing = json.loads(Path(args.timing_manifest).read_text(encoding="utf-8")) if args.timing_manifest else manifest
    summary = {
        "command": "edgedistill run --task embedding --data ../shared/data/stsb; benchmarks/embeddings.py "
                   f"--seeds {' '.join(map(str, args.seeds))}",
        "teacher": {"model": teacher["model"], "stsb_dev_spearman": teacher["eval_spearman"],
                    "parameters": teacher["parameters"]},
        "student": {"stsb_dev_spearman": student["eval_spearman"],
                    "retention": student["retention_of_teacher_spearman"],
                    "cosine_to_teacher_mean": student["cosine_to_teacher_mean"],
                    "cosine_to_teacher_min": student["cosine_to_teacher_min"],
                    "cross_retrieval_top10": student["cross_retrieval_top10"], "parameters": student["parameters"],
                    "layer_map": student["layer_map"], "corpus_sentences": student["corpus_sentences"],
                    "corpus_sources": student["corpus_sources"], "train_time_s": student["train_time_s"],
                    "seeds": {str(seed): {"stsb_dev_spearman": m["eval_spearman"],
                                          "retention": m["retention_of_teacher_spearman"],
                                          "cosine_to_teacher_mean": m["cosine_to_teacher_mean"],
                                          "cross_retrieval_top10": m["cross_retrieval_top10"]}
                              for seed, m in seeds.items()},
                    "retention_mean": statistics.mean(m["retention_of_teacher_spearman"] for m in seeds.values()),
                    "spearman_spread": round(max(spearmans) - min(spearmans), 3)},
        "baseline": {"stsb_dev_spearman": baseline["eval_spearman"],
                     "retention": baseline["retention_of_teacher_spearman"],
                     "cosine_to_teacher_mean": baseline["cosine_to_teacher_mean"],
                     "cross_retrieval_top10": baseline["cross_retrieval_top10"],
                     "what": "the student untrained: the teacher's layers " + str(baseline["layer_map"])},
        "artifacts": artifacts,
        "best_artifact": best,
        "peers": paired,
        "pipeline_seconds": timing.get("last_run_stage_seconds"),
        "pipeline_total_seconds": timing.get("last_run_seconds"),
        "note": args.note,
        "bench_host": report["host"], "threads": args.threads, "tools": library_versions(),
        "host": host_info(args.threads),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(render(summary), encoding="utf-8")
    print(render(summary))


def render(s: dict[str, Any]) -> str:
    st, base, teacher = s["student"], s["baseline"], s["teacher"]
    lines = [f"# Sentence embeddings on device: {teacher['model']} -> 3-layer student", "",
             f"Command: `{s['command']}`. Host: {s['host']['cpu']}, {s['threads']} threads. STS-B dev (1,500 pairs): "
             "Spearman x100 of pair cosines against the gold scores.", "",
             "| model | STS-B dev Spearman | of the teacher | cosine to teacher (mean) | cross-retrieval top-10 |",
             "| --- | --- | --- | --- | --- |",
             f"| teacher | {teacher['stsb_dev_spearman']:.2f} | 100% | 1 | 100% |",
             f"| student (seed 42) | {st['stsb_dev_spearman']:.2f} | {100 * st['retention']:.2f}% | "
             f"{st['cosine_to_teacher_mean']:.4f} | {100 * st['cross_retrieval_top10']:.2f}% |",
             f"| baseline (untrained) | {base['stsb_dev_spearman']:.2f} | {100 * base['retention']:.2f}% | "
             f"{base['cosine_to_teacher_mean']:.4f} | {100 * base['cross_retrieval_top10']:.2f}% |", "",
             "Every seed run: " + "; ".join(f"seed {seed}: {v['stsb_dev_spearman']:.2f} ({100 * v['retention']:.2f}%, "
                                             f"cosine {v['cosine_to_teacher_mean']:.4f}, top-10 "
                                             f"{100 * v['cross_retrieval_top10']:.1f}%)"
                                             for seed, v in st["seeds"].items())
             + f"; mean retention {100 * st['retention_mean']:.2f}%.", "",
             "Corpus: " + "; ".join(f"{c['sentences']} from {c['source']}" for c in st["corpus_sources"])
             + f" ({st['corpus_sentences']} sentences in all, after the cap).", "",
             "## Artifacts (each gated against the student checkpoint on the 3,000 dev sentences)", "",
             "| artifact | gate | cosine mean / min | top-10 overlap | Spearman | drop | int8 MACs | p50 ms b1 s128 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, a in s["artifacts"].items():
        if not a["gate_passed"]:
            lines.append(f"| {name} | **failed**: {a['reason'][:200]} | | | | | | |")
            continue
        mac = "–" if a["int8_mac_fraction"] is None else f"{100 * a['int8_mac_fraction']:.1f}%"
        p50 = "–" if a["p50_ms_b1_s128"] is None else f"{a['p50_ms_b1_s128']:.2f}"
        cos = "–" if a["cosine_mean"] is None else f"{a['cosine_mean']:.5f} / {a['cosine_min']:.5f}"
        top = "–" if a["top10_overlap"] is None else f"{100 * a['top10_overlap']:.2f}%"
        lines.append(f"| {name} | passed | {cos} | {top} | {a['stsb_dev_spearman']:.2f} | "
                     f"{a['spearman_drop_points']:.2f} | {mac} | {p50} |")
    lines += ["", "fp32 artifacts are gated on max |difference| <= 1e-4 (their cosines are 1 to 5 decimals). Core ML "
              "rows were verified on edgedistill's numpy emulation of the mlprogram (no Core ML runtime off macOS): "
              "no latency.", "", "## Against sentence-transformers' own ONNX exports (paired, batch 1 x 128)", "",
              "| ours | peer | ours / peer (median per-call ratio) | per-round medians | ours p50 ms | peer p50 ms |",
              "| --- | --- | --- | --- | --- | --- |"]
    for peer, p in s["peers"].items():
        lines.append(f"| {p['ours']} | {peer} | **{p['median_ratio']}** | "
                     f"{', '.join(map(str, p['round_medians']))} | {p['ours_p50_ms']} | {p['peer_p50_ms']} |")
    stages = s.get("pipeline_seconds") or {}
    lines += ["", f"Pipeline (`edgedistill run --task embedding`): {s.get('pipeline_total_seconds')} s in all; by "
              "stage " + ", ".join(f"{k} {v} s" for k, v in stages.items()) + ".", ""]
    if s.get("note"):
        lines += [s["note"], ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
