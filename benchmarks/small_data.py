"""A small sentence-pair task, as a new user brings one: what the teacher's schedule for small data buys.

The task is built from the STS Benchmark's train split in ``../shared/data/stsb`` (a seeded sample of 1,383
pairs, labelled ``similar`` when the gold score is at least 2.5, else ``different``): with the default
``data.eval_fraction`` it is 1,245 training pairs and 138 eval pairs (each seed carves its own eval split), the
size of the task in the report that asked for ``teacher.min_steps`` (1,244 and 139). Each recipe fine-tunes the packaged MiniLM on it, once per seed:

* ``one-epoch``: the SST-2 schedule as it was (1 epoch at 1e-4: 39 optimizer steps), the learning check off;
* ``default``: the current default (``teacher.min_steps: 200`` stretches it to 6 epochs at 3e-5).

    .venv/bin/python benchmarks/small_data.py            # ~10 minutes on the 2-core machine

Writes ``benchmarks/results/small-data.json`` and ``.md``; the pair file goes to a scratch folder, never into
the repository.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STSB = ROOT.parent / "shared" / "data" / "stsb" / "sts-train.csv"
RESULTS = ROOT / "benchmarks" / "results"
PAIRS, SEEDS = 1383, (42, 43, 44)
RECIPES = {
    "one-epoch": {"teacher.min_steps": 0, "require_learning": False},
    "default": {"require_learning": False},  # the check is reported below, not allowed to stop the study
}


def write_pairs(folder: Path) -> Path:
    rows = []
    for line in STSB.read_text(encoding="utf-8").splitlines():
        fields = line.split("\t")[:7]  # some rows carry extra trailing fields
        a, b = fields[5].strip(), fields[6].strip()
        if a and b:
            rows.append((a, b, "similar" if float(fields[4]) >= 2.5 else "different"))
    random.Random(7).shuffle(rows)
    path = folder / "pairs.tsv"
    path.write_text("sentence1\tsentence2\tlabel\n" + "".join(f"{a}\t{b}\t{y}\n" for a, b, y in rows[:PAIRS]),
                    encoding="utf-8")
    return path


def run(pairs: Path, workdir: Path, recipe: str, seed: int) -> dict[str, Any]:
    import numpy as np

    from edgedistill.core.config import load_config
    from edgedistill.data.task_data import load_task_data
    from edgedistill.tasks import get_task
    from edgedistill.training.teacher import run_teacher

    config = load_config(overrides={"data.dataset": str(pairs), "data.text_column": "sentence1",
                                    "data.text_pair_column": "sentence2", "workdir": str(workdir), "seed": seed,
                                    **RECIPES[recipe]})
    data = load_task_data(config.data, seed=config.seed)
    started = time.perf_counter()
    metrics = run_teacher(config, data=data).metrics
    labels = np.array(data.eval.labels)
    return {"recipe": recipe, "seed": seed, "eval_accuracy": round(metrics["eval_accuracy"], 4),
            "majority": round(float(np.bincount(labels).max() / labels.size), 4), "steps": metrics.get("steps"),
            "epochs": metrics["epochs"], "learnt_nothing": get_task("classification").learnt_nothing(
                {"accuracy": metrics["eval_accuracy"]}, labels),
            "minutes": round((time.perf_counter() - started) / 60, 2),
            "train_rows": len(data.train), "eval_rows": len(data.eval)}


def render(report: dict[str, Any]) -> str:
    lines = ["# A small sentence-pair task: the teacher's schedule for small data", "",
             f"`{report['command']}` on {report['host']['cpu']}, {report['host']['threads']} threads. "
             f"{report['rows'][0]['train_rows']} training / {report['rows'][0]['eval_rows']} eval pairs from the "
             "STS Benchmark train split (label: gold score >= 2.5), seeds " + ", ".join(map(str, SEEDS)) +
             " (each seed carves its own eval split, so the majority class differs). The learning check: accuracy "
             "above the majority class by two standard errors, or the run stops.", "",
             "| recipe | seed | steps | epochs | eval accuracy | majority class | learning check | minutes |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["rows"]:
        check = "passes" if r["learnt_nothing"] is None else "stops the run"
        lines.append(f"| {r['recipe']} | {r['seed']} | {r['steps']} | {r['epochs']:g} | {r['eval_accuracy']:.4f} "
                     f"| {r['majority']:.4f} | {check} | {r['minutes']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    from edgedistill.core.host import host_info
    from edgedistill.core.logs import configure_console

    configure_console()
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgedistill-small-data-") as scratch:
        pairs = write_pairs(Path(scratch))
        for recipe in RECIPES:
            for seed in SEEDS:
                rows.append(run(pairs, Path(scratch) / f"{recipe}-{seed}", recipe, seed))
                print(json.dumps(rows[-1]), flush=True)
    report = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "host": host_info(2),
              "rows": rows}
    (RESULTS / "small-data.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "small-data.md").write_text(render(report), encoding="utf-8")
    print(render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
