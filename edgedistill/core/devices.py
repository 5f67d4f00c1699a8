"""The device class an artifact is built for, so that the export host's CPU never decides what it contains.

A target names its device (``device:`` in every profile). Device-dependent choices follow it: today the
ONNX dynamic-int8 recipe (optimum's ``AutoQuantizationConfig``: ``x86-avx2`` quantizes weights to uint8,
the others to int8). ``host`` is the explicit way to ask for the export machine's own class; it is
resolved when the artifact is built and the resolved class is what the artifact and its cache key record.
A benchmark row of an artifact built for another class than the benchmarking host says so.
"""

from __future__ import annotations

import platform

from edgedistill.core.registry import FORMATS


def host_device() -> str:
    """This machine's class, from its architecture and ISA flags."""
    from edgedistill.core.host import host_info

    return device_class(platform.machine(), host_info()["isa"])


def device_class(machine: str, isa: list[str]) -> str:
    """The class of a machine with this architecture and these ISA flags (a host record's ``machine`` and
    ``isa``), so results recorded elsewhere name their host's class as this machine's would."""
    if machine.lower() in ("arm64", "aarch64"):
        return "arm64"
    if "avx512_vnni" in isa:
        return "x86-avx512-vnni"
    if "avx512f" in isa:
        return "x86-avx512"
    return "x86-avx2"


def resolve_device(device: str) -> str:
    """``host`` becomes this machine's class; any other class is itself."""
    return host_device() if device == "host" else device


def check_device(backend: str, device: str) -> None:
    """Raise ``ValueError`` naming the allowed classes when ``backend`` cannot be built for ``device``."""
    allowed = FORMATS[backend].devices
    if device not in allowed:
        raise ValueError(f"device {device!r} is not a {backend} device class; {backend} targets take: "
                         f"{', '.join(allowed)}")
