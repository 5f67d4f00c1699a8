"""Full-integer int8 recipes, one change at a time, on trained SST-2 students: what each change does to the logits.

    .venv/bin/python benchmarks/int8_recipes.py --models runs/default/student runs/default/baseline
                                                        # ~5 min per model

Each model is exported to every recipe below with its gate opened (every result is kept) and verified on all
SST-2 dev sentences against its own PyTorch checkpoint. Per export: label agreement, accuracy and its drop,
the mean and largest |logit difference|, and whether the default full-integer gate (>= 99% agreement,
<= 0.5 points) would have passed. Agreement counts the few sentences whose two logits nearly tie (a dozen
within 0.1 of each other for these students), so it moves by several sentences between recipes whose logit
error differs little; the logit error is the steadier measure of a recipe, the gate the one users meet.
Writes benchmarks/results/int8-recipes.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgedistill.core.config import Tolerance, load_config
from edgedistill.data.task_data import load_task_data
from edgedistill.export.stage import ExportSettings, export_target
from edgedistill.core.host import host_info
from edgedistill.core.logs import configure_console
from edgedistill.core.targets import load_target
from edgedistill.tasks import task_of_model

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst2"
RESULTS = ROOT / "benchmarks" / "results"

PREVIOUS_TFLITE = {"outlier_split_sides": ["output"], "calibration": "moving-average"}
PADDED_RANGES = {"calibration_padding": "include"}
RECIPES: dict[str, dict[str, dict[str, Any]]] = {  # target -> recipe -> option changes from the profile
    "tflite-int8-static": {
        "previous (output split, moving-average ranges)": PREVIOUS_TFLITE,
        "+ minmax ranges": {"outlier_split_sides": ["output"], **PADDED_RANGES},
        "+ input split": {"calibration": "moving-average"},
        "both sides, minmax over padded rows": PADDED_RANGES,
        "current (both sides, minmax over real tokens)": {},
        "current + float [CLS] row": {"float_cls_row": True},
    },
    "tflite-int8-static-fc-bmm": {
        "previous (output split, moving-average ranges)": PREVIOUS_TFLITE,
        "both sides, minmax over padded rows": PADDED_RANGES,
        "current (both sides, minmax over real tokens)": {},
    },
    "onnx-int8-static": {
        "previous (no split)": {"outlier_split_ratio": 0, **PADDED_RANGES},
        "input split, minmax over padded rows": PADDED_RANGES,
        "current (input split, minmax over real tokens)": {},
    },
}


def measure(model: Path, target_name: str, recipe: str, changes: dict[str, Any], data: Any,
            settings: ExportSettings, out: Path) -> dict[str, Any]:
    profile = load_target(target_name)
    gate = task_of_model(model).tolerance(profile.precision, profile.tolerance)
    target = profile.model_copy(update={"options": {**profile.options, **changes},
                                        "tolerance": Tolerance(min_agreement=0.0, max_accuracy_drop=100.0)})
    started = time.perf_counter()
    artifact = export_target(model, target, data, out, settings)
    parity = artifact.info["parity"]
    drop = parity["accuracy_drop_points"]
    return {"model": str(model), "target": target_name, "recipe": recipe, "options": changes,
            "agreement": parity["agreement"], "source_accuracy": parity["source_accuracy"],
            "accuracy": parity["artifact_accuracy"], "accuracy_drop_points": drop,
            "mean_abs_logit_diff": parity["mean_abs"], "max_abs_logit_diff": parity["max_abs"],
            "default_gate_passes": parity["agreement"] >= gate.min_agreement and drop <= gate.max_accuracy_drop,
            "outlier_split": (artifact.info.get("structure") or {}).get("outlier_split"),
            "export_and_verify_s": round(time.perf_counter() - started, 1)}


def render(report: dict[str, Any]) -> str:
    host = report["host"]
    lines = ["# Full-integer int8 recipes, one change at a time", "",
             f"`{report['command']}`; all {report['eval_sentences']} SST-2 dev sentences; each artifact against its own "
             f"PyTorch checkpoint; {host['cpu']}, {host['threads']} threads. Default gate: >= 99% agreement and "
             "<= 0.5 points lost.", "",
             "| model | target | recipe | agreement | accuracy (drop) | mean / max \\|logit diff\\| | default gate |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["runs"]:
        lines.append(f"| {r['model']} ({r['source_accuracy']:.4f}) | {r['target']} | {r['recipe']} | {r['agreement']:.2%} "
                     f"| {r['accuracy']:.4f} ({r['accuracy_drop_points']:+.2f}) "
                     f"| {r['mean_abs_logit_diff']:.3f} / {r['max_abs_logit_diff']:.3f} "
                     f"| {'passes' if r['default_gate_passes'] else 'fails'} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", type=Path, required=True, help="save_pretrained student folders")
    parser.add_argument("--targets", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    args = parser.parse_args()
    configure_console()
    config = load_config(overrides={"data.dataset": str(DATA)})
    data = load_task_data(config.data, seed=config.seed)
    settings = ExportSettings.from_config(config)
    runs = []
    with tempfile.TemporaryDirectory(prefix="int8-recipes-") as scratch:
        for model in args.models:
            for target_name in args.targets:
                for recipe, changes in RECIPES[target_name].items():
                    out = Path(scratch) / f"{len(runs):02d}"
                    runs.append(measure(model, target_name, recipe, changes, data, settings, out))
                    print(json.dumps(runs[-1]), flush=True)
    report = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "eval_sentences": len(data.eval),
              "host": host_info(config.threads), "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "int8-recipes.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "int8-recipes.md").write_text(render(report))
    print(render(report))


if __name__ == "__main__":
    main()
