"""Latency measurement in the manner of LiteRT's benchmark_model: first run, warm-up, steady state.

Warm-up runs until both a count and a time are reached (caches, allocator and thread pools settle),
then timed runs continue until both a minimum count and a minimum time are reached. Percentiles use
linear interpolation between closest ranks (numpy's default), so a series' p50 is its median.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

NOISY_CV = 0.15  # coefficient of variation above which a row is flagged noisy


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of an empty series")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class LatencyStats:
    """Milliseconds. ``noisy`` flags a spread (std / mean) above NOISY_CV."""

    first_ms: float
    warmup_runs: int
    n: int
    mean_ms: float
    std_ms: float
    min_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    throughput_per_s: float
    noisy: bool

    def as_dict(self) -> dict[str, float]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def summarize(samples_ms: Sequence[float], *, first_ms: float, warmup_runs: int, batch: int) -> LatencyStats:
    n = len(samples_ms)
    mean = sum(samples_ms) / n
    std = math.sqrt(sum((s - mean) ** 2 for s in samples_ms) / (n - 1)) if n > 1 else 0.0
    return LatencyStats(
        first_ms=first_ms, warmup_runs=warmup_runs, n=n, mean_ms=mean, std_ms=std, min_ms=min(samples_ms),
        p50_ms=percentile(samples_ms, 50), p90_ms=percentile(samples_ms, 90), p99_ms=percentile(samples_ms, 99),
        throughput_per_s=1000.0 * batch / mean if mean > 0 else float("inf"),
        noisy=mean > 0 and std / mean > NOISY_CV,
    )


def measure(fn: Callable[[], object], *, batch: int, warmup_runs: int = 3, warmup_s: float = 0.3,
            min_runs: int = 20, min_s: float = 1.0, max_runs: int = 2000) -> LatencyStats:
    """Time ``fn``: one first run, warm-up (count and time), then steady-state runs (count and time)."""
    clock = time.perf_counter
    start = clock()
    fn()
    first_ms = (clock() - start) * 1000
    warm, warm_start = 0, clock()
    while warm < warmup_runs or clock() - warm_start < warmup_s:
        fn()
        warm += 1
    samples: list[float] = []
    run_start = clock()
    while (len(samples) < min_runs or clock() - run_start < min_s) and len(samples) < max_runs:
        t0 = clock()
        fn()
        samples.append((clock() - t0) * 1000)
    return summarize(samples, first_ms=first_ms, warmup_runs=warm, batch=batch)
