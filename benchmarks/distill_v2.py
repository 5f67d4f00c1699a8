"""Distillation recipes on SST-2 over several seeds, each against the labels-only baseline of the same seed.

    .venv/bin/python benchmarks/distill_v2.py --recipes labels-only distilbert augmented-3 --seeds 42 43 44

Every run goes through the distill stage as `edgedistill distill` does, from one teacher (--teacher, default
runs/default/teacher; every seed distils the same teacher), on the full SST-2 train split, evaluated on SST-2
dev. Baselines trained on the hard labels alone with the same student and seed: `labels-only` never sees the
teacher (layers 0, 2, 4 of the checkpoint the teacher was fine-tuned from: what the pipeline's baseline role
trains), so the gain over it is everything the teacher adds; `labels-only-teacher-init` starts from the
fine-tuned teacher's layers, as the distilled students do, so the gain over it is what the distillation losses
alone add (both 1 epoch); `labels-only-2ep` is `labels-only` on the 2-epoch schedule, the baseline for the
2-epoch recipes. Each run is a cached stage in <workdir>/<recipe>-s<seed>, so the script can be stopped and
re-run: finished runs are reused (give each teacher its own --workdir).

Runs from several teachers share one results file: each run records its teacher (`fine-tuned`, or
`born-again` for a teacher built with teacher.born_again), and a recipe is summarised per teacher. The
baselines that never see the teacher (labels-only, labels-only-2ep) pair with every teacher's runs of the
same seed; labels-only-teacher-init pairs only with its own teacher's.
Results: benchmarks/results/distill-v2.json (every run, per recipe, teacher and seed) and distill-v2.md (the
runs, then mean and sample standard deviation per recipe and teacher, and the paired gain over the baseline
of each seed).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from edgedistill.core.config import load_config
from edgedistill.core.devices import device_class
from edgedistill.training.distill import run_distill
from edgedistill.core.logs import configure_console
from edgedistill.data.task_data import load_task_data
from edgedistill.training.common import TeacherResult

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data" / "sst2"
BASELINE = "labels-only"
BASELINES = (BASELINE, "labels-only-teacher-init", "labels-only-2ep")
TEACHER_FREE = (BASELINE, "labels-only-2ep")  # start from the pretrained checkpoint, trained on labels alone
# Every recipe pins the losses and the schedule, so a change of the pipeline's defaults leaves its runs as they were.
LABELS_ONLY = {"distill.alpha_kd": 0.0, "distill.alpha_ce": 1.0, "distill.alpha_cos": 0.0, "distill.augment.variants": 0,
               "distill.epochs": 1.0, "distill.learning_rate": 5e-5}
DISTILBERT = {"distill.alpha_kd": 1.0, "distill.alpha_ce": 1.0, "distill.alpha_cos": 1.0, "distill.temperature": 2.0,
              "distill.augment.variants": 0, "distill.epochs": 1.0, "distill.learning_rate": 5e-5}

# name -> (overrides, description)
RECIPES: dict[str, tuple[dict[str, Any], str]] = {
    BASELINE: ({**LABELS_ONLY, "distill.init": "pretrained"},
               "the same student trained on the labels alone, from the pretrained checkpoint's layers: no teacher"),
    "labels-only-teacher-init": (LABELS_ONLY, "the same student trained on the labels alone, from the fine-tuned "
                                              "teacher's layers"),
    "distilbert": (DISTILBERT,
                   "DistilBERT recipe: kd + ce + cos on the last layer, T=2, 1 epoch (the v1 default, batches "
                   "grouped by length)"),
    "distilbert-2ep": ({**DISTILBERT, "distill.epochs": 2.0},
                       "the DistilBERT recipe trained for 2 epochs (the learning rate decays over both)"),
    "labels-only-2ep": ({**LABELS_ONLY, "distill.init": "pretrained", "distill.epochs": 2.0},
                        "labels-only trained for 2 epochs: the no-teacher baseline on distilbert-2ep's schedule"),
    "augmented": ({**DISTILBERT, "distill.augment.variants": 1},
                  "distilbert + one teacher-labelled embedding-neighbour variant of each training sentence"),
    "augmented-3": ({**DISTILBERT, "distill.augment.variants": 3, "distill.alpha_cos": 0.0},
                    "kd + ce (teacher logits computed once, no teacher pass while training) + three variants per "
                    "sentence"),
    "intermediate": ({**DISTILBERT, "distill.alpha_cos": 0.0, "distill.alpha_mse": 1.0, "distill.alpha_att": 1.0,
                      "distill.align": "uniform"},
                     "kd + ce + TinyBERT's intermediate-layer losses (hidden-state MSE and attention KL on the "
                     "uniformly paired layers: student 1, 2, 3 with teacher 2, 4, 6), 1 epoch, no augmentation"),
    "distilbert-odd-layers": ({**DISTILBERT, "distill.layer_map": [1, 3, 5]},
                              "the DistilBERT recipe (1 epoch) on a student copied from teacher layers 2, 4, 6 "
                              "counted from 1 (layer_map [1, 3, 5]): the last layer, the one the head reads, kept"),
    "intermediate-init-pairs": ({**DISTILBERT, "distill.alpha_cos": 0.0, "distill.alpha_mse": 1.0,
                                 "distill.alpha_att": 1.0, "distill.align": "uniform", "distill.layer_map": [1, 3, 5]},
                                "intermediate with the student copied from the teacher layers it is paired with "
                                "(layer_map [1, 3, 5]: teacher layers 2, 4, 6 counted from 1 into student 1, 2, 3), "
                                "so each pair starts from the same weights"),
    "intermediate-init-pairs-2ep": ({**DISTILBERT, "distill.alpha_cos": 0.0, "distill.alpha_mse": 1.0,
                                     "distill.alpha_att": 1.0, "distill.align": "uniform",
                                     "distill.layer_map": [1, 3, 5], "distill.epochs": 2.0},
                                    "intermediate-init-pairs trained for 2 epochs, on distilbert-2ep's and "
                                    "labels-only-2ep's schedule"),
    "two-phase": ({**DISTILBERT, "distill.alpha_cos": 0.0, "distill.alpha_mse": 1.0, "distill.alpha_att": 1.0,
                   "distill.align": "uniform", "distill.intermediate_epochs": 1.0},
                  "TinyBERT's two-phase task distillation: 1 epoch on the intermediate-layer losses alone (hidden-"
                  "state MSE and attention KL, student 1, 2, 3 with teacher 2, 4, 6), then 1 epoch of kd + ce"),
    "tinybert": ({**DISTILBERT, "distill.augment.variants": 1, "distill.alpha_cos": 0.0, "distill.alpha_mse": 1.0,
                  "distill.alpha_att": 1.0, "distill.align": "uniform"},
                 "kd + ce + TinyBERT's hidden-state MSE and attention KL on uniformly paired layers + one variant"),
}


def teacher_recipe(metrics: dict[str, Any]) -> str:
    """How the teacher was made, as the results name it: the teacher stage records `born_again` when it ran."""
    return "born-again" if metrics.get("born_again") else "fine-tuned"


def host_name(host: dict[str, Any]) -> str:
    """A run's host as the tables name it: the CPU and its class (two EPYCs differ in ISA, and so in speed)."""
    return f"{host['cpu']} ({device_class(host['machine'], host['isa'])})"


def run_recipe(name: str, seed: int, teacher: TeacherResult, workdir: Path) -> list[dict[str, Any]]:
    overrides, description = RECIPES[name]
    config = load_config(overrides={"data.dataset": str(DATA), "workdir": str(workdir / f"{name}-s{seed}"),
                                    "seed": seed, "teacher.model": str(teacher.path), "distill.qat.enabled": False,
                                    "distill.baseline": False, **overrides})
    entries = []
    for result in run_distill(config, teacher, load_task_data(config.data, seed=config.seed)):
        m = result.metrics
        augment = Path(config.workdir) / "augment" / "metrics.json"  # written by the run above when it labels
        augment_min = round(json.loads(augment.read_text())["build_time_s"] / 60, 1) if augment.exists() else 0.0
        entries.append({
            "recipe": name,
            "teacher": teacher_recipe(teacher.metrics),
            "teacher_path": str(teacher.path.relative_to(ROOT) if teacher.path.is_relative_to(ROOT) else teacher.path),
            "seed": seed,
            "description": description,
            "overrides": overrides,
            "loss_weights": m["loss_weights"],
            "train_samples": m["train_samples"],
            "augmented_samples": m.get("augmented_samples", 0),
            "epochs": m["epochs"],
            "steps": m["steps"],
            "sst2_dev_accuracy": round(m["eval_accuracy"], 4),
            "teacher_accuracy": round(m["teacher_eval_accuracy"], 4),
            "retention": round(m["retention_of_teacher_accuracy"], 4),
            "agreement_with_teacher": round(m["agreement_with_teacher"], 4),
            "train_time_min": round(m["train_time_s"] / 60, 1),
            "augment_build_min": augment_min if m.get("augmented_samples") else 0.0,
            "path": str(result.path.relative_to(ROOT) if result.path.is_relative_to(ROOT) else result.path),
            "command": " ".join(m["command"]),
            "host": m["host"],
        })
    return entries


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation per recipe and teacher; the gain over each baseline of the same seed,
    paired (a teacher-free baseline with every teacher's runs, labels-only-teacher-init with its own teacher's)."""
    def spread(values: list[float]) -> float | None:
        return round(statistics.stdev(values), 4) if len(values) > 1 else None

    def baseline_accuracy(name: str, teacher: str) -> dict[int, float]:
        return {r["seed"]: r["sst2_dev_accuracy"] for r in runs
                if r["recipe"] == name and (name in TEACHER_FREE or r["teacher"] == teacher)}

    summary = []
    for recipe, teacher in dict.fromkeys((r["recipe"], r["teacher"]) for r in runs):
        rows = [r for r in runs if r["recipe"] == recipe and r["teacher"] == teacher]
        accuracy = [r["sst2_dev_accuracy"] for r in rows]
        gain_over = {}
        for name in BASELINES:
            by_seed = baseline_accuracy(name, teacher)
            gains = [r["sst2_dev_accuracy"] - by_seed[r["seed"]] for r in rows if r["seed"] in by_seed]
            if gains and recipe != name:
                gain_over[name] = {"mean": round(statistics.mean(gains), 4), "std": spread(gains),
                                   "seeds": [r["seed"] for r in rows if r["seed"] in by_seed]}
        summary.append({
            "recipe": recipe,
            "teacher": teacher,
            "teacher_accuracy": rows[0]["teacher_accuracy"],
            "seeds": [r["seed"] for r in rows],
            "sst2_dev_accuracy_mean": round(statistics.mean(accuracy), 4),
            "sst2_dev_accuracy_std": spread(accuracy),
            "retention_mean": round(statistics.mean(r["retention"] for r in rows), 4),
            "agreement_with_teacher_mean": round(statistics.mean(r["agreement_with_teacher"] for r in rows), 4),
            "gain_over": gain_over,
            "train_time_min_mean": round(statistics.mean(r["train_time_min"] for r in rows), 1),
            "augment_build_min_mean": round(statistics.mean(r.get("augment_build_min", 0.0) for r in rows), 1),
        })
    return summary


def render(report: dict[str, Any]) -> str:
    runs, summary = report["runs"], report["summary"]
    teachers = "; ".join(f"**{name}** {t['path']} ({t['eval_accuracy']:.4f})" for name, t in report["teachers"].items())
    lines = ["# Distillation recipes on SST-2, per seed", "",
             f"Teachers (SST-2 dev accuracy): {teachers}. Every seed of a recipe distils the same teacher. Student: "
             "3 layers x 384 from teacher layers 0, 2, 4 unless its recipe says otherwise (17.4M parameters). The baselines that never see a teacher "
             "(labels-only, labels-only-2ep) are listed once, against the fine-tuned teacher, and pair with every "
             "teacher's runs of the same seed.", "",
             "## Mean over seeds", "",
             "| recipe | teacher | seeds | SST-2 dev acc (mean ± sd) | % of teacher | "
             + "".join(f"points over {name} | " for name in BASELINES) + "agrees with teacher | train time |",
             "| --- " * (7 + len(BASELINES)) + "|"]

    def pm(mean: float | None, sd: float | None, scale: float = 1.0, digits: int = 4, sign: str = "") -> str:
        if mean is None:
            return "-"
        return f"{scale * mean:{sign}.{digits}f}" + (f" ± {scale * sd:.{digits}f}" if sd is not None else "")

    def gain(s: dict[str, Any], name: str) -> str:
        g = s["gain_over"].get(name)
        return pm(g["mean"], g["std"], 100, 2, sign="+") + (f" (seeds {', '.join(map(str, g['seeds']))})"
                                                  if g["seeds"] != s["seeds"] else "") if g else "-"

    for s in summary:
        lines.append(f"| {s['recipe']} | {s['teacher']} ({s['teacher_accuracy']:.4f}) | {', '.join(map(str, s['seeds']))} | "
                     f"{pm(s['sst2_dev_accuracy_mean'], s['sst2_dev_accuracy_std'])} | "
                     f"{100 * s['retention_mean']:.2f}% | " + "".join(f"{gain(s, name)} | " for name in BASELINES)
                     + f"{100 * s['agreement_with_teacher_mean']:.1f}% | {s['train_time_min_mean']} min"
                     + (f" + {s['augment_build_min_mean']} min labelling" if s["augment_build_min_mean"] else "") + " |")
    lines += ["", "## Every run", "",
              "| recipe | teacher | seed | SST-2 dev acc | % of teacher | agrees with teacher | rows (train + "
              "teacher-labelled) | steps | train time | host |", "| --- " * 10 + "|"]
    for r in runs:
        lines.append(f"| {r['recipe']} | {r['teacher']} | {r['seed']} | {r['sst2_dev_accuracy']:.4f} | "
                     f"{100 * r['retention']:.2f}% | {100 * r['agreement_with_teacher']:.1f}% | "
                     f"{r['train_samples']:,} + {r['augmented_samples']:,} | {r['steps']} | {r['train_time_min']} min"
                     + (f" + {r['augment_build_min']} min labelling" if r.get("augment_build_min") else "")
                     + f" | {host_name(r['host'])} |")
    lines += ["", "## Recipes", ""]
    for recipe in dict.fromkeys(r["recipe"] for r in runs):
        description = next(r["description"] for r in runs if r["recipe"] == recipe)
        lines.append(f"- **{recipe}**: {description}.")
    hosts = {(host_name(r["host"]), r["host"]["threads"], r["host"]["libraries"].get("torch"),
              r["host"]["libraries"].get("transformers")) for r in runs}
    lines += ["", "Hosts: " + "; ".join(f"{cpu}, {threads} threads, torch {torch}, transformers {tf}"
                                        for cpu, threads, torch, tf in sorted(hosts))
              + ". Train times compare only between runs of one host (the table names each run's). Commands: "
              + "; ".join(f"`{c}`" for c in report["commands"]) + " (each run in distill-v2.json records its own). "
              "Train time is the Trainer's loop; an augmented run also spends the labelling (building the variants, "
              "the teacher over them) and, not counted here, a teacher pass over the 67,349 training rows (2.4 min "
              "for augmented-3, seed 43). Standard deviations are sample (n-1) over seeds; gains are paired by seed "
              "(mean ± sd of the per-seed differences); one SST-2 dev sentence is 0.11 points.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=[BASELINE, "distilbert", "augmented-3"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42, 43, 44])
    parser.add_argument("--teacher", type=Path, default=ROOT / "runs" / "default" / "teacher")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "distill-v2")
    args = parser.parse_args()
    configure_console()
    teacher_metrics = json.loads((args.teacher / "metrics.json").read_text())
    teacher = TeacherResult(args.teacher.resolve(), teacher_metrics, cached=True)
    command = " ".join(["benchmarks/distill_v2.py", "--recipes", *args.recipes, "--seeds", *map(str, args.seeds),
                        "--teacher", str(args.teacher), "--workdir", str(args.workdir)])
    path = RESULTS / "distill-v2.json"
    report = json.loads(path.read_text()) if path.exists() else {"teachers": {}, "commands": [], "runs": []}
    report["teachers"][teacher_recipe(teacher_metrics)] = {"path": str(args.teacher),
                                                           "eval_accuracy": teacher_metrics["eval_accuracy"]}
    report["commands"] = list(dict.fromkeys([*report["commands"], command]))
    for seed in args.seeds:  # seed by seed: a stopped script leaves whole seeds behind
        for recipe in args.recipes:
            fresh = run_recipe(recipe, seed, teacher, args.workdir)
            done = {(r["recipe"], r["teacher"], r["seed"]) for r in fresh}
            runs = [r for r in report["runs"] if (r["recipe"], r["teacher"], r["seed"]) not in done] + fresh
            runs.sort(key=lambda r: (r["recipe"] not in BASELINES, r["recipe"], r["teacher"] != "fine-tuned",
                                     r["teacher"], r["seed"]))
            report["runs"], report["summary"] = runs, summarize(runs)
            RESULTS.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=2) + "\n")
            (RESULTS / "distill-v2.md").write_text(render(report))
    print((RESULTS / "distill-v2.md").read_text())


if __name__ == "__main__":
    main()
