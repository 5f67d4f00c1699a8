"""Reproduce the distillation results on SST-2: the students, the baseline, and the loss ablation.

    .venv/bin/python benchmarks/distill.py main       # 3-layer student + baseline, full SST-2 (~40 min)
    .venv/bin/python benchmarks/distill.py variants   # 2-layer and half-width students (subset)
    .venv/bin/python benchmarks/distill.py ablation   # each loss term off in turn, temperatures, on a subset

Every run goes through the distill stage exactly as `edgedistill distill` does, from the fine-tuned
teacher in runs/default/teacher (run benchmarks/teacher.py --preset full first). Results accumulate in
benchmarks/results/distill.json (one entry per run, with its command and host) and distill.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgedistill.core.config import load_config
from edgedistill.data.task_data import load_task_data
from edgedistill.training.distill import run_distill
from edgedistill.training.teacher import run_teacher
from edgedistill.core.logs import configure_console

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data" / "sst2"
TEACHER = ROOT / "runs" / "default" / "teacher"
ABLATION_SAMPLES = 8000

# name -> (workdir, overrides, description)
RUNS: dict[str, dict[str, tuple[str, dict[str, Any], str]]] = {
    "main": {
        "3-layer": ("runs/default", {}, "3 layers from teacher layers 0,2,4; default recipe"),
    },
    # On the ablation's subset, so that ablation-full (3 layers, same data) is their reference row.
    "variants": {
        "2-layer": ("runs/distill-2layer", {"distill.layers": 2, "data.max_train_samples": ABLATION_SAMPLES},
                    "2 layers from teacher layers 0,3"),
        "3-layer-h192": ("runs/distill-h192", {"distill.hidden_size": 192,
                                               "data.max_train_samples": ABLATION_SAMPLES},
                         "3 layers, hidden 192 (random init, learned projection for the cosine loss)"),
    },
    "ablation": {
        f"ablation-{name}": (f"runs/ablation-{name}", {"data.max_train_samples": ABLATION_SAMPLES, **extra}, text)
        for name, extra, text in [
            ("full", {}, "kd + ce + cos, T=2"),
            ("no-kd", {"distill.alpha_kd": 0}, "ce + cos"),
            ("no-ce", {"distill.alpha_ce": 0}, "kd + cos"),
            ("no-cos", {"distill.alpha_cos": 0}, "kd + ce"),
            ("T1", {"distill.temperature": 1.0}, "kd + ce + cos, T=1"),
            ("T4", {"distill.temperature": 4.0}, "kd + ce + cos, T=4"),
            ("lr1e-4", {"distill.learning_rate": 1e-4}, "kd + ce + cos, T=2, learning rate 1e-4"),
        ]
    },
}


def run_group(group: str) -> dict[str, Any]:
    entries = {}
    for name, (workdir, overrides, description) in RUNS[group].items():
        teacher = {} if workdir == "runs/default" else {"teacher.model": str(TEACHER)}
        config = load_config(overrides={"data.dataset": str(DATA), "workdir": workdir, **teacher, **overrides})
        baseline = group != "ablation" or name == "ablation-full"
        config = config.model_copy(update={"distill": config.distill.model_copy(update={"baseline": baseline})})
        data = load_task_data(config.data, seed=config.seed)
        for result in run_distill(config, run_teacher(config, data=data), data):
            m = result.metrics
            key = name if result.role == "student" else f"{name}-baseline"
            entries[key] = {
                "group": group,
                "description": description if result.role == "student" else f"baseline of {name}: labels only",
                "role": result.role,
                "layers": m["layers"],
                "hidden_size": m["hidden_size"],
                "layer_map": m["layer_map"],
                "loss_weights": m["loss_weights"],
                "parameters": m["parameters"],
                "size_mb": round(m["size_bytes"] / 1e6, 1),
                "train_samples": m["train_samples"],
                "epochs": m["epochs"],
                "sst2_dev_accuracy": round(m["eval_accuracy"], 4),
                "teacher_accuracy": round(m["teacher_eval_accuracy"], 4),
                "retention": round(m["retention_of_teacher_accuracy"], 4),
                "agreement_with_teacher": round(m["agreement_with_teacher"], 4),
                "train_time_min": round(m["train_time_s"] / 60, 1),
                "overrides": overrides,
                "command": " ".join(m["command"]),
                "host": m["host"],
            }
    return entries


def render(entries: dict[str, Any]) -> str:
    lines = ["# Distillation on SST-2 (teacher: packaged MiniLM-L6-H384, fine-tuned)", ""]
    for group, title in (("main", "Students on the full train split"),
                         ("variants", f"Student variants ({ABLATION_SAMPLES:,} training sentences, 1 epoch; "
                                      "compare with ablation-full)"),
                         ("ablation", f"Loss ablation ({ABLATION_SAMPLES:,} training sentences, 1 epoch)")):
        rows = {k: v for k, v in entries.items() if v["group"] == group}
        if not rows:
            continue
        lines += [f"## {title}", "",
                  "| run | layers | hidden | params | SST-2 dev acc | % of teacher | agrees with teacher "
                  "| weights (kd/ce/cos, T) | train time |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, e in rows.items():
            w = e["loss_weights"]
            lines.append(
                f"| {name} | {e['layers']} | {e['hidden_size']} | {e['parameters'] / 1e6:.1f}M | "
                f"{e['sst2_dev_accuracy']:.4f} | {100 * e['retention']:.1f}% | "
                f"{100 * e['agreement_with_teacher']:.1f}% | {w['alpha_kd']:g}/{w['alpha_ce']:g}/{w['alpha_cos']:g}, "
                f"T={w['temperature']:g} | {e['train_time_min']} min |")
        teacher_acc = next(iter(rows.values()))["teacher_accuracy"]
        lines += ["", f"Teacher SST-2 dev accuracy: {teacher_acc:.4f}.", ""]
    any_entry = next(iter(entries.values()))
    host = any_entry["host"]
    lines += [f"Host: {host['cpu']}, {host['threads']} threads, torch {host['libraries'].get('torch')}, "
              f"transformers {host['libraries'].get('transformers')}. Commands: `benchmarks/distill.py` "
              "(each entry of distill.json records its own).", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("groups", nargs="+", choices=list(RUNS))
    args = parser.parse_args()
    configure_console()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "distill.json"
    for group in args.groups:
        entries = json.loads(path.read_text()) if path.exists() else {}
        entries.update(run_group(group))
        path.write_text(json.dumps(entries, indent=2) + "\n")
        (RESULTS / "distill.md").write_text(render(entries))
    print((RESULTS / "distill.md").read_text())


if __name__ == "__main__":
    main()
