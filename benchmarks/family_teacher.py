"""A non-BERT teacher end to end, beside the BERT teacher: the default pipeline's results from each run folder.

    .venv/bin/python benchmarks/roberta_teacher.py runs/roberta-minilm/model
    .venv/bin/edgedistill run --data ../shared/data/sst2 --workdir runs/roberta --set teacher.model=runs/roberta-minilm/model
    .venv/bin/edgedistill run --data ../shared/data/sst2 --workdir runs/bert-default
    .venv/bin/python benchmarks/family_teacher.py runs/roberta runs/bert-default

Each run is the default config (SST-2, the default student, every default target); give the BERT run too for two
columns measured on one host (the RoBERTa teacher is the packaged MiniLM's weights re-laid as RoBERTa: same
function, a RoBERTa classification head, so the columns differ only by the family's code path and the head).
Without it, the note points at the committed BERT results.
Writes benchmarks/results/families-roberta.json and .md: per run, the teacher's family, each trained model's
SST-2 dev accuracy, every artifact's gate status, accuracy, agreement with its checkpoint and p50 latency at batch
1 x 128, and the pipeline's time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
ROLES = ("teacher", "student", "qat", "baseline")


def summarize(workdir: Path) -> dict[str, Any]:
    """One finished run: its manifest (config, stages, timings) and its report (every artifact's numbers)."""
    manifest = json.loads((workdir / "manifest.json").read_text(encoding="utf-8"))
    report = json.loads((workdir / "report" / "report.json").read_text(encoding="utf-8"))
    teacher_config = json.loads((workdir / "teacher" / "config.json").read_text(encoding="utf-8"))
    roles = {}
    for role in ROLES:
        if (workdir / role / "metrics.json").is_file():
            metrics = json.loads((workdir / role / "metrics.json").read_text(encoding="utf-8"))
            roles[role] = {"eval_accuracy": round(metrics["eval_accuracy"], 4),
                           "train_min": round(metrics.get("train_time_s", 0) / 60, 1)}
    student_config = json.loads((workdir / "student" / "config.json").read_text(encoding="utf-8"))
    artifacts = {}
    for row in report["rows"]:
        if row["role"] != "student" or row["backend"] == "pytorch":
            continue
        reference = row.get("reference_latency") or {}
        artifacts[row["name"]] = {
            "gate": "verified" if row["status"] == "ok" else row["status"],
            "accuracy": round(row["accuracy"], 4) if row.get("accuracy") is not None else None,
            "agreement_with_checkpoint": round(row["agreement_with_source"], 4)
            if row.get("agreement_with_source") is not None else None,
            "p50_ms_b1_s128": reference.get("p50_ms"),
            "size_mb": round(row["size_bytes"] / 1e6, 2) if row.get("size_bytes") else None,
        }
    for name, entry in manifest["stages"].get("export", {}).items():
        if entry["status"] != "verified":
            artifacts[name] = {"gate": "failed", "error": entry.get("error", "")[:300]}
    return {
        "workdir": str(workdir),
        "teacher_model": manifest["config"]["teacher"]["model"],
        "teacher_family": teacher_config["model_type"],
        "student_architecture": student_config["architectures"][0],
        "roles": roles,
        "artifacts": dict(sorted(artifacts.items())),
        "pipeline_min": round(manifest["last_run_seconds"] / 60, 1),
        "stage_min": {k: round(v / 60, 1) for k, v in manifest["last_run_stage_seconds"].items()},
        "host": {"cpu": manifest["host"]["cpu"], "threads": manifest["host"].get("threads"),
                 "isa": [i for i in manifest["host"]["isa"] if i.startswith("avx512") or i == "avx2"]},
        "finished": manifest["finished"],
    }


def render(result: dict[str, Any]) -> str:
    runs = result["runs"]
    names = list(runs)
    lines = ["# A RoBERTa teacher end to end, beside the BERT teacher", "", result["note"], "",
             "Commands: " + "; ".join(f"`{c}`" for c in result["commands"]), "",
             "| | " + " | ".join(f"{n} ({runs[n]['teacher_family']})" for n in names) + " |",
             "|" + " --- |" * (len(names) + 1)]
    lines.append("| student architecture | " + " | ".join(runs[n]["student_architecture"] for n in names) + " |")
    for role in ROLES:
        lines.append(f"| {role} SST-2 dev accuracy | " + " | ".join(
            f"{runs[n]['roles'][role]['eval_accuracy']:.4f}" if role in runs[n]["roles"] else "–" for n in names) + " |")
    lines.append("| pipeline (min) | " + " | ".join(str(runs[n]["pipeline_min"]) for n in names) + " |")
    lines += ["", "Student artifacts (gate against the student checkpoint; accuracy on SST-2 dev; p50 at batch 1 x 128 "
              "on this host, Core ML has none off macOS):", "",
              "| artifact | " + " | ".join(f"{n}: gate / accuracy / agreement / p50 ms" for n in names) + " |",
              "|" + " --- |" * (len(names) + 1)]
    every = sorted({a for n in names for a in runs[n]["artifacts"]})
    for artifact in every:
        cells = []
        for n in names:
            a = runs[n]["artifacts"].get(artifact)
            if a is None:
                cells.append("–")
            elif a["gate"] != "verified":
                cells.append(f"**{a['gate']}**")
            else:
                cells.append(f"{a['gate']} / {a['accuracy']} / {a['agreement_with_checkpoint']} / "
                             f"{a['p50_ms_b1_s128'] if a['p50_ms_b1_s128'] is not None else '–'}")
        lines.append(f"| {artifact} | " + " | ".join(cells) + " |")
    host = runs[names[0]]["host"]
    lines += ["", f"Host: {host['cpu']} ({', '.join(host['isa'])}), {host['threads']} threads; runs finished "
              + ", ".join(f"{n} {runs[n]['finished']}" for n in names) + ".", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders: the non-BERT teacher's first")
    args = parser.parse_args()
    runs = {workdir.name: summarize(workdir) for workdir in args.runs}
    result = {
        "note": ("RoBERTa teacher: all-MiniLM-L6-v2's weights converted to RobertaModel by "
                 "benchmarks/roberta_teacher.py (hidden states identical to the BERT original), fine-tuned on SST-2 "
                 "by the teacher stage with a RoBERTa classification head; its layer norms use BERT's 1e-12, so the "
                 "student is the DistilBERT one, copied exactly. "
                 + ("The BERT column is the packaged MiniLM itself." if len(runs) > 1 else
                    "The BERT teacher on the same weights, from the committed default runs (not re-run beside this "
                    "one): SST-2 dev 0.8956 (teacher-full.md), students 0.8899 / 0.8865 / 0.8830 over seeds 42-44 "
                    "(distill-v2.md), baseline 0.8842 and QAT 0.8876 (pipeline-full.md); latencies are comparable "
                    "only within one run.")),
        "commands": [line.strip() for line in __doc__.split("\n\n")[1].strip().splitlines()[:2]]
        + [f".venv/bin/python benchmarks/family_teacher.py {' '.join(str(w) for w in args.runs)}"],
        "runs": runs,
    }
    (RESULTS / "families-roberta.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (RESULTS / "families-roberta.md").write_text(render(result), encoding="utf-8")
    print(render(result))


if __name__ == "__main__":
    main()
