"""PNG plots of a report: accuracy vs latency (Pareto front), size per artifact, latency vs length."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_COLORS = {"pytorch": "#4c72b0", "onnx": "#dd8452", "tflite": "#55a868", "coreml": "#c44e52"}


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated by another (lower latency and higher accuracy), by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_plots(report: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["status"] == "ok"]
    s = report["settings"]
    written = []

    # 1. Accuracy against p50 latency at the reference shape, Pareto front marked. Points are numbered
    #    (many artifacts share an accuracy, so names written beside them would overlap); the legend
    #    maps each number to its model.
    metric = s.get("headline", "accuracy")
    pts = [(r["reference_latency"]["p50_ms"], r[metric], r) for r in rows
           if r.get("reference_latency") and r.get(metric) is not None]
    if pts:
        fig, ax = plt.subplots(figsize=(11, 6.5))
        for number, (lat, acc, r) in enumerate(pts, start=1):
            ax.scatter(lat, acc, color=_COLORS.get(r["backend"], "gray"), s=150, zorder=3,
                       label=f"{number}: {r['name']}")
            ax.annotate(str(number), (lat, acc), ha="center", va="center", fontsize=7, color="white",
                        zorder=4, weight="bold")
        front = pareto_front([(p[0], p[1]) for p in pts])
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", color="black", lw=1,
                label="Pareto front", zorder=2)
        ax.set_xscale("log")
        ax.set_xlabel(f"p50 latency, ms (batch {s['reference']['batch']}, seq {s['reference']['seq']}, "
                      f"{s['threads']} threads, log scale)")
        ax.set_ylabel(f"eval {metric}")
        ax.set_title(f"{metric.capitalize()} against latency (colour: backend; blue PyTorch, orange ONNX, green TFLite)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
        written.append(_save(fig, out_dir / "accuracy_vs_latency.png"))

    # 2. Size per model / artifact.
    sized = [r for r in rows if r.get("size_bytes")]
    if sized:
        fig, ax = plt.subplots(figsize=(9, 0.4 * len(sized) + 1.5))
        names = [r["name"] for r in sized][::-1]
        sizes = [r["size_bytes"] / 1e6 for r in sized][::-1]
        colors = [_COLORS.get(r["backend"], "gray") for r in sized][::-1]
        bars = ax.barh(names, sizes, color=colors)
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in sizes], padding=3, fontsize=8)
        ax.set_xlabel("model file size, MB")
        ax.set_title("Size on disk")
        ax.tick_params(axis="y", labelsize=8)
        written.append(_save(fig, out_dir / "size.png"))

    # 3. Latency against sequence length at batch 1: one colour per model, line style per backend.
    fig, ax = plt.subplots(figsize=(11, 6.5))
    palette = plt.get_cmap("tab20")
    styles = {"pytorch": "-", "onnx": "--", "tflite": ":", "coreml": "-."}
    for index, r in enumerate(rows):
        series = sorted((p["seq"], p["p50_ms"]) for p in r["latency"] if p["batch"] == 1)
        if series:
            ax.plot(*zip(*series), marker="o", label=r["name"], color=palette(index % 20),
                    linestyle=styles.get(r["backend"], "-"), lw=1.8)
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("p50 latency, ms (batch 1, log scale)")
    ax.set_yscale("log")
    ax.set_xticks(s["seq_lengths"])
    ax.set_title("Latency against sequence length (line: solid PyTorch, dashed ONNX, dotted TFLite)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    written.append(_save(fig, out_dir / "latency_vs_length.png"))
    return written
