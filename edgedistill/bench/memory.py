"""Memory: the process's peak resident set (each model runs in its own process, so it is the model's)."""

from __future__ import annotations

import resource
import sys


def peak_rss_mb() -> float:
    """Peak RSS of this process so far, in MB.

    On Linux this reads VmHWM from /proc: ``ru_maxrss`` survives ``execve`` and would report the
    high-water mark of the parent that spawned the worker (a benchmark run after a conversion
    showed every row at the parent's 5.6 GB). Elsewhere ``ru_maxrss`` (bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def current_rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / (1024 * 1024)
