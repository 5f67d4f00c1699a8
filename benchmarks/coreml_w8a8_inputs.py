"""Where Core ML W8A8 loses labels, and what the input outlier split buys: an ablation on the emulator.

    .venv/bin/python benchmarks/coreml_w8a8_inputs.py     # after `edgedistill distill`, ~10 min

Exports the distilled student (runs/default/student) to `coreml-int8-static` twice, with the input
outlier split off (`outlier_split_ratio: 0`) and on (the default, 8), and runs both on all SST-2 dev
sentences in the numpy ML Program emulator against the PyTorch student's logits: labels changed and mean
|logit error|. For the unsplit package it then leaves each quantized linear input in fp16 in turn (its
quantize op made a pass-through) and measures the same, so the table says which input costs the most.
Writes benchmarks/results/coreml-w8a8-inputs.{json,md}.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgedistill.export.backends.base import Calibration
from edgedistill.export.backends.coreml import BACKEND, MODEL_FILE
from edgedistill.export.backends.mil_emulator import MILEmulator
from edgedistill.export.backends.pytorch import PyTorchRunner
from edgedistill.core.config import load_config
from edgedistill.data.encoding import bucket_for, pad_to, token_ids
from edgedistill.data.task_data import load_task_data
from edgedistill.core.host import host_info
from edgedistill.core.targets import load_target

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst2"
STUDENT = ROOT / "runs" / "default" / "student"


def main() -> None:
    from transformers import AutoTokenizer

    config = load_config(overrides={"data.dataset": str(DATA)})
    data = load_task_data(config.data, seed=config.seed)
    tokenizer = AutoTokenizer.from_pretrained(STUDENT)
    encoded = [token_ids(tokenizer, x, 128) for x in data.eval.inputs]
    reference = np.concatenate([PyTorchRunner(STUDENT, config.threads).predict(np.asarray([ids]),
                                                                              np.ones((1, len(ids)), np.int64))
                                for ids in encoded])
    calibration = Calibration(data.calibration_inputs(config.data.calibration_samples, config.seed), 128)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="edgedistill-coreml-ablation-") as scratch:
        for label, ratio in (("unsplit", 0.0), ("split", 8.0)):
            target = load_target("coreml-int8-static")
            target = target.model_copy(update={"options": {**target.options, "outlier_split_ratio": ratio}})
            out = Path(scratch) / label
            out.mkdir()
            BACKEND.export(STUDENT, target, calibration, out)
            emulator = MILEmulator(out / MODEL_FILE)
            samples = [_bucketed(ids, target.options.get("buckets", [32, 64, 128])) for ids in encoded]
            results[label] = {"outlier_split_ratio": ratio, **_score(emulator, samples, reference)}
            if label == "unsplit":
                results[label]["fp16_one_input"] = _ablation(emulator, samples, reference)
            print(label, {k: v for k, v in results[label].items() if k != "fp16_one_input"}, flush=True)
    out = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "eval_sentences": len(data.eval),
           "host": host_info(config.threads), "results": results}
    folder = ROOT / "benchmarks" / "results"
    (folder / "coreml-w8a8-inputs.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    (folder / "coreml-w8a8-inputs.md").write_text(_markdown(out), encoding="utf-8")


def _bucketed(ids: list[int], buckets: list[int]) -> dict[str, np.ndarray]:
    return dict(zip(("input_ids", "attention_mask"), pad_to(ids, bucket_for(len(ids), sorted(buckets)))))


def _score(emulator: MILEmulator, samples: list[dict], reference: np.ndarray) -> dict:
    logits = np.stack([emulator.run(s)["logits"][0] for s in samples])
    return {"labels_changed": int((logits.argmax(1) != reference.argmax(1)).sum()),
            "agreement": round(float((logits.argmax(1) == reference.argmax(1)).mean()), 4),
            "mean_abs_logit_error": round(float(np.abs(logits - reference).mean()), 4)}


def _ablation(emulator: MILEmulator, samples: list[dict], reference: np.ndarray) -> list[dict]:
    """Each quantized input left in fp16 in turn: its quantize step passes the value through (as float
    on the integer grid's scale, so the following dequantize returns it unchanged)."""
    consumers = {}  # dequantize output -> the linear layer's weight it feeds
    for op_type, _, bindings, _ in emulator.steps:
        if op_type == "linear":
            consumers[bindings["x"]] = bindings["weight"]
    rows = []
    original = list(emulator.steps)
    for index, (op_type, _, bindings, outputs) in enumerate(original):
        if op_type != "quantize":
            continue
        dequantized = next(o[0][0] for t, _, b, o in original if t == "dequantize" and b["input"] == outputs[0][0])

        def passthrough(a: dict) -> np.ndarray:
            scale = np.asarray(a["scale"], np.float32)
            return a["input"].astype(np.float32) / scale + np.asarray(a.get("zero_point", 0), np.float32)

        emulator.steps = [*original[:index], (op_type, passthrough, bindings, [(outputs[0][0], np.float32)]),
                          *original[index + 1:]]
        try:
            rows.append({"input": bindings["input"], "feeds": consumers.get(dequantized, "?"),
                         **_score(emulator, samples, reference)})
        finally:
            emulator.steps = original
        print(rows[-1], flush=True)
    return rows


def _markdown(out: dict) -> str:
    unsplit, split = out["results"]["unsplit"], out["results"]["split"]
    lines = ["# Core ML W8A8 on the SST-2 student: which quantized input costs labels (emulated)", "",
             f"`{out['command']}`; {out['eval_sentences']} dev sentences; numpy ML Program emulator, not Core ML.",
             "", "| package | labels changed | agreement | mean abs logit error |", "| --- | --- | --- | --- |",
             f"| input outlier split off | {unsplit['labels_changed']} | {unsplit['agreement']:.2%} | "
             f"{unsplit['mean_abs_logit_error']} |",
             f"| input outlier split on (ratio 8) | {split['labels_changed']} | {split['agreement']:.2%} | "
             f"{split['mean_abs_logit_error']} |", "",
             "Split off, each quantized linear input left in fp16 in turn:", "",
             "| quantized input | feeds | labels changed | mean abs logit error |", "| --- | --- | --- | --- |"]
    lines += [f"| `{r['input']}` | `{r['feeds']}` | {r['labels_changed']} | {r['mean_abs_logit_error']} |"
              for r in sorted(unsplit["fp16_one_input"], key=lambda r: r["mean_abs_logit_error"])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
