"""The arm64 CPUs the emulation offers, and what each tells the runtimes about itself.

Which int8 kernels XNNPACK and ONNX Runtime (MLAS) take on arm64 depends on the CPU's features, read from the
kernel's hardware-capability words and from ``/proc/cpuinfo`` by the cpuinfo library both link: plain NEON
(``cortex-a53``), the dot-product instructions (``asimddp``: ``cortex-a76``, the big cores of most phones sold
since 2019) or the 8-bit matrix multiply (``i8mm``, with SVE: ``max``, every feature qemu 7.2 emulates, the
newest cores' path; SME is left off: with it, ONNX Runtime 1.32's dynamic-int8 kernels gave logits off by up to
3.2 under qemu 7.2 and within 0.34 of x86 under qemu 10.0 on the same file, so qemu 7.2's SME emulation is not
trusted). Under qemu the process sees the x86 host's ``/proc/cpuinfo``, on which cpuinfo crashes
inside ONNX Runtime's import (a NULL read after parsing it, seen with onnxruntime 1.32 and qemu 7.2): each CPU
gets a ``/proc/cpuinfo`` of its own in the environment's per-CPU root (qemu's ``-L`` prefix serves a guest's
absolute paths from there first), written from the capability words qemu gives that CPU, so the file says
exactly what the emulated CPU has.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgedistill.core.errors import ConfigError


@dataclass(frozen=True)
class CpuModel:
    """An emulated CPU: its main ID register fields (as ``/proc/cpuinfo`` shows them), why it is offered, and the
    qemu ``-cpu`` value that emulates it."""

    name: str
    implementer: int
    variant: int
    part: int
    revision: int
    why: str
    qemu: str = ""

    @property
    def qemu_cpu(self) -> str:
        return self.qemu or self.name


# MIDR fields as qemu 7.2 sets them (target/arm/cpu64.c); "max" is qemu's own (implementer 0, part 'Q').
CPU_MODELS: dict[str, CpuModel] = {m.name: m for m in (
    CpuModel("cortex-a76", 0x41, 0x4, 0xD0B, 1,
             "Armv8.2-A with dot product (asimddp): the big cores of most phones since 2019; XNNPACK's and "
             "ONNX Runtime's dot-product int8 kernels"),
    CpuModel("cortex-a53", 0x41, 0x0, 0xD03, 4,
             "Armv8.0-A, NEON without dot product: little cores and older phones; the plain NEON int8 kernels"),
    CpuModel("max", 0x00, 0x0, 0x051, 0,
             "every feature qemu 7.2 emulates but SME (i8mm, bf16, SVE2): the newest cores' 8-bit matrix-multiply "
             "kernels", qemu="max,sme=off"),
)}
DEFAULT_CPU = "cortex-a76"

# Linux's arm64 hwcap bits (arch/arm64/include/uapi/asm/hwcap.h), named as /proc/cpuinfo names them.
HWCAP_NAMES = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc "
               "dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg").split()
HWCAP2_NAMES = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm "
                "svebf16 i8mm bf16 dgh rng bti mte ecv afp rpres mte3 sme").split()


def cpu_model(name: str) -> CpuModel:
    """The model called ``name``, or a :class:`ConfigError` listing the ones offered."""
    try:
        return CPU_MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown arm64 CPU {name!r}; choose one of: "
                          + "; ".join(f"{m.name} ({m.why})" for m in CPU_MODELS.values())) from None


def feature_names(hwcap: int, hwcap2: int = 0) -> list[str]:
    """The features two hardware-capability words announce, in ``/proc/cpuinfo`` order."""
    return [name for bit, name in enumerate(HWCAP_NAMES) if hwcap >> bit & 1] + \
        [name for bit, name in enumerate(HWCAP2_NAMES) if hwcap2 >> bit & 1]


def cpuinfo_text(model: CpuModel, features: list[str], processors: int) -> str:
    """A ``/proc/cpuinfo`` as an arm64 Linux kernel writes it for ``processors`` cores of ``model``."""
    block = (f"Features\t: {' '.join(features)}\nCPU implementer\t: {model.implementer:#04x}\n"
             f"CPU architecture: 8\nCPU variant\t: {model.variant:#x}\nCPU part\t: {model.part:#05x}\n"
             f"CPU revision\t: {model.revision}\n\n")
    return "".join(f"processor\t: {i}\nBogoMIPS\t: 50.00\n{block}" for i in range(processors))
