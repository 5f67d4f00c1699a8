"""The tokenizer inside the ONNX graph, on SST-2: token ids and logits of model_with_tokenizer.onnx.

    .venv/bin/python benchmarks/tokenizer_graph.py      # after `edgedistill distill`, ~2 min

Exports the distilled student (runs/default/student) to ONNX fp32, int8-dynamic and int8-static, each with
`with_tokenizer: true`, through `export_target` (so each passes its usual gate and then the string gate:
on all SST-2 dev sentences and the golden hard cases, the graph's token ids against the Hugging Face
tokenizer's and its logits against model.onnx's fed the same batch). Writes
benchmarks/results/tokenizer-graph.{json,md}.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from edgedistill.core.config import load_config
from edgedistill.data.task_data import load_task_data
from edgedistill.export.stage import ExportSettings, export_target
from edgedistill.core.host import host_info
from edgedistill.core.logs import configure_console
from edgedistill.core.targets import load_target

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst2"
TARGETS = ("onnx-fp32", "onnx-int8-dynamic", "onnx-int8-static")


def main() -> None:
    configure_console()
    config = load_config(overrides={"data.dataset": str(DATA)})
    data = load_task_data(config.data, seed=config.seed)
    settings = ExportSettings.from_config(config)
    results = {}
    with tempfile.TemporaryDirectory(prefix="edgedistill-tokenizer-graph-") as scratch:
        for name in TARGETS:
            target = load_target(name)
            target = target.model_copy(update={"name": f"{name}-with-tokenizer",
                                               "options": {**target.options, "with_tokenizer": True}})
            artifact = export_target(ROOT / "runs" / "default" / "student", target, data, Path(scratch) / name,
                                     settings)
            parity = artifact.info["parity"]
            results[target.name] = {"agreement": parity["agreement"], "accuracy": parity["artifact_accuracy"],
                                    "text_model": parity["text_model"]}
    out = {"command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]), "eval_sentences": len(data.eval),
           "host": host_info(config.threads), "artifacts": results}
    folder = ROOT / "benchmarks" / "results"
    (folder / "tokenizer-graph.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    lines = ["# The tokenizer inside the ONNX graph (SST-2 student)", "",
             f"`{out['command']}`; {len(data.eval)} dev sentences plus the golden hard cases.", "",
             "| artifact | id-model gate agreement | texts | token ids equal | max logit diff vs model.onnx |",
             "| --- | --- | --- | --- | --- |"]
    for name, r in results.items():
        t = r["text_model"]
        lines.append(f"| {name} | {r['agreement']:.2%} | {t['texts']} | {t['token_ids_equal']} | "
                     f"{t['max_abs_vs_id_model']:.2g} |")
    (folder / "tokenizer-graph.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
