"""Replay an artifact on arm64: the inputs a phone would feed it, through the arm64 build of its runtime under qemu,
beside the same inputs through the host's x86 build and the PyTorch checkpoint it came from.

What is replayed: the artifact's golden vectors (``golden.json``: recorded ids, masks and outputs) and the first
N eval sentences (default 256), one row per call as an app runs them (TFLite padded to the smallest bucket
signature that holds the row, ONNX at the row's own length). Both instruction sets run
:mod:`edgedistill.emulation.replay_worker` on identical feeds, so a difference is the kernels' alone.

The verdict: every golden output reproduces within ``golden.json``'s tolerance, and the arm64 outputs pass the
artifact's own gate (:meth:`edgedistill.tasks.base.Task.judge`, the export gate's bounds) against the checkpoint
on those sentences. Whatever the verdict, every sentence whose answer differs between x86 and arm64 is named.
The result is recorded in ``artifact.json`` (``verified_on``) and the model card; nothing is timed: an emulated
clock says nothing about a phone's.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.core.errors import ConfigError, EdgeDistillError, VerificationError
from edgedistill.core.arm_cpus import DEFAULT_CPU
from edgedistill.core.target_options import target_options
from edgedistill.data.encoding import (Example, bucket_for, pad_to, signature_name, stack_rows, token_ids,
                                       without_padding)
from edgedistill.data.segments import segment_ids, sep_token_id
from edgedistill.emulation.environment import WORKER, Arm64Environment
from edgedistill.export.backends.base import Artifact

log = logging.getLogger("edgedistill.arm64")

REPLAYABLE = ("tflite", "onnx")
DEFAULT_SAMPLES = 256
EMULATION_NOTE = ("numerics under qemu user-mode emulation of the CPU named, on this host; no latency was taken "
                  "(an emulated clock says nothing about a phone's)")
CHANGED_LISTED = 20  # sentences named in a record and a message; the count is always complete


@dataclass
class Feeds:
    """The replayed inputs: golden cases first, then eval sentences; one row each, at the shape the file takes."""

    arrays: dict[str, np.ndarray]  # "<feed>/<input name>", as replay_worker reads them
    signatures: list[str]  # the TFLite signature of each feed ("" for ONNX)
    masks: list[np.ndarray]  # each feed's attention mask, [1, width]
    golden: int  # how many of the feeds are golden cases
    width: int  # the longest row: what per-token outputs are stacked to

    def __len__(self) -> int:
        return len(self.masks)


def build_feeds(artifact: Artifact, tokenizer: Any, golden: dict[str, Any] | None,
                inputs: Sequence[Example]) -> Feeds:
    """The golden cases' recorded rows, then the eval sentences tokenized as the artifact's runner feeds them: a
    TFLite row zero-padded to its bucket (the signature's other batch rows zero, as the runner stages them), an
    ONNX row at its own length with the token types the runner derives."""
    target = artifact.target
    fixed = target.backend == "tflite"
    options = target_options(target)
    buckets = sorted(options.buckets) if fixed else []
    batch = int(options.batch) if fixed else 1
    max_length = int(artifact.info.get("max_length", 128))
    longest = min(max_length, buckets[-1]) if fixed else max_length
    sep = None if fixed else sep_token_id(artifact.path)
    cases = (golden or {}).get("cases", [])
    rows = [(np.asarray([c["input_ids"]], np.int64), np.asarray([c["attention_mask"]], np.int64),
             np.asarray([c["token_type_ids"]], np.int64) if "token_type_ids" in c else None) for c in cases]
    for example in inputs:
        ids = token_ids(tokenizer, example, longest)
        rows.append((*pad_to(ids, bucket_for(len(ids), buckets) if fixed else len(ids), dtype=np.int64), None))
    feeds = Feeds({}, [], [], len(cases), longest)
    for number, (row, mask, types) in enumerate(rows):
        for name, value in (("input_ids", row), ("attention_mask", mask)):
            staged = np.zeros((batch, row.shape[1]), np.int64)
            staged[:1] = value
            feeds.arrays[f"{number}/{name}"] = staged
        if not fixed:
            derived = segment_ids(row, sep) if sep is not None else np.zeros_like(row)
            feeds.arrays[f"{number}/token_type_ids"] = types if types is not None else derived
        feeds.signatures.append(signature_name(row.shape[1]) if fixed else "")
        feeds.masks.append(mask)
    return feeds


def run_worker(python: list[str], site: Path | None, artifact: Artifact, feeds: Feeds, folder: Path, *,
               threads: int, label: str) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Run :mod:`replay_worker` with ``python`` (a command line; ``site``: the folder its packages are in) on
    ``feeds``: each feed's output (its first row) and the worker's record of what ran. A crash is an error naming
    ``label`` and the worker's last words."""
    from tqdm.auto import tqdm

    from edgedistill.core.registry import FORMATS

    backend = artifact.target.backend
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "feeds.npz", **feeds.arrays)
    request = {"backend": backend, "model": str(artifact.path / FORMATS[backend].model_file), "threads": threads,
               "site": str(site) if site else None, "feeds": str(folder / "feeds.npz"),
               "signatures": feeds.signatures, "weight_cache": str(folder / "weights.xnnpack"),
               "out": str(folder / "outputs.npz"), "info": str(folder / "info.json")}
    (folder / "request.json").write_text(json.dumps(request), encoding="utf-8")
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                   "HOME": os.environ.get("HOME", "/tmp")}
    with open(folder / "stderr.txt", "w+", encoding="utf-8", errors="replace") as errors, \
            tqdm(total=len(feeds), desc=label, unit="input", leave=False) as bar:
        worker = subprocess.Popen([*python, str(WORKER), str(folder / "request.json")], stdout=subprocess.PIPE,
                                  stderr=errors, text=True, env=environment)
        assert worker.stdout is not None
        for line in worker.stdout:
            if line.startswith("progress "):
                bar.n = int(line.split()[1])
                bar.refresh()
        code = worker.wait()
        if code != 0:
            errors.seek(0)
            tail = " | ".join(line.strip() for line in errors.read().strip().splitlines()[-4:])
            how = f"signal {-code}" if code < 0 else f"exit {code}"
            if code == -4:  # SIGILL
                how += (", illegal instruction: this build of the runtime needs a CPU feature the emulated CPU "
                        "lacks")
            raise EdgeDistillError(f"{artifact.path}: the {label} run of {FORMATS[backend].model_file} failed "
                                   f"({how}): {tail}")
    with np.load(folder / "outputs.npz") as archive:
        outputs = [archive[str(number)][:1] for number in range(len(feeds))]
    return outputs, json.loads((folder / "info.json").read_text(encoding="utf-8"))


def replay(path: Path, data: Any, *, cpu: str = DEFAULT_CPU, samples: int | None = DEFAULT_SAMPLES,
           threads: int = 1, environment: Arm64Environment | None = None) -> dict[str, Any]:
    """Replay the artifact in ``path`` on arm64 (``cpu``) and x86, judge it, and return the ``verified_on``
    record (not yet written: :func:`record_verification`). Raises before running anything when the artifact's
    files do not match their record, its backend has no arm64 runtime here, or its source changed."""
    from transformers import AutoTokenizer

    from edgedistill.core.host import host_info
    from edgedistill.export.golden import read_golden
    from edgedistill.export.model_files import source_hash
    from edgedistill.export.stage import check_files
    from edgedistill.tasks import task_of_artifact

    artifact = Artifact.open(path)
    target = artifact.target
    if target.backend not in REPLAYABLE:
        raise ConfigError(f"{path}: a {target.backend} artifact has no arm64 runtime to replay it here "
                          f"(arm64 replay runs {' and '.join(REPLAYABLE)}; Core ML runs on Apple's own runtime, "
                          "macOS or iOS, and is checked at export by the labelled Core ML emulation)")
    environment = environment or Arm64Environment.load()
    environment.cpu_record(cpu)
    problems = check_files(artifact)
    if problems:
        raise VerificationError(f"{path}: the artifact does not match its record, nothing was replayed:\n  "
                                + "\n  ".join(problems))
    source = Path(artifact.info["source"]["path"])
    has_source = source.is_dir()
    if has_source and source_hash(source) != artifact.info["source"]["sha256"]:
        raise VerificationError(f"{path}: its source model {source} changed since export; re-export it")
    task = task_of_artifact(artifact.info)
    tokenizer = AutoTokenizer.from_pretrained(path)
    golden = read_golden(path)
    inputs = list(data.eval.inputs[:samples] if samples else data.eval.inputs)
    feeds = build_feeds(artifact, tokenizer, golden, inputs)
    log.info("replay %s: %d golden cases and %d eval sentences on x86 and on arm64 %s (qemu)", path.name,
             feeds.golden, len(inputs), cpu)
    with tempfile.TemporaryDirectory(prefix="edgedistill-replay-") as scratch:
        x86, x86_info = run_worker([sys.executable, "-I"], None, artifact, feeds, Path(scratch) / "x86",
                                   threads=threads, label="x86")
        arm, arm_info = run_worker(environment.python(cpu), environment.site, artifact, feeds,
                                   Path(scratch) / "arm64", threads=threads, label=f"arm64 {cpu} (qemu)")
    real = [without_padding(o, m) for o, m in zip(arm, feeds.masks, strict=True)]
    on_x86 = [without_padding(o, m) for o, m in zip(x86, feeds.masks, strict=True)]
    host = host_info()
    golden_failures = _golden_failures(golden, arm, task) if golden else []
    arm_eval = stack_rows(real[feeds.golden:], feeds.width)
    x86_eval = stack_rows(on_x86[feeds.golden:], feeds.width)
    gold = task.gold(data.eval, tokenizer, feeds.width)[: len(inputs)]
    reference = _checkpoint_outputs(source, feeds, threads) if has_source else x86_eval
    tolerance = task.tolerance(target.precision, target.tolerance)
    gate = task.judge(reference, arm_eval, gold, tolerance, data.label_names)
    changed = task.differing_rows(x86_eval, arm_eval, gold)
    moved = [row for row in task.differing_rows(reference, arm_eval, gold) if row not in changed] \
        if has_source and not gate.passed else []
    record = {
        **environment.describe(cpu),
        "runtimes": arm_info["versions"],
        "xnnpack_weight_cache": arm_info.get("xnnpack_weight_cache", False),
        "x86": {"cpu": host["cpu"], "isa": host["isa"], "runtimes": x86_info["versions"]},
        "threads": threads,
        "samples": len(inputs),
        "golden_cases": feeds.golden,
        "golden_reproduced": feeds.golden > 0 and not golden_failures,
        "golden_failures": golden_failures,
        "agreement_x86": task.agreement(x86_eval, arm_eval, gold),
        "agreement_checkpoint": task.agreement(reference, arm_eval, gold) if has_source else None,
        "max_abs_diff": max(float(np.max(np.abs(a - b))) if a.size else 0.0 for a, b in zip(real, on_x86, strict=True)),
        "reference": "checkpoint" if has_source else f"the x86 run (source model {source} not found)",
        "gate": gate.as_dict(),
        "changed_count": len(changed),
        "changed": [_change(inputs[row], x86_eval[row], arm_eval[row], task, data.label_names, feeds, row)
                    for row in changed[:CHANGED_LISTED]],
        # a failed gate: the sentences whose arm64 answer is not the checkpoint's (x86 answers the same way)
        "differ_from_checkpoint": [_change(inputs[row], reference[row], arm_eval[row], task, data.label_names,
                                           feeds, row, first="checkpoint") for row in moved[:CHANGED_LISTED]],
        "seconds": arm_info["seconds"],
        "verified": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "note": EMULATION_NOTE,
    }
    record["failures"] = golden_failures[:CHANGED_LISTED] + gate.failures
    record["passed"] = bool(record["golden_reproduced"] or not golden) and gate.passed
    return record


def _golden_failures(golden: dict[str, Any], outputs: list[np.ndarray], task: Any) -> list[str]:
    """Each golden case whose arm64 output is not the recorded one within ``golden.json``'s tolerance."""
    from edgedistill.export.golden import golden_difference

    tolerance = float(golden["tolerance"]["max_abs"])
    problems = []
    for number, case in enumerate(golden["cases"]):
        diff = golden_difference(case, outputs[number][0], task)
        if not diff <= tolerance:
            problems.append(f"golden case {number} ({case['kind']}): {task.output_names()[0]} differ from the "
                            f"recorded ones by {diff:.3g} > {tolerance:g}")
    return problems


def _checkpoint_outputs(source: Path, feeds: Feeds, threads: int) -> np.ndarray:
    """The PyTorch checkpoint on the eval feeds (their first rows), stacked as the replayed outputs are."""
    from edgedistill.export.backends.pytorch import PyTorchRunner

    runner = PyTorchRunner(source, threads)
    rows = []
    for number in range(feeds.golden, len(feeds)):
        ids, mask = feeds.arrays[f"{number}/input_ids"][:1], feeds.arrays[f"{number}/attention_mask"][:1]
        rows.append(without_padding(runner.predict(ids, mask), mask))
    return stack_rows(rows, feeds.width)


def _change(example: Example, x86: np.ndarray, arm: np.ndarray, task: Any, label_names: list[str], feeds: Feeds,
            row: int, first: str = "x86") -> dict[str, Any]:
    """One sentence whose answer differs on arm64 from ``first``'s (the x86 run, or the checkpoint): its text and
    both answers."""
    tokens = int(feeds.masks[feeds.golden + row].sum())
    text, pair = example if isinstance(example, tuple) else (example, None)
    cut = (lambda output: output[:tokens]) if x86.ndim > 1 else (lambda output: output)
    return {"row": row, "text": text, **({"text_pair": pair} if pair is not None else {}),
            first: task.describe_output(cut(x86), label_names), "arm64": task.describe_output(cut(arm), label_names)}


def record_verification(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Store ``record`` in the artifact's ``artifact.json`` ``verified_on`` (replacing the one of the same ISA and
    CPU) and refresh its model card; ``artifact.json`` and the card are outside the artifact's file hashes."""
    from edgedistill.core.atomic import write_json_atomic
    from edgedistill.export.backends.base import ARTIFACT_FILE
    from edgedistill.export.golden import read_golden
    from edgedistill.export.model_card import write_card

    artifact = Artifact.open(path)
    info = dict(artifact.info)
    kept = [r for r in info.get("verified_on", []) if (r.get("isa"), r.get("cpu")) != (record["isa"], record["cpu"])]
    info["verified_on"] = [*kept, record]
    write_json_atomic(Path(path) / ARTIFACT_FILE, info)
    write_card(Path(path), info, read_golden(Path(path)))
    return info


def recorded_replay(info: dict[str, Any], cpu: str, samples: int, environment: Arm64Environment
                    ) -> dict[str, Any] | None:
    """The replay an ``artifact.json`` record already holds for ``cpu`` that running again here would repeat: the
    same CPU features, runtime versions, sample count and XNNPACK weight-cache use (a re-export writes a new
    ``artifact.json``, so a record always belongs to the files beside it)."""
    tflite = info["target"]["backend"] == "tflite"
    return next((record for record in info.get("verified_on", [])
                 if record.get("cpu") == cpu and record.get("samples") == samples
                 and record.get("cpu_features") == environment.record["cpus"][cpu]["features"]
                 and record.get("runtimes", {}).items() <= environment.record["runtimes"].items()
                 and record.get("xnnpack_weight_cache", False) == tflite), None)


SUMMARY_KEYS = ("isa", "cpu", "passed", "golden_reproduced", "agreement_x86", "agreement_checkpoint", "max_abs_diff",
                "changed_count", "samples", "failures", "seconds")


def summary(record: dict[str, Any]) -> dict[str, Any]:
    """The headline fields of a ``verified_on`` record (a run's manifest, a benchmark's table)."""
    return {key: record.get(key) for key in SUMMARY_KEYS}


def describe_failure(path: Path, record: dict[str, Any]) -> str:
    """A failed replay as a message: every failure, then the sentences whose answers changed."""
    lines = [f"{path}: not verified on arm64 {record['cpu']} (emulated): " + "; ".join(record["failures"])]
    if record["changed_count"]:
        lines.append(f"{record['changed_count']} of {record['samples']} eval sentences answer differently on arm64 "
                     "than on x86" + (f" (the first {CHANGED_LISTED})" if record["changed_count"] > CHANGED_LISTED
                                      else "") + ":")
        lines += [_change_line(c, "x86") for c in record["changed"]]
    if record.get("differ_from_checkpoint"):
        lines.append("eval sentences answered differently from the checkpoint on arm64 (and the same on x86):")
        lines += [_change_line(c, "checkpoint") for c in record["differ_from_checkpoint"]]
    return "\n".join(lines)


def _change_line(change: dict[str, Any], first: str) -> str:
    return (f"  row {change['row']}: {json.dumps(change['text'][:80], ensure_ascii=False)}: {first} "
            f"{change[first]} -> arm64 {change['arm64']}")
