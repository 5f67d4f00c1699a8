"""The token-classification task's acceptance numbers in one file: benchmarks/results/ner/summary.{json,md}.

    .venv/bin/edgedistill run --task token-classification --data ../shared/data/conll2003     # seed 42
    .venv/bin/python benchmarks/ner.py --workdir runs/ner --seeds 43 44 --data ../shared/data/conll2003

Reads the run (teacher, student and baseline metrics: seqeval entity F1 on CoNLL-2003 ``valid``, strict IOB2
spans; every artifact's gate record; the bench report's p50 at batch 1 x 128 and its throughput on the real
eval sentences), then trains the student and its labels-only baseline again with each extra ``--seeds`` value in
its own workdir: the distill stage only, handed the seed-42 run's fine-tuned teacher, so the seeds differ in the
students' training alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _metrics(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))


def _per_type(metrics: dict[str, Any]) -> dict[str, float]:
    return {k.removeprefix("eval_f1_"): round(v, 4) for k, v in metrics.items() if k.startswith("eval_f1_")}


def _extra_seed(seed: int, data_path: str, workdir: Path) -> dict[str, dict[str, Any]]:
    """The student and baseline trained again with ``seed`` from the run's fine-tuned teacher (handed to the
    distill stage as the pipeline hands it, so the baseline starts from the checkpoint the teacher was fine-tuned
    from, as in the run); their metrics by role."""
    from edgedistill.core.config import load_config
    from edgedistill.tasks import load_data
    from edgedistill.training.common import TeacherResult
    from edgedistill.training.distill import run_distill

    out = workdir.with_name(f"{workdir.name}-seed{seed}")
    config = load_config(overrides={"task": "token-classification", "data.dataset": data_path, "seed": seed,
                                    "workdir": str(out)})
    teacher = TeacherResult(workdir / "teacher", _metrics(workdir / "teacher"), cached=True)
    started = time.perf_counter()
    results = run_distill(config, teacher, load_data(config))
    print(f"seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)
    return {r.role: r.metrics for r in results}


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
        out[name] = {"gate_passed": parity["passed"], "tag_agreement": parity.get("agreement"),
                     "valid_f1": parity.get("artifact_f1"), "f1_drop_points": parity.get("f1_drop_points"),
                     "max_abs": parity["max_abs"], "words_compared": parity.get("words"),
                     "int8_mac_fraction": integer.get("int8_mac_fraction"),  # full-integer (static) int8
                     "mac_fraction_by_arithmetic": integer.get("mac_fraction_by_arithmetic"),
                     "p50_ms_b1_s128": (row.get("reference_latency") or {}).get("p50_ms"),
                     "bench_valid_f1": row.get("f1"), "bench_f1_per_type": {k.removeprefix("f1_"): round(v, 4)
                                                                           for k, v in row.items()
                                                                           if k.startswith("f1_") and
                                                                           isinstance(v, float)},
                     "real_sentences_per_s": (row.get("real_lengths") or {}).get("sentences_per_s"),
                     "real_words_per_s": (row.get("real_lengths") or {}).get("words_per_s"),
                     "size_mb": round(row["size_bytes"] / 1e6, 2) if row.get("size_bytes") else None,
                     "device": (info.get("device") or {}).get("target")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "ner"))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    parser.add_argument("--seeds", type=int, nargs="*", default=[43, 44], help="extra student seeds (42 is the run's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ner"))
    parser.add_argument("--timing-manifest", help="the manifest.json of the run from an empty workdir, for the "
                        "pipeline's time (default: the workdir's, whose last run may have been a partial one)")
    args = parser.parse_args()
    from edgedistill.core.host import host_info, library_versions

    workdir = Path(args.workdir)
    manifest = json.loads((workdir / "manifest.json").read_text(encoding="utf-8"))
    report = json.loads((workdir / "report" / "report.json").read_text(encoding="utf-8"))
    teacher, student, baseline = (_metrics(workdir / role) for role in ("teacher", "student", "baseline"))
    timing = json.loads(Path(args.timing_manifest).read_text(encoding="utf-8")) if args.timing_manifest else manifest
    runs = {manifest["seed"]: {"student": student, "baseline": baseline}}
    runs |= {seed: _extra_seed(seed, args.data, workdir) for seed in args.seeds}
    students = [r["student"]["eval_f1"] for r in runs.values()]
    baselines = [r["baseline"]["eval_f1"] for r in runs.values()]
    summary = {
        "command": "edgedistill run --task token-classification --data ../shared/data/conll2003; benchmarks/ner.py "
                   f"--seeds {' '.join(map(str, args.seeds))}",
        "teacher": {"model": teacher["model"], "valid_f1": teacher["eval_f1"], "f1_per_type": _per_type(teacher),
                    "parameters": teacher["parameters"], "train_time_s": teacher.get("train_time_s")},
        "student": {"valid_f1": student["eval_f1"], "retention": student["retention_of_teacher_f1"],
                    "f1_per_type": _per_type(student), "parameters": student["parameters"],
                    "layer_map": student["layer_map"], "loss_weights": student["loss_weights"],
                    "agreement_with_teacher": student["agreement_with_teacher"],
                    "seeds": {str(seed): {"valid_f1": r["student"]["eval_f1"],
                                          "retention": r["student"]["retention_of_teacher_f1"],
                                          "baseline_valid_f1": r["baseline"]["eval_f1"]} for seed, r in runs.items()},
                    "retention_mean": statistics.mean(r["student"]["retention_of_teacher_f1"] for r in runs.values()),
                    "f1_spread_points": round(100 * (max(students) - min(students)), 3),
                    "margin_over_baseline_points": round(100 * (statistics.mean(students)
                                                                - statistics.mean(baselines)), 3)},
        "baseline": {"valid_f1": baseline["eval_f1"], "retention": baseline["retention_of_teacher_f1"],
                     "f1_per_type": _per_type(baseline), "seeds_valid_f1": dict(zip(map(str, runs), baselines)),
                     "what": "the same student trained on the tags alone, from the pretrained layers"},
        "artifacts": _artifacts(workdir, report, manifest),
        "pipeline_seconds": timing.get("last_run_stage_seconds"),
        "pipeline_total_seconds": timing.get("last_run_seconds"),
        "pipeline_host": timing.get("host"),
        "bench_host": report["host"], "threads": args.threads, "tools": library_versions(),
        "host": host_info(args.threads),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(render(summary), encoding="utf-8")
    print(render(summary))


def _types(scores: dict[str, float]) -> str:
    return ", ".join(f"{k} {100 * v:.1f}" for k, v in sorted(scores.items()))


def render(s: dict[str, Any]) -> str:
    st, base, teacher = s["student"], s["baseline"], s["teacher"]
    lines = [f"# Named entities on device: {teacher['model']} -> 3-layer student (CoNLL-2003)", "",
             f"Command: `{s['command']}`. Host: {s['host']['cpu']}, {s['threads']} threads. Entity F1 on CoNLL-2003 "
             "`valid` (3,250 sentences) with seqeval, strict IOB2 spans; a word's tag read from its first "
             "sub-token.", "",
             "| model | valid entity F1 | of the teacher | F1 per type |", "| --- | --- | --- | --- |",
             f"| teacher | {100 * teacher['valid_f1']:.2f} | 100% | {_types(teacher['f1_per_type'])} |",
             f"| student (seed 42) | {100 * st['valid_f1']:.2f} | {100 * st['retention']:.2f}% | "
             f"{_types(st['f1_per_type'])} |",
             f"| baseline (tags only) | {100 * base['valid_f1']:.2f} | {100 * base['retention']:.2f}% | "
             f"{_types(base['f1_per_type'])} |", "",
             "Every seed run (student / labels-only baseline): " + "; ".join(
                 f"seed {seed}: {100 * v['valid_f1']:.2f} ({100 * v['retention']:.2f}%) / "
                 f"{100 * v['baseline_valid_f1']:.2f}" for seed, v in st["seeds"].items())
             + f". Mean retention {100 * st['retention_mean']:.2f}%; the students' spread "
               f"{st['f1_spread_points']:.2f} points; mean margin over the baseline {st['margin_over_baseline_points']:.2f} "
               "points.", "",
             "## Artifacts (each gated against the student checkpoint on every valid sentence)", "",
             "| artifact | gate | tag agreement | entity F1 | drop (points) | int8 MACs | p50 ms b1 s128 | words/s "
             "(real sentences, b1) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, a in s["artifacts"].items():
        if not a["gate_passed"]:
            lines.append(f"| {name} | **failed**: {a['reason'][:200]} | | | | | | |")
            continue
        dynamic = (a.get("mac_fraction_by_arithmetic") or {}).get("dynamic-int8")
        mac = ("–" if a["int8_mac_fraction"] is None else f"{100 * dynamic:.0f}% dynamic" if dynamic and not
               a["int8_mac_fraction"] else f"{100 * a['int8_mac_fraction']:.1f}%")
        p50 = "–" if a["p50_ms_b1_s128"] is None else f"{a['p50_ms_b1_s128']:.2f}"
        words = "–" if a["real_words_per_s"] is None else f"{a['real_words_per_s']:.0f}"
        agreement = "–" if a["tag_agreement"] is None else f"{100 * a['tag_agreement']:.3f}%"
        f1 = "–" if a["valid_f1"] is None else f"{100 * a['valid_f1']:.2f}"
        drop = "–" if a["f1_drop_points"] is None else f"{a['f1_drop_points']:.2f}"
        lines.append(f"| {name} | passed | {agreement} | {f1} | {drop} | {mac} | {p50} | {words} |")
    stages = s.get("pipeline_seconds") or {}
    lines += ["", "fp32 artifacts are gated on max |logit difference| <= 1e-4. Core ML rows were verified on "
              "edgedistill's numpy emulation of the mlprogram (no Core ML runtime off macOS): no latency.", "",
              f"Pipeline (`edgedistill run --task token-classification`): {s.get('pipeline_total_seconds')} s in all; "
              "by stage " + ", ".join(f"{k} {v} s" for k, v in stages.items()) + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
