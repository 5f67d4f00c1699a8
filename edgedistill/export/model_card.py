"""The model card of an artifact: ``README.md`` in its folder, with the Hugging Face model-card YAML header.

It says what the file is, where it came from, its inputs and outputs exactly as the file names them, its
labels, the parity gate's numbers, its integer coverage, the last benchmark on this host when there is
one, and how to load it — Python for every backend, Kotlin for LiteRT, Swift for Core ML. What the outputs
are and the snippets that read them are the task's (:meth:`edgedistill.tasks.base.Task.card`); the README's
examples are generated from the same templates (``edgedistill.export.model_card.readme_examples``; a test keeps
the two in step).

The card is documentation, rewritten when a benchmark adds its numbers, so it is not among the hashed
files of ``artifact.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgedistill.core.registry import FORMATS
from edgedistill.core.target_options import parse_options
from edgedistill.export.golden import INPUT_DTYPE
from edgedistill.tasks import DEFAULT_TASK, get_task, task_of_artifact

CARD_FILE = "README.md"


LANGUAGE = {"python": "python", "optimum": "python", "kotlin": "kotlin", "swift": "swift"}
SNIPPET_TITLE = {"python": "Python", "optimum": "Python (optimum)", "kotlin": "Kotlin (Android, LiteRT)",
                 "swift": "Swift (iOS / macOS, Core ML)"}


def snippet_values(backend: str, *, buckets: list[int] | None, max_length: int, labels: list[str],
                   token_types: bool) -> dict[str, Any]:
    """What the templates are filled with, from the artifact's own facts."""
    feed = ['    "input_ids": np.array([encoding.ids], np.int64),',
            '    "attention_mask": np.array([encoding.attention_mask], np.int64),']
    if token_types:
        feed.append('    "token_type_ids": np.array([encoding.type_ids], np.int64),')
    seq = (buckets or [max_length])[-1]
    return {"model_file": FORMATS[backend].model_file, "max_length": min(max_length, seq), "seq": seq,
            "buckets": buckets or "any length", "labels": json.dumps(labels), "output_size": len(labels),
            "example": "a gripping, funny and moving film", "onnx_feed": "\n".join(feed)}


def render_snippets(snippets: dict[str, dict[str, str]], backend: str, values: dict[str, Any]) -> str:
    return "\n\n".join(f"**{SNIPPET_TITLE[kind]}**\n\n```{LANGUAGE[kind]}\n{template.format(**values)}\n```"
                       for kind, template in snippets[backend].items())


def readme_examples() -> str:
    """The README's "load an artifact" examples: the cards' own templates, for the default targets' facts."""
    labels = ["negative", "positive"]
    parts = []
    for backend, kind in (("onnx", "python"), ("tflite", "kotlin"), ("coreml", "swift")):
        buckets = getattr(parse_options(backend, "fp32", {}), "buckets", None)  # the profiles' defaults
        values = snippet_values(backend, buckets=buckets, max_length=128, labels=labels, token_types=False)
        snippets = get_task(DEFAULT_TASK).card({"label_names": labels}, {**values, "backend": backend,
                                                                         "batch": "batch"})["snippets"]
        parts.append(f"```{LANGUAGE[kind]}\n{snippets[backend][kind].format(**values)}\n```")
    return "\n\n".join(parts)


BENCH_HEADING = "## Last benchmark on this host"


def render_card(info: dict[str, Any], golden: dict[str, Any] | None,
                bench_row: dict[str, Any] | str | None = None) -> str:
    """The Markdown of an artifact's card from its ``artifact.json`` record (and golden vectors, bench row)."""
    target, parity = info["target"], info.get("parity") or {}
    backend, precision = target["backend"], target["precision"]
    labels = list(info.get("label_names") or [])
    options = parse_options(backend, precision, dict(target.get("options") or {}))
    buckets = getattr(options, "buckets", None)  # fixed-shape backends only
    token_types = bool(golden and golden["cases"] and "token_type_ids" in golden["cases"][0])
    model_type = info.get("source", {}).get("model_type") or "BERT-family"
    task = task_of_artifact(info)
    values = snippet_values(backend, buckets=buckets, max_length=info.get("max_length", 128), labels=labels,
                            token_types=token_types)
    # the Core ML package's shapes are batch 1
    card = task.card(info, {**values, "backend": backend, "batch": "1" if backend == "coreml" else "batch"})
    tags = ["edgedistill", backend, precision, model_type, task.pipeline_tag]
    header = ["---", f"pipeline_tag: {task.pipeline_tag}", f"library_name: {FORMATS[backend].library}", "tags:",
              *[f"- {t}" for t in tags], "metrics:", *[f"- {m}" for m in card["metrics"]], "---", ""]
    lines = [f"# {target['name']}: {model_type} {card['title']}, {backend} {precision}", "",
             target.get("description") or "", "",
             f"Built by edgedistill for device class `{(info.get('device') or {}).get('target', 'host')}` from "
             f"`{info['source']['path']}` (sha256 `{info['source']['sha256'][:16]}`).", ""]
    lines += ["## Inputs and outputs", "", "| name | dtype | shape |", "| --- | --- | --- |"]
    dtype = INPUT_DTYPE[backend]
    shape = "(batch, sequence)" if backend in ("onnx", "pytorch") else \
        f"(1, N), N in {buckets}" if backend == "coreml" else f"(batch, N), signature `seq_N`, N in {buckets}"
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_types else [])
    lines += [f"| `{name}` (input) | {dtype} | {shape} |" for name in names]
    lines += [*card["outputs"], ""]
    lines += ["Token ids come from `tokenizer.json` (WordPiece, `[CLS] text [SEP]`, a pair as "
              "`[CLS] a [SEP] b [SEP]`); 1 in the mask for real tokens, 0 for padding."
              + (" Shorter input is padded with 0 up to the smallest length that holds it." if buckets else ""),
              "", card["outputs_text"], ""]
    lines += ["## Verification", ""]
    if card["verification"]:
        lines += [card["verification"], ""]
    if golden:
        lines += [f"`golden.json`: {len(golden['cases'])} texts (eval sentences and hard cases) with their "
                  f"input ids, masks and the logits this file gave (tolerance {golden['tolerance']['max_abs']:g}). "
                  "Run them in a unit test on the device; `edgedistill verify .` re-runs them here.", ""]
    integer = (info.get("structure") or {}).get("integer")
    if integer:
        lines += ["## Integer coverage", "", f"{integer['int8_mac_fraction']:.1%} of matrix-multiply MACs at "
                  f"batch 1 × {integer.get('shape', [1, 128])[-1]} run in int8 (int8 weights and activations); "
                  f"op types left in float: {', '.join(integer.get('float_op_types', [])) or 'none'}.", ""]
    if info.get("verified_on"):
        lines += ["## Verified on other instruction sets", "", *[_isa_line(r) for r in info["verified_on"]], ""]
    if bench_row:
        lines += [BENCH_HEADING, "", bench_row if isinstance(bench_row, str) else _bench_line(bench_row), ""]
    if info.get("note"):
        lines += [f"Note: {info['note']}.", ""]
    lines += ["## How to load it", "", f"From this folder; `{FORMATS[backend].model_file}` is the model.", "",
              render_snippets(card["snippets"], backend, values), ""]
    if "model_with_tokenizer.onnx" in info.get("model_files", []):
        gate = parity.get("text_model") or {}
        lines += ["### Strings in: `model_with_tokenizer.onnx`", "",
                  f"The same model with the tokenizer in the graph (onnxruntime-extensions' `BertTokenizer` op in a "
                  f"`Loop` over the batch): input `text` (string, `[batch]`, single sentences, truncated at "
                  f"{options.text_max_length} tokens), outputs `logits` and `token_ids` (the ids it "
                  f"fed the model, 0-padded). Checked at export on {gate.get('texts', '?')} texts: token ids equal to "
                  f"the Hugging Face tokenizer's on {gate.get('token_ids_equal', '?')}, logits within "
                  f"{gate.get('max_abs_vs_id_model', float('nan')):.2g} of `model.onnx`'s. ONNX Runtime needs the "
                  "extensions' custom-op library registered (Python `onnxruntime-extensions`; Android "
                  f"`onnxruntime-extensions-android`; iOS `onnxruntime-extensions-c`). {card['optimum_note']}", "",
                  f"```python\n{card['text_snippet'].format(**values)}\n```", ""]
    return "\n".join(header + lines)


def _isa_line(record: dict[str, Any]) -> str:
    """One ``verified_on`` record as a sentence: where it ran, what it compared, the verdict."""
    golden = (f"golden vectors reproduced ({record['golden_cases']} cases)" if record.get("golden_reproduced")
              else f"golden vectors NOT reproduced ({len(record.get('golden_failures', []))} of "
                   f"{record.get('golden_cases')} cases)")
    checkpoint = (f", {record['agreement_checkpoint']:.2%} with the checkpoint"
                  if record.get("agreement_checkpoint") is not None else "")
    verdict = "passed the artifact's gate" if record["passed"] else "FAILED: " + "; ".join(record["failures"])
    features = " ".join(f for f in record.get("cpu_features", []) if f in ("asimd", "asimddp", "i8mm", "sve", "bf16"))
    return (f"- **{record['isa']} {record['cpu']}** ({features}; {record['emulated']}; "
            + ", ".join(f"{k} {v}" for k, v in record.get("runtimes", {}).items()) + f"), {record['verified']}: "
            f"{golden}; {record['samples']} eval sentences agree {record['agreement_x86']:.2%} with the x86 run"
            f"{checkpoint}, max |difference| from x86 {record['max_abs_diff']:.2g}; {verdict}. "
            f"{record['changed_count']} sentence(s) answer differently than on x86. Numerics under emulation: no "
            "latency was taken.")


def _bench_line(row: dict[str, Any]) -> str:
    ref = row.get("reference_latency") or {}
    latency = (f"p50 {ref['p50_ms']:.2f} ms at batch {ref['batch']} × {ref['seq']} tokens"
               if ref.get("p50_ms") is not None else f"latency n/a ({row.get('latency_note', 'not measured')})")
    host = row.get("host_cpu") or "this host"
    return (f"{latency}, {row.get('threads')} threads on {host}; peak RSS {row.get('peak_rss_mb')} MB; "
            f"accuracy {row.get('accuracy', float('nan')):.4f} on the eval split.")


def write_card(folder: Path, info: dict[str, Any], golden: dict[str, Any] | None,
               bench_row: dict[str, Any] | None = None) -> Path:
    """Write the card; without a new ``bench_row`` the card's last benchmark line is kept (a replay on another
    instruction set rewrites the card, and must not drop what the last benchmark measured)."""
    from edgedistill.core.atomic import write_text_atomic

    path = Path(folder) / CARD_FILE
    write_text_atomic(path, render_card(info, golden, bench_row or _last_bench_line(path)))
    return path


def _last_bench_line(card: Path) -> str | None:
    """The benchmark sentence of an existing card, or None."""
    if not card.is_file():
        return None
    lines = card.read_text(encoding="utf-8").splitlines()
    return lines[lines.index(BENCH_HEADING) + 2] if BENCH_HEADING in lines[:-2] else None


def update_cards(report: dict[str, Any]) -> None:
    """Each benchmarked artifact's card, rewritten with its latency and memory from ``report`` (this host)."""
    from edgedistill.export.golden import read_golden

    for row in report["rows"]:
        folder = Path(row["path"])
        record = folder / "artifact.json"
        if row.get("status") == "ok" and record.is_file():
            info = json.loads(record.read_text(encoding="utf-8"))
            write_card(folder, info, read_golden(folder), {**row, "host_cpu": report["host"].get("cpu")})


if __name__ == "__main__":  # the README's examples block: python -m edgedistill.export.model_card
    print(readme_examples())
