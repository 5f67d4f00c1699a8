"""Reproduce the teacher results: the packaged MiniLM teacher fine-tuned on SST-2, full and quick.

    .venv/bin/python benchmarks/teacher.py --preset full   # ~30 min on 2 cores
    .venv/bin/python benchmarks/teacher.py --preset quick  # ~4 min

Runs the teacher stage exactly as `edgedistill teacher --data DATA [--preset quick]` does (a cached
teacher with identical inputs is reused: its metrics.json records the run that built it) and writes
benchmarks/results/teacher-<preset>.json and .md. `--tried DIR ...` adds other trained teacher folders
(other recipes on the same data) as comparison rows, each described by its own saved config and metrics; the
rows already in the results file are kept (a folder given again replaces its row), so recipes tried in earlier
sessions, whose folders are gone, stay listed.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path
from typing import Any

from edgedistill.core.config import load_config
from edgedistill.core.logs import configure_console
from edgedistill.training.teacher import run_teacher

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "sst2"


def eval_history(metrics: dict[str, Any], teacher_dir: Path) -> list[dict[str, float]]:
    """Dev accuracy after each epoch: from metrics.json, or (teachers trained before it was recorded there)
    from the Trainer's evaluation lines in the stage's own log."""
    if "eval_history" in metrics:
        return metrics["eval_history"]
    history = []
    log = teacher_dir / "teacher.log"
    for line in log.read_text(encoding="utf-8").splitlines() if log.exists() else []:
        found = re.search(r"step \d+/\d+: (\{.*'eval_accuracy'.*\})", line)
        entry = ast.literal_eval(found.group(1)) if found else {}
        if "epoch" in entry:  # the evaluation before training has none
            history.append({"epoch": round(entry["epoch"], 2), "eval_accuracy": entry["eval_accuracy"]})
    return list({e["epoch"]: e for e in history}.values())  # the final evaluation repeats the last epoch's


def tried_row(folder: Path) -> dict[str, Any]:
    """One trained teacher folder as a comparison row: its recipe (from its saved config) and results."""
    import yaml

    metrics = json.loads((folder / "metrics.json").read_text())
    recipe = yaml.safe_load((folder / "edgedistill_config.yaml").read_text())["teacher"]
    return {
        "folder": str(folder),
        "epochs": recipe["epochs"],
        "learning_rate": recipe["learning_rate"],
        "batch_size": recipe["batch_size"],
        "batches_grouped_by_length": recipe.get("group_by_length", False),
        "born_again": born_again_record(metrics),
        "sst2_dev_accuracy": round(metrics["eval_accuracy"], 4),
        "eval_history": eval_history(metrics, folder),
        "train_time_min": round(metrics["train_time_s"] / 60, 1),
        "command": " ".join(metrics["command"]),
    }


def merge_tried(results: Path, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tried rows already in ``results`` (the previous run's file), then ``rows``; a folder in both keeps
    its new row, in its old place."""
    previous = json.loads(results.read_text())["tried"] if results.is_file() else []
    fresh = {r["folder"]: r for r in rows}
    kept = [fresh.pop(r["folder"], r) for r in previous]
    return kept + list(fresh.values())


def born_again_record(metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The born-again stage's record with the accuracy of the fine-tuned teacher it learnt from; None without it."""
    if not metrics.get("born_again"):
        return None
    return {**metrics["born_again"], "fine_tuned_eval_accuracy": metrics["fine_tuned_eval_accuracy"]}


def born_again_text(born_again: dict[str, Any] | None) -> str:
    """The born-again stage as one table cell (the epoch history above it is the fine-tuned stage's)."""
    if not born_again:
        return "-"
    return (f"born-again: {born_again['variants']} variants per sentence, {born_again['epochs']:g} epoch at "
            f"{born_again['learning_rate']:g}, T={born_again['temperature']:g}; fine-tuned stage "
            f"{born_again['fine_tuned_eval_accuracy']:.4f}")


def tried_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    then = any(r.get("born_again") for r in rows)  # the column only when a row has a born-again stage
    lines = ["Recipes tried (same data and seed; each row from the folder's own config and metrics):", "",
             "| epochs | learning rate | batches | " + ("then | " if then else "")
             + "SST-2 dev accuracy | after each epoch | train time |",
             "| --- " * (7 if then else 6) + "|"]
    for r in rows:
        history = ", ".join(f"{e['eval_accuracy']:.4f}" for e in r["eval_history"]) or "-"
        lines.append(f"| {r['epochs']:g} | {r['learning_rate']:g} | {r['batch_size']}, "
                     f"{'grouped by length' if r['batches_grouped_by_length'] else 'random'} | "
                     + (f"{born_again_text(r.get('born_again'))} | " if then else "")
                     + f"{r['sst2_dev_accuracy']:.4f} | {history} | {r['train_time_min']} min |")
    return "\n".join(lines) + "\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=["full", "quick"], default="quick")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--workdir", help="default: runs/default (full) or runs/quick (quick)")
    parser.add_argument("--tried", nargs="*", type=Path, default=[], metavar="TEACHER_DIR",
                        help="other trained teacher folders to list as recipes tried")
    args = parser.parse_args()
    configure_console()
    workdir = args.workdir or ("runs/default" if args.preset == "full" else "runs/quick")
    config = load_config(
        preset=None if args.preset == "full" else args.preset,
        overrides={"data.dataset": args.data, "workdir": workdir},
    )
    result = run_teacher(config)
    m = result.metrics
    stem = RESULTS / f"teacher-{args.preset}"
    record = {
        "benchmark": f"teacher-{args.preset}",
        "command": " ".join(m["command"]),
        "reused_cached_teacher": result.cached,
        "model": m["model"],
        "train_samples": m["train_samples"],
        "eval_samples": m["eval_samples"],
        "epochs": m["epochs"],
        "steps": m.get("steps"),
        "sst2_dev_accuracy": round(m["eval_accuracy"], 4),
        "sst2_dev_f1_macro": round(m["eval_f1_macro"], 4),
        "eval_loss": round(m["eval_loss"], 4),
        "accuracy_before_fine_tuning": round(m["initial_eval_accuracy"], 4),
        "train_time_s": m["train_time_s"],
        "eval_history": eval_history(m, result.path),
        "parameters": m["parameters"],
        "config": json.loads(json.dumps(config.teacher.model_dump())),
        "host": m["host"],
        "tried": merge_tried(stem.with_suffix(".json"), [tried_row(folder) for folder in args.tried]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    host = m["host"]
    stem.with_suffix(".md").write_text(
        f"# Teacher, {args.preset}: packaged MiniLM-L6-H384 fine-tuned on SST-2\n\n"
        f"| SST-2 dev accuracy | macro F1 | before fine-tuning | train samples | epochs | steps | train time |\n"
        f"| --- | --- | --- | --- | --- | --- | --- |\n"
        f"| **{record['sst2_dev_accuracy']:.4f}** | {record['sst2_dev_f1_macro']:.4f} | "
        f"{record['accuracy_before_fine_tuning']:.4f} | {record['train_samples']:,} | {record['epochs']} | "
        f"{record['steps']} | {record['train_time_s'] / 60:.1f} min |\n\n"
        + ("Dev accuracy after each epoch: " + ", ".join(
            f"epoch {e['epoch']:g}: {e['eval_accuracy']:.4f}" for e in record["eval_history"]) + ".\n\n"
           if record["eval_history"] else "")
        + tried_table(record["tried"])
        + f"Command: `{record['command']}`\n\n"
        f"Host: {host['cpu']}, {host['logical_cores']} logical cores, {host['threads']} threads, "
        f"{host['os']}, Python {host['python']}; torch {host['libraries'].get('torch')}, "
        f"transformers {host['libraries'].get('transformers')}.\n"
        f"Recipe: AdamW lr {config.teacher.learning_rate}, weight decay {config.teacher.weight_decay}, "
        f"{config.teacher.warmup_ratio:.0%} warm-up then linear decay, batch {config.teacher.batch_size}, "
        f"max length {config.data.max_length}, dynamic padding"
        f"{', batches grouped by length' if config.teacher.group_by_length else ''}, seed {config.seed}.\n"
    )
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
