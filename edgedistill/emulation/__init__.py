"""Artifacts checked on the instruction set they are for, without the device: the arm64 runtime wheels run under
qemu user-mode emulation (:mod:`.environment`), fed the inputs the host's run took (:mod:`.replay`,
:mod:`.replay_worker`), on the CPU models of :mod:`edgedistill.core.arm_cpus`. Numerics only: no latency is taken
under emulation.
"""
