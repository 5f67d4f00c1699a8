"""The arm64 runtime environment: Debian's arm64 Python and the runtimes' aarch64 wheels, run by qemu user mode.

Built once by ``edgedistill arm64 setup`` from the registries alone (Debian's mirror for qemu and the arm64
``.deb`` files, the Python package index for the wheels), into ``$EDGEDISTILL_CACHE/emulation/arm64``:

* ``sysroot/``: ``libc6``, ``libstdc++6``, ``python3.11-minimal``, ``libpython3.11-stdlib`` ... for arm64,
  unpacked with ``dpkg-deb -x`` (nothing is installed on the host; apt reads and writes a private state);
* ``site/``: the aarch64 wheels of ai-edge-litert, onnxruntime and numpy **at the host's own versions** (and their
  dependencies), unzipped: both runs of a replay hold the same runtime release, so what differs is the kernels;
* ``cpus/<model>/``: one root per emulated CPU (:mod:`edgedistill.core.arm_cpus`): links to the sysroot and a
  ``/proc/cpuinfo`` of its own;
* ``environment.json``: what it holds (qemu, every package and wheel with its version and sha256, each CPU's
  features) and how long it took to build.

Verification then reads only this folder: no network. The folder is built beside its final place and renamed
into it when complete; a step that cannot run (no qemu and not root, no apt) stops the build before anything is
written, with one line saying what to do.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from edgedistill.core.errors import EdgeDistillError
from edgedistill.core.hashing import sha256_file
from edgedistill.core.arm_cpus import CPU_MODELS, cpu_model, cpuinfo_text, feature_names

log = logging.getLogger("edgedistill.arm64")

SCHEMA = "edgedistill.arm64-environment/1"
RECORD = "environment.json"
QEMU = "qemu-aarch64-static"
PYTHON = "usr/bin/python3.11"
# Debian bookworm's arm64 Python and the shared libraries the runtimes' wheels link.
DEBIAN_PACKAGES = ("libc6", "libgcc-s1", "libstdc++6", "zlib1g", "libffi8", "libexpat1", "libssl3",
                   "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib")
# The runtimes replayed (and numpy), pinned to the versions installed on the host.
RUNTIMES = ("ai-edge-litert", "onnxruntime", "numpy")
WHEEL_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux_2_27_aarch64",
                   "manylinux_2_28_aarch64")
WORKER = Path(__file__).with_name("replay_worker.py")


class EnvironmentUnavailable(EdgeDistillError):
    """The arm64 environment is not built, is stale, or cannot be built on this host (one line says which)."""


def environment_dir() -> Path:
    """``$EDGEDISTILL_ARM64_ENV``, else ``$EDGEDISTILL_CACHE/emulation/arm64`` (default
    ``~/.cache/edgedistill/emulation/arm64``)."""
    from edgedistill.core.cache import user_cache_dir

    named = os.environ.get("EDGEDISTILL_ARM64_ENV")
    return Path(named) if named else user_cache_dir("emulation") / "arm64"


def host_runtime_versions() -> dict[str, str]:
    """The host's versions of the runtimes the environment must match; missing ones are left out."""
    from edgedistill.core.host import library_versions

    installed = library_versions()
    return {name: installed[name] for name in RUNTIMES if name in installed}


@dataclass(frozen=True)
class Arm64Environment:
    """A built environment: where it is, what ``environment.json`` says it holds, and how to run in it."""

    root: Path
    record: dict[str, Any]

    @classmethod
    def load(cls, root: Path | None = None) -> Arm64Environment:
        """The environment in ``root`` (default :func:`environment_dir`), checked against this host: present,
        its qemu still installed, its runtimes at the host's versions."""
        root = Path(root) if root is not None else environment_dir()
        path = root / RECORD
        if not path.is_file():
            raise EnvironmentUnavailable(f"no arm64 environment in {root}: build it once with `edgedistill arm64 "
                                         "setup` (root and apt-get, about a minute; then verification needs no network)")
        record = json.loads(path.read_text(encoding="utf-8"))
        if not Path(record["qemu"]["path"]).is_file():
            raise EnvironmentUnavailable(f"{record['qemu']['path']} is gone since the arm64 environment was built: "
                                         "rebuild it with `edgedistill arm64 setup --force`")
        stale = {name: (version, record["runtimes"].get(name))
                 for name, version in host_runtime_versions().items() if record["runtimes"].get(name) != version}
        if stale:
            raise EnvironmentUnavailable(
                "the arm64 environment holds " + ", ".join(f"{n} {old}" for n, (_, old) in stale.items())
                + " but this host has " + ", ".join(f"{n} {new}" for n, (new, _) in stale.items())
                + ": rebuild it with `edgedistill arm64 setup --force` (a replay compares one runtime release "
                  "on two instruction sets)")
        changed = [f"{name} (-cpu {model.qemu_cpu})" for name, model in CPU_MODELS.items()
                   if record.get("cpus", {}).get(name, {}).get("qemu_cpu") != model.qemu_cpu]
        if changed:
            raise EnvironmentUnavailable(f"the arm64 environment in {root} was built for other CPU models than this "
                                         f"edgedistill emulates ({', '.join(changed)}): rebuild it with `edgedistill "
                                         "arm64 setup`")
        return cls(root, record)

    @property
    def site(self) -> Path:
        return self.root / "site"

    def cpu_record(self, cpu: str) -> dict[str, Any]:
        cpu_model(cpu)  # an unknown name: the list of known ones
        return self.record["cpus"][cpu]

    def python(self, cpu: str) -> list[str]:
        """The command line that starts the arm64 Python on the emulated ``cpu`` (isolated mode: no user site,
        no environment variables read)."""
        self.cpu_record(cpu)
        return [self.record["qemu"]["path"], "-cpu", cpu_model(cpu).qemu_cpu, "-L", str(self.root / "cpus" / cpu),
                str(self.root / "sysroot" / PYTHON), "-I"]

    def describe(self, cpu: str) -> dict[str, Any]:
        """Where a replay on ``cpu`` ran, for ``artifact.json``'s ``verified_on`` (the runtime it used is the
        replay's to add)."""
        return {"isa": "arm64", "cpu": cpu, "cpu_features": self.cpu_record(cpu)["features"],
                "emulated": f"{self.record['qemu']['version']}, user mode", "python": self.record["python"]}


def build_environment(root: Path | None = None, *, force: bool = False) -> Arm64Environment:
    """Build (or, when built and current, return) the environment in ``root`` (default :func:`environment_dir`)."""
    from edgedistill.core.atomic import atomic_directory
    from edgedistill.core.host import host_info

    root = Path(root) if root is not None else environment_dir()
    if not force:
        try:
            existing = Arm64Environment.load(root)
            log.info("arm64 environment in %s is current (built %s); --force rebuilds it", root,
                     existing.record["created"])
            return existing
        except EnvironmentUnavailable:
            pass
    qemu = _preflight()
    runtimes = host_runtime_versions()
    started = time.perf_counter()
    steps: list[tuple[str, float]] = []

    def step(name: str) -> None:
        log.info("arm64 setup: %s", name)
        steps.append((name, time.perf_counter()))

    with atomic_directory(root) as tmp:
        if qemu is None:
            step("install qemu-user-static (apt-get)")
            _run(["apt-get", "update"], "reading the host's package lists (apt-get update)")
            _run(["apt-get", "install", "-y", "--no-install-recommends", "qemu-user-static"], "installing qemu")
            qemu = shutil.which(QEMU)
            if qemu is None:
                raise EnvironmentUnavailable(f"apt-get installed qemu-user-static but {QEMU} is not on PATH")
        step("download the arm64 Debian packages (private apt state)")
        debs = _download_debs(tmp / "apt", tmp / "debs")
        step("unpack the sysroot (dpkg-deb -x)")
        for deb in debs:
            _run(["dpkg-deb", "-x", str(deb), str(tmp / "sysroot")], f"unpacking {deb.name}")
        step("download the aarch64 wheels")
        wheels = _download_wheels(tmp / "wheels", runtimes)
        step("unzip the wheels")
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(tmp / "site")
        record: dict[str, Any] = {
            "schema": SCHEMA,
            "qemu": {"path": qemu, "version": _first_line([qemu, "--version"])},
            "debian_packages": {d.name.split("_")[0]: {"version": _deb_version(d), "sha256": sha256_file(d)}
                                for d in debs},
            "wheels": {w.name: sha256_file(w) for w in wheels},
            "runtimes": runtimes,
        }
        step("one root per CPU, with its /proc/cpuinfo")
        record["cpus"] = {name: _cpu_root(tmp, qemu, name) for name in CPU_MODELS}
        step("check: the runtimes import on every CPU")
        record["python"] = _smoke_test(tmp, qemu, runtimes)
        shutil.rmtree(tmp / "debs")
        shutil.rmtree(tmp / "wheels")
        shutil.rmtree(tmp / "apt")
        ends = [start for _, start in steps[1:]] + [time.perf_counter()]
        record.update({"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       "build_seconds": round(time.perf_counter() - started, 1),
                       "steps_seconds": {name: round(end - start, 1)
                                         for (name, start), end in zip(steps, ends, strict=True)},
                       "host": {"machine": platform.machine(), "cpu": host_info()["cpu"]}})
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log.info("arm64 setup: built %s in %.0f s", root, record["build_seconds"])
    return Arm64Environment.load(root)


def _preflight() -> str | None:
    """The qemu binary (None: install it first); one line and nothing built when a step cannot run here."""
    if platform.system() != "Linux":
        raise EnvironmentUnavailable(f"the arm64 emulation needs Linux (qemu user mode); this is {platform.system()}")
    if platform.machine().lower() in ("aarch64", "arm64"):
        raise EnvironmentUnavailable("this host is arm64 already: run `edgedistill verify` here, it replays on "
                                     "this CPU natively")
    missing = [tool for tool in ("apt-get", "dpkg-deb") if shutil.which(tool) is None]
    if missing:
        raise EnvironmentUnavailable(f"the arm64 environment is built from Debian's packages and needs "
                                     f"{' and '.join(missing)} (a Debian or Ubuntu host)")
    if not host_runtime_versions().keys() >= {"ai-edge-litert", "numpy"}:
        raise EnvironmentUnavailable("the host has no ai-edge-litert: install the backends first (bash setup.sh)")
    qemu = shutil.which(QEMU)
    if qemu is None and os.geteuid() != 0:
        raise EnvironmentUnavailable(f"{QEMU} is not installed and installing it needs root: run `sudo apt-get "
                                     "install qemu-user-static`, then `edgedistill arm64 setup` again")
    return qemu


def _download_debs(state: Path, out: Path) -> list[Path]:
    """``apt-get download`` of :data:`DEBIAN_PACKAGES` for arm64 with a private package list: the host's apt
    sources, no change to its dpkg architectures or lists."""
    for folder in (state / "lists" / "partial", state / "cache" / "archives" / "partial", out):
        folder.mkdir(parents=True, exist_ok=True)
    options = [f"-o=Dir::State::Lists={state / 'lists'}", f"-o=Dir::Cache={state / 'cache'}",
               "-o=APT::Architecture=arm64", "-o=APT::Architectures::=arm64", "-o=Debug::NoLocking=1",
               "-o=APT::Sandbox::User=root" if os.geteuid() == 0 else "-o=Debug::NoDropPrivs=1"]
    _run(["apt-get", *options, "update"], "reading Debian's arm64 package lists (apt-get update)")
    _run(["apt-get", *options, "download", *DEBIAN_PACKAGES], "downloading the arm64 packages", cwd=out)
    debs = sorted(out.glob("*.deb"))
    got = {d.name.split("_")[0] for d in debs}
    if got != set(DEBIAN_PACKAGES):
        raise EnvironmentUnavailable(f"apt-get did not fetch {', '.join(sorted(set(DEBIAN_PACKAGES) - got))}")
    return debs


def _download_wheels(out: Path, runtimes: dict[str, str]) -> list[Path]:
    """The aarch64 CPython 3.11 wheels of the runtimes at the host's versions, and of their dependencies at the
    host's versions where the host has them."""
    out.mkdir(parents=True, exist_ok=True)
    constraints = out / "host-versions.txt"
    constraints.write_text("".join(f"{d.metadata['Name']}=={d.version}\n" for d in metadata.distributions()
                                   if d.metadata["Name"]), encoding="utf-8")
    platforms = [arg for p in WHEEL_PLATFORMS for arg in ("--platform", p)]
    _run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet", "--only-binary=:all:",
          *platforms, "--python-version", "3.11", "--implementation", "cp", "-d", str(out), "-c", str(constraints),
          *(f"{name}=={version}" for name, version in runtimes.items())], "downloading the aarch64 wheels")
    constraints.unlink()
    return sorted(out.glob("*.whl"))


def _cpu_root(env: Path, qemu: str, name: str) -> dict[str, Any]:
    """``cpus/<name>/``: relative links to the sysroot's folders and the CPU's own ``proc/cpuinfo``, written from
    the hardware capabilities qemu gives that CPU."""
    root = env / "cpus" / name
    (root / "proc").mkdir(parents=True)
    for entry in (env / "sysroot").iterdir():
        (root / entry.name).symlink_to(Path("..", "..", "sysroot", entry.name))
    words = json.loads(_first_line([qemu, "-cpu", cpu_model(name).qemu_cpu, "-L", str(root),
                                    str(env / "sysroot" / PYTHON), "-I",
                                    str(WORKER), "--capabilities"]))
    features = feature_names(words.get("hwcap", 0), words.get("hwcap2", 0))
    (root / "proc" / "cpuinfo").write_text(cpuinfo_text(cpu_model(name), features, os.cpu_count() or 1),
                                           encoding="utf-8")
    return {"features": features, "why": cpu_model(name).why, "qemu_cpu": cpu_model(name).qemu_cpu}


def _smoke_test(env: Path, qemu: str, runtimes: dict[str, str]) -> str:
    """Import numpy and every runtime on every CPU, and check their versions are the host's: the arm64 Python's
    version."""
    names = [n for n in runtimes if n != "numpy"]
    modules = {"ai-edge-litert": "ai_edge_litert.compiled_model", "onnxruntime": "onnxruntime"}
    code = (f"import sys, platform, json; sys.path.insert(0, {str(env / 'site')!r}); import numpy; "
            + "".join(f"import {modules[n]}; " for n in names)
            + "from importlib import metadata; print(json.dumps({'python': platform.python_version(), "
            + f"'versions': {{n: metadata.version(n) for n in {list(runtimes)!r}}}}}))")
    python = ""
    for cpu in CPU_MODELS:
        out = json.loads(_first_line([qemu, "-cpu", cpu_model(cpu).qemu_cpu, "-L", str(env / "cpus" / cpu),
                                      str(env / "sysroot" / PYTHON), "-I", "-c", code], last=True))
        if out["versions"] != runtimes:
            raise EnvironmentUnavailable(f"the arm64 runtimes are {out['versions']}, the host's {runtimes}")
        python = out["python"]
    return python


def _run(command: list[str], what: str, cwd: Path | None = None) -> str:
    """Run a setup step; its failure is one line naming the step and the tool's last words."""
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = " ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise EnvironmentUnavailable(f"arm64 setup: {what} failed (exit {result.returncode}): {tail}")
    return result.stdout


def _first_line(command: list[str], last: bool = False) -> str:
    lines = _run(command, f"running {Path(command[0]).name}").strip().splitlines()
    return (lines[-1] if last else lines[0]) if lines else ""


def _deb_version(deb: Path) -> str:
    return _run(["dpkg-deb", "-f", str(deb), "Version"], f"reading {deb.name}").strip()

