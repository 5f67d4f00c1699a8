"""How much the pad rows of bucketed calibration widen each linear layer's activation range (TFLite, ONNX).

    .venv/bin/python benchmarks/calibration_padding.py --model runs/default/student   # ~10 s

A bucketed TFLite signature pads each calibration sentence to its bucket (ONNX's histogram calibrators, to
max_length); the attention mask hides the pad rows from every real token, but their values still reach a
range unless it is taken over the real tokens (``calibration_padding: exclude``). This runs the PyTorch model
the TFLite int8-static export traces (the last layer on its [CLS] row, outlier channels split on both sides as
the profile plans them) on the same calibration sentences, once at each sentence's own length and once padded
to its bucket, and reports each linear layer's input and output range (max - min) both ways, and how many
sentences each bucket holds. Writes benchmarks/results/calibration-padding.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst2"
RESULTS = ROOT / "benchmarks" / "results"


def measure(model_dir: Path) -> dict[str, Any]:
    import torch
    from torch import nn
    from transformers import AutoTokenizer

    from edgedistill.core.config import load_config
    from edgedistill.data.encoding import bucket_for, pad_to, token_ids
    from edgedistill.data.task_data import load_task_data
    from edgedistill.quant.cls_pruning import load_for_export
    from edgedistill.quant.outlier_split import apply_plan, find_outlier_channels
    from edgedistill.core.target_options import target_options
    from edgedistill.core.targets import load_target

    config = load_config(overrides={"data.dataset": str(DATA)})
    inputs = load_task_data(config.data, seed=config.seed).calibration_inputs(config.data.calibration_samples,
                                                                               config.seed)
    profile = load_target("tflite-int8-static")
    options = target_options(profile)
    buckets = options.buckets
    model = load_for_export(model_dir, profile.cls_only_last_layer)[0].eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    apply_plan(model, {side: find_outlier_channels(model, tokenizer, inputs, buckets[-1], options.outlier_split_ratio,
                                                   side=side, skip_last=2 if options.float_head else 0)
                       for side in options.outlier_split_sides})
    extremes: dict[str, dict[str, list[float]]] = {}
    mode = ""

    def observer(name: str):
        def hook(module: nn.Module, args: Any, output: torch.Tensor) -> None:
            for side, value in (("input", args[0]), ("output", output)):
                low, high = extremes.setdefault(name, {}).setdefault(f"{mode} {side}", [float("inf"), -float("inf")])
                extremes[name][f"{mode} {side}"] = [min(low, float(value.min())), max(high, float(value.max()))]
        return hook

    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            module.register_forward_hook(observer(name))
    encoded = [token_ids(tokenizer, x, buckets[-1]) for x in inputs]
    lengths = [len(ids) for ids in encoded]
    with torch.no_grad():
        for mode in ("real", "padded"):
            for ids in encoded:
                width = len(ids) if mode == "real" else bucket_for(len(ids), buckets)
                row, mask = (torch.from_numpy(a) for a in pad_to(ids, width, dtype="int64"))
                model(input_ids=row, attention_mask=mask)
    layers = []
    for name, seen in extremes.items():
        entry: dict[str, Any] = {"layer": name}
        for side in ("input", "output"):
            real, padded = seen[f"real {side}"], seen[f"padded {side}"]
            entry[side] = {"real_tokens": [round(v, 3) for v in real], "padded": [round(v, 3) for v in padded],
                           "widening": round((padded[1] - padded[0]) / (real[1] - real[0]), 3)}
        layers.append(entry)
    return {"model": str(model_dir), "calibration_sentences": len(inputs), "buckets": buckets,
            "sentences_per_bucket": {str(b): n for b, n in
                                     sorted(Counter(bucket_for(n, buckets) for n in lengths).items())},
            "layers": layers}


def render(report: dict[str, Any]) -> str:
    per_bucket = ", ".join(f"{n} in the {b}-token bucket" for b, n in report["sentences_per_bucket"].items())
    lines = ["# Pad rows and calibration ranges", "",
             f"`{report['command']}`: {report['calibration_sentences']} calibration sentences ({per_bucket}), "
             "the TFLite int8-static export's PyTorch graph (outliers split). Widening: range (max - min) with each "
             "sentence padded to its bucket over the range on its real tokens alone.", "",
             "| layer | input widening | output widening | input range, real tokens | output range, real tokens |",
             "| --- | --- | --- | --- | --- |"]
    for entry in report["layers"]:
        lines.append(f"| {entry['layer']} | {entry['input']['widening']:.2f}x | {entry['output']['widening']:.2f}x "
                     f"| {entry['input']['real_tokens']} | {entry['output']['real_tokens']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "runs" / "default" / "student")
    args = parser.parse_args()
    report = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), **measure(args.model)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "calibration-padding.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "calibration-padding.md").write_text(render(report))
    print(render(report))


if __name__ == "__main__":
    main()
