"""Why the emulated `max` CPU runs with SME off: one artifact replayed under qemu with SME on and off, and under
another qemu binary, against its own x86 run and golden vectors.

    .venv/bin/python benchmarks/arm64_sme.py runs/default/artifacts/student-onnx-int8-dynamic \
        --data ../shared/data/sst2 [--qemu /path/to/qemu-10/qemu-aarch64]

A newer qemu without installing it: Debian's bookworm-backports `qemu-user` (10.0), fetched with apt-get into a
private state and unpacked, as `edgedistill arm64 setup` fetches the arm64 packages:

    echo "deb http://deb.debian.org/debian bookworm-backports main" > /tmp/bp/sources.list
    apt-get -o Dir::State::Lists=/tmp/bp/lists -o Dir::Cache=/tmp/bp/cache -o Dir::Etc::SourceList=/tmp/bp/sources.list \
        -o Dir::Etc::SourceParts=/nonexistent -o Debug::NoLocking=1 update    # then `download qemu-user`, dpkg-deb -x

Each configuration runs the artifact's golden vectors and the first ``--samples`` eval sentences through
:mod:`edgedistill.emulation.replay_worker` (the replay's own worker, on the environment's arm64 Python and wheels);
writes benchmarks/results/arm64/sme.json and .md: max |difference| from the golden logits, agreement with the
x86 run. Numerics only.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "arm64"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--data", default="../shared/data/sst2")
    parser.add_argument("--qemu", action="append", default=[], help="another qemu-aarch64 binary (repeatable)")
    parser.add_argument("--samples", type=int, default=256)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from edgedistill.core.config import load_config
    from edgedistill.emulation.environment import PYTHON, Arm64Environment
    from edgedistill.emulation.replay import build_feeds, run_worker
    from edgedistill.export.backends.base import Artifact
    from edgedistill.export.golden import golden_difference, read_golden
    from edgedistill.tasks import load_data, task_of_artifact

    environment = Arm64Environment.load()
    artifact = Artifact.open(args.artifact)
    task = task_of_artifact(artifact.info)
    golden = read_golden(artifact.path)
    data = load_data(load_config(overrides={"data.dataset": args.data}))
    feeds = build_feeds(artifact, AutoTokenizer.from_pretrained(artifact.path), golden,
                        data.eval.inputs[: args.samples])
    root = environment.root / "cpus" / "max"
    qemus = [(environment.record["qemu"]["path"], environment.record["qemu"]["version"])]
    qemus += [(q, _version(q)) for q in args.qemu]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        x86, _ = run_worker([sys.executable, "-I"], None, artifact, feeds, Path(scratch) / "x86", threads=1,
                            label="x86")
        for qemu, version in qemus:
            for cpu in ("max", "max,sme=off", "cortex-a76"):
                python = [qemu, "-cpu", cpu, "-L", str(root if cpu.startswith("max") else root.parent / cpu),
                          str(environment.root / "sysroot" / PYTHON), "-I"]
                arm, info = run_worker(python, environment.site, artifact, feeds, Path(scratch) / cpu, threads=1,
                                       label=f"{cpu} ({version.split()[2]})")
                golden_diff = max(golden_difference(c, arm[i][0], task) for i, c in enumerate(golden["cases"]))
                eval_rows = range(feeds.golden, len(feeds))
                agreement = float(np.mean([task.agreement(x86[i], arm[i]) for i in eval_rows]))
                rows.append({"qemu": version, "cpu": cpu, "golden_max_abs_diff": round(golden_diff, 4),
                             "agreement_x86": round(agreement, 4), "sentences": len(eval_rows)})
                print(rows[-1], flush=True)
    result = {"command": "python benchmarks/arm64_sme.py " + shlex.join(sys.argv[1:]), "artifact": str(args.artifact),
              "runtimes": environment.record["runtimes"], "rows": rows,
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sme.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = ["# SME on and off under qemu", "", f"`{result['command']}`", "",
             f"{args.artifact.name}: golden vectors and {rows[0]['sentences']} SST-2 dev sentences, arm64 "
             f"({', '.join(f'{k} {v}' for k, v in result['runtimes'].items())}) against the x86 run. Numerics "
             "under emulation, no latency.", "",
             "| qemu | -cpu | max \\|diff\\| from golden | agreement with x86 |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['qemu']} | `{r['cpu']}` | {r['golden_max_abs_diff']} | {r['agreement_x86']:.2%} |" for r in rows]
    (OUT / "sme.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(OUT / "sme.md")
    return 0


def _version(qemu: str) -> str:
    import subprocess

    return subprocess.run([qemu, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]


if __name__ == "__main__":
    sys.exit(main())
