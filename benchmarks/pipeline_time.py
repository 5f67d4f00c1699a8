"""Wall time of the whole pipeline from an empty folder: `edgedistill run` as a user types it, uncached.

    .venv/bin/python benchmarks/pipeline_time.py --preset full     # the default config: the 2-hour budget
    .venv/bin/python benchmarks/pipeline_time.py --preset quick    # --preset quick: the 20-minute budget

The command runs in a subprocess (its start-up and data loading count) into a workdir that must not exist
yet, so no stage can be a cache hit. The time of each stage comes from the run's manifest.json, each trained
role's from its metrics.json. The 1-minute load average is recorded before and after: on this 2-core
machine, anything else running at the same time (a test run, a training) would slow the run several-fold,
and a load well above the run's own 2 threads says so. Results: benchmarks/results/pipeline-<preset>.json
and .md, and the run's own report (every artifact's latency, memory and accuracy) in pipeline-<preset>/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data" / "sst2"
BUDGET_MIN = {"full": 120, "quick": 20}  # the budgets for one uncached run on this machine
ROLES = ("teacher", "student", "qat", "baseline")
REPORT_FILES = ("report.md", "report.json", "report.csv")


def command_for(preset: str, workdir: Path) -> list[str]:
    command = [str(Path(sys.executable).parent / "edgedistill"), "run", "--data", str(DATA), "--workdir", str(workdir)]
    return command + (["--preset", "quick"] if preset == "quick" else [])


def run_uncached(preset: str, workdir: Path) -> dict[str, Any]:
    if workdir.exists():
        sys.exit(f"{workdir} already exists: an uncached run needs a folder that does not exist yet "
                 "(remove it or pass another --workdir)")
    command = command_for(preset, workdir)
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    wall = time.perf_counter() - started
    load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    return summarize(preset, workdir, command, wall, load)


def summarize(preset: str, workdir: Path, command: list[str], wall: float | None = None,
              load: dict[str, float] | None = None) -> dict[str, Any]:
    """The results of a finished run; ``wall`` None: the run's own time from its manifest (no start-up)."""
    manifest = json.loads((workdir / "manifest.json").read_text())
    wall_source = "the command, start-up included" if wall is not None else \
        "the run's own, from its manifest (process start-up not included)"
    wall = wall if wall is not None else manifest["last_run_seconds"]
    stages = manifest["stages"]
    roles = {}
    for role in ROLES:
        if role in stages:
            metrics = json.loads((workdir / role / "metrics.json").read_text())
            roles[role] = {"eval_accuracy": round(metrics["eval_accuracy"], 4),
                           "train_time_min": round(metrics["train_time_s"] / 60, 1)}
    exports = stages.get("export", {})
    return {
        "benchmark": f"pipeline-{preset}",
        "command": " ".join(["edgedistill", *command[1:]]).replace(str(ROOT) + "/", "").replace(str(DATA),
                                                                                                 "../shared/data/sst2"),
        "wall_min": round(wall / 60, 1),
        "wall_source": wall_source,
        "budget_min": BUDGET_MIN[preset],
        "within_budget": wall / 60 < BUDGET_MIN[preset],
        "distill_epochs": manifest["config"]["distill"]["epochs"],
        "stage_min": {k: round(v / 60, 1) for k, v in manifest["last_run_stage_seconds"].items()},
        "roles": roles,
        "exports": {name: e["status"] for name, e in exports.items()},
        "cached_anything": any(stages[r]["cached"] for r in ROLES if r in stages)
                           or any(e.get("cached", False) for e in exports.values()),  # a failed gate has none
        "load_average_1min": load,
        "host": manifest["host"],
        "tools": manifest["tools"],
        "finished": manifest["finished"],
    }


def render(result: dict[str, Any]) -> str:
    host = result["host"]
    verdict = "within" if result["within_budget"] else "OVER"
    lines = [f"# {result['benchmark']}: one uncached run", "",
             f"`{result['command']}` from a folder that did not exist: **{result['wall_min']} min** "
             f"({verdict} the {result['budget_min']}-minute budget). Nothing was a cache hit: "
             f"{'no' if not result['cached_anything'] else 'NO — something was cached'}.", "",
             "| stage | minutes |", "| --- | --- |"]
    lines += [f"| {stage} | {minutes} |" for stage, minutes in result["stage_min"].items()]
    lines += ["", f"| model (students: {result['distill_epochs']:g} epochs) | SST-2 dev accuracy | training (min) |",
              "| --- | --- | --- |"]
    lines += [f"| {role} | {r['eval_accuracy']:.4f} | {r['train_time_min']} |" for role, r in result["roles"].items()]
    verified = sum(status == "verified" for status in result["exports"].values())
    lines += ["", f"Exports: {verified} of {len(result['exports'])} verified"
              + "".join(f"; {name}: {status}" for name, status in result["exports"].items() if status != "verified")
              + ".", "",
              f"Host: {host['cpu']} ({', '.join(i for i in host['isa'] if i.startswith('avx512') or i == 'avx2')}), "
              f"{host['logical_cores']} logical cores, {host['threads']} threads, torch {result['tools']['torch']}. "
              f"Wall time: {result['wall_source']}. "
              + (f"1-minute load average {result['load_average_1min']['before']} before, "
                 f"{result['load_average_1min']['after']} after. " if result["load_average_1min"] else "")
              + f"Finished {result['finished']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(BUDGET_MIN), default="full")
    parser.add_argument("--workdir", type=Path, help="default: runs/pipeline-<preset>-<timestamp>")
    parser.add_argument("--measured", type=Path, metavar="DIR",
                        help="write the results of a run already finished in DIR, uncached, with the run's own "
                             "wall time from its manifest (last_run_seconds: without the process start-up)")
    args = parser.parse_args()
    if args.measured:
        workdir = args.measured.resolve()
        result = summarize(args.preset, workdir, command_for(args.preset, workdir))
    else:
        workdir = (args.workdir or ROOT / "runs" / f"pipeline-{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
        result = run_uncached(args.preset, workdir)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"pipeline-{args.preset}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"pipeline-{args.preset}.md").write_text(render(result))
    report = RESULTS / f"pipeline-{args.preset}"  # the run's own benchmark report: every artifact it made
    report.mkdir(exist_ok=True)
    for name in REPORT_FILES:
        shutil.copyfile(workdir / "report" / name, report / name)
    print(render(result))


if __name__ == "__main__":
    main()
