"""Two models timed call by call in one process, alternated (A B B A ...): a ratio noise cannot fake.

On a shared 2-core VM one p50 moves by ±5% between processes, as much as the differences a peer comparison
judges; two models loaded side by side and called alternately see the same machine state, so the per-call
ratio is what is compared (their absolute times are not their solo latency: two runtimes in one process slow
each other). Used by benchmarks/peer_rounds.py and benchmarks/embeddings.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Runs in a fresh interpreter: loads each (``module:function``, path) with the thread count, warms both, then
# times ``pairs`` alternated calls per side at batch 1 x 128 on random token ids.
CHILD = r"""
import importlib, json, sys, time
from pathlib import Path
import numpy as np

spec = json.loads(sys.argv[1])
runners = []
for loader, path in spec["models"]:
    module, _, function = loader.partition(":")
    runners.append(getattr(importlib.import_module(module), function)(Path(path), spec["threads"]))
ids = np.random.default_rng(0).integers(1000, 30000, size=(1, 128), dtype=np.int64)
mask = np.ones_like(ids)
for _ in range(10):
    for runner in runners:
        runner.predict(ids, mask)
times = [[], []]
for i in range(spec["pairs"]):
    for side in ((0, 1) if i % 2 == 0 else (1, 0)):
        t0 = time.perf_counter()
        runners[side].predict(ids, mask)
        times[side].append((time.perf_counter() - t0) * 1000)
print(json.dumps(times))
"""
ARTIFACT = "edgedistill.bench.worker:load_artifact"


def paired_calls(first: tuple[str, Path], second: tuple[str, Path], threads: int, pairs: int
                 ) -> tuple[list[float], list[float]]:
    """Milliseconds per call of each side, ``(loader, path)`` each, alternated in one fresh process."""
    spec = {"models": [[first[0], str(first[1])], [second[0], str(second[1])]], "threads": threads, "pairs": pairs}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True, check=True)
    a, b = json.loads(done.stdout.strip().splitlines()[-1])
    return a, b
