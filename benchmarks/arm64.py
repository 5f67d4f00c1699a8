"""Every TFLite and ONNX artifact of a run replayed on arm64 kernels under qemu: the default student's numerics on a
phone's instruction set, without a phone.

    .venv/bin/edgedistill arm64 setup                       # once (timed from nothing: see setup_seconds)
    .venv/bin/edgedistill run --data ../shared/data/sst2    # the default student and its artifacts
    unshare --net .venv/bin/python benchmarks/arm64.py runs/default --data ../shared/data/sst2 \
        --int8-cpu cortex-a53 --int8-cpu max

``unshare --net`` runs it without a network (the script records the interfaces it could see: ``["lo"]``). For
each artifact and each ``--cpu`` (default cortex-a76; cortex-a53 and max add the plain-NEON and i8mm kernels):
its golden vectors and the first ``--samples`` eval sentences (default 256) on the x86 build and the arm64 build of
its runtime, against its checkpoint under its own gate (:mod:`edgedistill.emulation.replay`); the record is also
written into each artifact's ``artifact.json`` and card. Writes benchmarks/results/arm64/summary.json and .md.
Numerics only: nothing is timed but the replays themselves (seconds of emulation, not a phone's latency).
"""

from __future__ import annotations

import argparse
import json
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "arm64"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workdirs", type=Path, nargs="*", help="run folders with artifacts/")
    parser.add_argument("--data", default="../shared/data/sst2", help="the run's task data")
    parser.add_argument("--cpu", action="append", dest="cpus", help="emulated CPU (repeatable; default cortex-a76)")
    parser.add_argument("--int8-cpu", action="append", default=[], dest="int8_cpus",
                        help="further CPUs for the int8 artifacts only, whose kernels differ by CPU feature "
                             "(repeatable: cortex-a53, max)")
    parser.add_argument("--only-int8", action="store_true", help="replay the int8 artifacts alone")
    parser.add_argument("--reuse", action="store_true",
                        help="take a replay an artifact already records (same CPU features, runtimes and samples) "
                             "instead of running it again")
    parser.add_argument("--note", default="", help="a finding to print under the table")
    parser.add_argument("--samples", type=int, default=256, help="eval sentences per artifact")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--render-only", action="store_true",
                        help="rewrite summary.md from the summary.json in --out (with --note), replaying nothing")
    args = parser.parse_args()
    if args.render_only:
        summary_json = json.loads((args.out / "summary.json").read_text(encoding="utf-8"))
        summary_json["note"] = args.note or summary_json.get("note", "")
        (args.out / "summary.json").write_text(json.dumps(summary_json, indent=2) + "\n", encoding="utf-8")
        (args.out / "summary.md").write_text(render(summary_json), encoding="utf-8")
        return 0

    from edgedistill.core.config import load_config
    from edgedistill.core.errors import EdgeDistillError
    from edgedistill.core.host import host_info
    from edgedistill.emulation.environment import Arm64Environment
    from edgedistill.emulation.replay import REPLAYABLE, record_verification, recorded_replay, replay, summary
    from edgedistill.export.backends.base import Artifact
    from edgedistill.tasks import load_data

    cpus = args.cpus or ["cortex-a76"]
    environment = Arm64Environment.load()
    data = load_data(load_config(overrides={"data.dataset": args.data}))
    errors: dict[str, dict[str, str]] = {}
    folders = [p.parent for workdir in args.workdirs for p in sorted((workdir / "artifacts").glob("*/artifact.json"))]
    artifacts: dict[str, Any] = {}
    for folder in folders:
        artifact = Artifact.open(folder)
        if artifact.target.backend not in REPLAYABLE:
            continue
        int8 = artifact.target.precision.startswith("int8")
        if args.only_int8 and not int8:
            continue
        for cpu in cpus + (args.int8_cpus if int8 else []):
            record = recorded_replay(artifact.info, cpu, min(args.samples, len(data.eval)), environment) \
                if args.reuse else None
            reused = record is not None
            if record is None:
                try:
                    record = replay(folder, data, cpu=cpu, samples=args.samples, environment=environment)
                except EdgeDistillError as exc:  # the runtime cannot run on this CPU: a row that says so
                    print(f"{folder.name} on {cpu}: cannot run: {exc}", flush=True)
                    errors.setdefault(folder.name, {})[cpu] = str(exc)[:600]
                    continue
                record_verification(folder, record)
                artifact = Artifact.open(folder)
            row = {**summary(record), "backend": artifact.target.backend, "precision": artifact.target.precision,
                   "built_for": (artifact.info.get("device") or {}).get("target"),
                   "gate_override": artifact.target.tolerance.model_dump(exclude_none=True) or None,
                   "seconds": record["seconds"], "reused": reused,
                   "changed": record["changed"], "differ_from_checkpoint": record["differ_from_checkpoint"],
                   "gate": {k: record["gate"].get(k) for k in ("samples", "max_abs", "agreement",
                                                                "accuracy_drop_points", "passed")}}
            print(f"{folder.name} on {cpu}: {'passed' if row['passed'] else 'FAILED'}, agreement with x86 "
                  f"{row['agreement_x86']:.4f}, max |diff| {row['max_abs_diff']:.3g}, {row['seconds']} s", flush=True)
            if cpu == cpus[0]:
                artifacts[folder.name] = row
            else:
                artifacts[folder.name].setdefault("other_cpus", {})[cpu] = row
    record = environment.record
    summary_json = {
        "command": "unshare --net .venv/bin/python benchmarks/arm64.py " + shlex.join(sys.argv[1:]),
        "what": "numerics of each artifact on arm64 runtime kernels under qemu user-mode emulation; no latency",
        "workdirs": [str(w) for w in args.workdirs], "cpus": cpus, "int8_cpus": args.int8_cpus, "samples": args.samples,
        "network_interfaces": sorted(name for _, name in socket.if_nameindex()),
        "environment": {"qemu": record["qemu"]["version"], "python": record["python"],
                        "runtimes": record["runtimes"], "setup_seconds": record["build_seconds"],
                        "setup_steps_seconds": record["steps_seconds"],
                        "cpu_features": {cpu: record["cpus"][cpu]["features"] for cpu in cpus + args.int8_cpus},
                        "qemu_cpu": {cpu: record["cpus"][cpu].get("qemu_cpu", cpu) for cpu in cpus + args.int8_cpus}},
        "host": host_info(1),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "artifacts": artifacts,
        "could_not_run": errors,
        "note": args.note,
        "all_passed": all(a["passed"] and all(o["passed"] for o in a.get("other_cpus", {}).values())
                          for a in artifacts.values()),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps(summary_json, indent=2) + "\n", encoding="utf-8")
    (args.out / "summary.md").write_text(render(summary_json), encoding="utf-8")
    print(args.out / "summary.md")
    return 0 if summary_json["all_passed"] else 1


def render(summary: dict[str, Any]) -> str:
    env, host = summary["environment"], summary["host"]
    lines = [
        "# The default student's artifacts on arm64 (emulated)", "",
        f"`{summary['command']}`", "",
        "Each artifact's golden vectors and the first "
        f"{summary['samples']} SST-2 dev sentences, one row per call as an app feeds them, through the **x86** build "
        "and the **arm64** build of the same runtime release, compared with each other and with the PyTorch "
        "checkpoint under the artifact's own gate. **Numerics under qemu user-mode emulation: no latency was "
        "taken** (the seconds are the arm64 replay's under emulation, not a phone's).", "",
        f"arm64: {env['qemu']}, Debian's Python {env['python']}, "
        + ", ".join(f"{k} {v}" for k, v in env["runtimes"].items()) + " (aarch64 wheels); "
        + "; ".join(f"CPU `{cpu}` (`-cpu {env.get('qemu_cpu', {}).get(cpu, cpu)}`): "
                    f"{' '.join(f for f in features if f in ('asimd', 'asimddp', 'i8mm', 'sve', 'sve2', 'bf16', 'sme'))}"
                    for cpu, features in env["cpu_features"].items()) + ".",
        f"x86: {host['cpu']} ({', '.join(host['isa'])}), {host['logical_cores']} cores; one thread per run. "
        f"Network during the replays: {', '.join(summary['network_interfaces'])} only.",
        f"This environment's build (`edgedistill arm64 setup`) took {env['setup_seconds']} s.", "",
        "| artifact | built for | golden reproduced | agreement with x86 | agreement with checkpoint | max \\|diff\\| vs x86 "
        "| answers changed vs x86 | gate on arm64 | arm64 seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in summary["artifacts"].items():
        for cpu, entry in [(summary["cpus"][0], row), *row.get("other_cpus", {}).items()]:
            checkpoint = f"{entry['agreement_checkpoint']:.2%}" if entry["agreement_checkpoint"] is not None else "n/a"
            override = f" (gate override {row['gate_override']})" if row.get("gate_override") else ""
            lines.append(f"| {name}{'' if cpu == summary['cpus'][0] else f' ({cpu})'}{override} | {row['built_for']} | "
                         f"{'yes' if entry['golden_reproduced'] else 'NO'} | {entry['agreement_x86']:.2%} | "
                         f"{checkpoint} | {entry['max_abs_diff']:.2g} | {entry['changed_count']} | "
                         f"{'passed' if entry['passed'] else 'FAILED: ' + '; '.join(entry['failures'])} | "
                         f"{entry['seconds']} |")
    for name, by_cpu in summary.get("could_not_run", {}).items():
        for cpu, error in by_cpu.items():
            why = ("SIGILL: this build of the runtime needs a CPU feature the CPU lacks" if "needs a CPU feature" in error
                   else error[:160])
            lines.append(f"| {name} ({cpu}) | | could not run: {why} | | | | | | |")
    changed = [(name, c) for name, row in summary["artifacts"].items() for c in row["changed"]]
    if changed:
        lines += ["", "Sentences answered differently on arm64 than on x86:", ""]
        lines += [f"- {name} row {c['row']}: {json.dumps(c['text'][:90], ensure_ascii=False)}: x86 {c['x86']} -> "
                  f"arm64 {c['arm64']}" for name, c in changed]
    if summary.get("note"):
        lines += ["", summary["note"]]
    lines += ["", f"Host: {host['cpu']}, {host['os']}, Python {host['python']}. Finished {summary['finished']}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
