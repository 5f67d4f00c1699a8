"""Report writers: report.json (the single source) -> report.md, report.csv and PNG plots; compare."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from edgedistill.core.atomic import write_json_atomic

_MB = 1e6


def write_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "report.json", report)
    (out_dir / "report.md").write_text(render_markdown(report), encoding="utf-8")
    _write_csv(report, out_dir / "report.csv")
    written = [out_dir / name for name in ("report.json", "report.md", "report.csv")]
    from edgedistill.bench.plots import write_plots

    return written + write_plots(report, out_dir)


def _fmt(value: Any, spec: str = ".4f", missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _elsewhere(row: dict[str, Any]) -> bool:
    """The artifact was built for another device class than the host that timed it."""
    return bool(row.get("device")) and row.get("device") != row.get("bench_host_device")


def render_markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    host = report["host"]
    batch, seq = s["reference"]["batch"], s["reference"]["seq"]
    metric = s.get("headline", "accuracy")  # reports written before tasks were classifiers
    lines = [
        "# edgedistill benchmark report", "",
        f"Latency at batch {batch}, sequence {seq}, {s['threads']} threads; each model in its own process; "
        f"{metric} on {s['eval_samples']} eval sentences"
        + (f" (agreement columns: {s['agreement']})" if s.get("agreement") else "")
        + ". Speed-ups are p50 ratios from this same run.", "",
        f"| model | backend | precision | size MB | params | {metric} | agrees teacher | agrees fp32 student "
        f"| max output diff | p50 ms | p90 ms | std ms | × vs teacher | × vs fp32 student | size vs student "
        f"| peak RSS MB | load s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in report["rows"]:
        if row["status"] != "ok":
            lines.append(f"| {row['name']} | {row['backend']} | {row['precision']} | "
                         f"**error**: {row.get('error', '')[:200]} |" + " |" * 13)
            continue
        ref = row.get("reference_latency") or {}
        noisy = " (noisy)" if ref.get("noisy") else ""
        if row.get("latency_note"):
            noisy = " (n/a: emulated†)"
        pruned = "‡" if row.get("cls_only_last_layer") else ""
        pruned += "§" if _elsewhere(row) else ""
        lines.append(
            f"| {row['name']}{pruned} | {row['backend']} | {row['precision']} "
            f"| {_fmt(row.get('size_bytes', 0) / _MB, '.1f')} "
            f"| {_fmt(row.get('parameters', 0) / 1e6, '.1f')}M | {_fmt(row.get(metric))} "
            f"| {_pct(row.get('agreement_with_teacher'))} | {_pct(row.get('agreement_with_fp32_student'))} "
            f"| {_fmt(row.get('max_logit_diff'), '.2g')} | {_fmt(ref.get('p50_ms'), '.2f')}{noisy} "
            f"| {_fmt(ref.get('p90_ms'), '.2f')} | {_fmt(ref.get('std_ms'), '.2f')} "
            f"| {_fmt(row.get('speedup_vs_teacher'), '.2f')} | {_fmt(row.get('speedup_vs_fp32_student'), '.2f')} "
            f"| {_fmt(row.get('size_ratio_vs_fp32_student'), '.2f')} | {_fmt(row.get('peak_rss_mb'), '.0f')} "
            f"| {_fmt(row.get('load_s'), '.2f')} |")
    lines += ["", "## Latency by shape (p50 ms)", ""]
    shapes = [(b, q) for b in s["batch_sizes"] for q in s["seq_lengths"]]
    lines.append("| model | " + " | ".join(f"b{b} s{q}" for b, q in shapes)
                 + " | real eval lengths, b1 (sent/s) | (words/s) |")
    lines.append("| --- |" + " --- |" * (len(shapes) + 2))
    for row in report["rows"]:
        if row["status"] != "ok":
            continue
        grid = {(p["batch"], p["seq"]): p for p in row["latency"]}
        missing = "n/a†" if row.get("latency_note") else "–"
        cells = [_cell(grid[k]) if k in grid else missing for k in shapes]
        real = row.get("real_lengths", {})
        lines.append(f"| {row['name']} | " + " | ".join(cells) + f" | {_fmt(real.get('sentences_per_s'), '.1f')} "
                     f"| {_fmt(real.get('words_per_s'), '.0f')} |")
    lines += ["", "`*` noisy: standard deviation above 15% of the mean. `→N`: a fixed-shape backend ran the "
              "input padded to its N-token bucket.", ""]
    lines += _per_type_table(report["rows"])
    if any(row.get("cls_only_last_layer") for row in report["rows"]):
        lines += ["‡ Exported with the last encoder layer computing the [CLS] row only (`cls_only_last_layer`, the "
                  "one row the classifier reads): the same logits with less work than the checkpoint's full graph.", ""]
    elsewhere = sorted({f"{row['device']} ({row['backend']})" for row in report["rows"] if _elsewhere(row)})
    if elsewhere:
        host_class = next(row["bench_host_device"] for row in report["rows"] if _elsewhere(row))
        lines += [f"§ Built for another device class than this {host_class} host ({', '.join(elsewhere)}): the "
                  "latency is this host's, not the device's.", ""]
    notes = sorted({f"{row['backend']}: {row['latency_note']}" for row in report["rows"] if row.get("latency_note")})
    if notes:
        lines += ["† No latency for these rows, by design: " + "; ".join(notes) + ". Their quality and "
                  "agreement come from that emulation, not from the device runtime.", ""]
    failed = report.get("failed_artifacts") or {}
    if failed:
        lines += ["## Artifacts that failed their gate", "",
                  f"{len(failed)} requested artifact(s) were not written: each failed its verification against the "
                  "checkpoint it came from (`edgedistill run` exits 1).", "",
                  "| artifact | reason |", "| --- | --- |"]
        lines += [f"| {name} | {reason.splitlines()[0][:400].replace('|', '/')} |" for name, reason in sorted(failed.items())]
        lines.append("")
    integer_rows = [row for row in report["rows"] if row.get("integer")]
    if integer_rows:
        lines += ["## Integer coverage", "",
                  "Matrix-multiply work at batch 1 x 128 tokens by the arithmetic it runs in: `int8` is int8 weights "
                  "and int8 activations with scales fixed in the file (what an NPU runs); `dynamic-int8` quantizes "
                  "activations at run time (CPU only). TFLite: ops LiteRT's XNNPACK delegate takes on this CPU.", "",
                  "| model | int8 MACs | MACs by arithmetic | op types left in float | XNNPACK ops | not delegated |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for row in integer_rows:
            integer, xnnpack = row["integer"], row.get("xnnpack") or {}
            mix = ", ".join(f"{k} {100 * v:.1f}%" for k, v in integer["mac_fraction_by_arithmetic"].items())
            delegated = f"{xnnpack['delegated_ops']}/{xnnpack['ops']}" if xnnpack else "–"
            left = ", ".join(f"{k} x{v}" for k, v in (xnnpack.get("not_delegated") or {}).items()) or "–"
            lines.append(f"| {row['name']} | {_pct(integer['int8_mac_fraction'])} | {mix} "
                         f"| {', '.join(integer['float_op_types'])} | {delegated} | {left if xnnpack else '–'} |")
        lines.append("")
    lines += ["## Host", "",
              f"- CPU: {host['cpu']} ({host['logical_cores']} logical cores), ISA: {', '.join(host['isa'])}",
              f"- OS: {host['os']}, Python {host['python']}; threads: {s['threads']}",
              "- Libraries: " + ", ".join(f"{k} {v}" for k, v in host["libraries"].items()),
              f"- Timing: {s['timing']}; report created {report['created']}", ""]
    return "\n".join(lines)


def _per_type_table(rows: list[dict[str, Any]]) -> list[str]:
    """Entity F1 per type (``f1_<TYPE>`` in a token classifier's rows), one row per model; nothing otherwise."""
    types = sorted({k.removeprefix("f1_") for row in rows for k, v in row.items()
                    if k.startswith("f1_") and k != "f1_macro" and isinstance(v, float)})
    if not types:
        return []
    lines = ["## Entity F1 per type (seqeval, strict IOB2 spans)", "",
             "| model | " + " | ".join(types) + " | entity precision | entity recall | word accuracy |",
             "| --- |" + " --- |" * (len(types) + 3)]
    for row in rows:
        if row["status"] == "ok" and "f1" in row:
            cells = [_pct(row.get(f"f1_{t}")) for t in types]
            cells += [_pct(row.get(k)) for k in ("entity_precision", "entity_recall", "word_accuracy")]
            lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
    return lines + [""]


def _cell(point: dict[str, Any]) -> str:
    bucket = f" →{point['bucket']}" if point.get("bucket") not in (None, point["seq"]) else ""
    return f"{point['p50_ms']:.2f}{'*' if point['noisy'] else ''}{bucket}"


def _write_csv(report: dict[str, Any], path: Path) -> None:
    """Long format: one line per model × batch × sequence length."""
    fields = ["name", "role", "backend", "precision", "status", "batch", "seq", "p50_ms", "p90_ms", "p99_ms",
              "mean_ms", "std_ms", "first_ms", "n", "throughput_per_s", "noisy", "bucket", "accuracy", "f1_macro",
              "spearman", "pearson", "f1", "entity_precision", "entity_recall", "word_accuracy", "agreement_with_teacher", "agreement_with_fp32_student", "max_logit_diff", "size_bytes",
              "parameters", "peak_rss_mb", "load_s", "threads", "int8_mac_fraction", "device", "bench_host_device",
              "error"]
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for row in report["rows"]:
            coverage = {"int8_mac_fraction": (row.get("integer") or {}).get("int8_mac_fraction")}
            for point in row.get("latency") or [{}]:
                writer.writerow({**row, **coverage, **point})


def compare_reports(a_path: Path, b_path: Path) -> str:
    """Two reports side by side (quantized vs unquantized, one machine vs another), as Markdown."""
    a, b = (json.loads(Path(p).read_text()) for p in (a_path, b_path))
    b_rows = {r["name"]: r for r in b["rows"]}
    metric = a["settings"].get("headline", "accuracy")
    lines = [f"# {a_path} (A) vs {b_path} (B)", "",
             f"A: {a['host']['cpu']}, {a['settings']['threads']} threads. "
             f"B: {b['host']['cpu']}, {b['settings']['threads']} threads.", "",
             f"| model | A p50 ms | B p50 ms | B/A latency | A {metric} | B {metric} | A size MB | B size MB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in a["rows"]:
        other = b_rows.get(row["name"])
        if other is None:
            continue
        pa = (row.get("reference_latency") or {}).get("p50_ms")
        pb = (other.get("reference_latency") or {}).get("p50_ms")
        ratio = f"{pb / pa:.2f}" if pa and pb else "–"
        lines.append(f"| {row['name']} | {_fmt(pa, '.2f')} | {_fmt(pb, '.2f')} | {ratio} | "
                     f"{_fmt(row.get(metric))} | {_fmt(other.get(metric))} | "
                     f"{_fmt((row.get('size_bytes') or 0) / _MB, '.1f')} | {_fmt((other.get('size_bytes') or 0) / _MB, '.1f')} |")
    only = sorted(set(b_rows) - {r["name"] for r in a["rows"]})
    if only:
        lines += ["", f"Only in B: {', '.join(only)}"]
    return "\n".join(lines) + "\n"
