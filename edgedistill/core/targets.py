"""Target profiles: the YAML files in ``targets/`` that name a backend, a precision and its options."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from edgedistill.core.config import Config, TargetConfig
from edgedistill.core.errors import ConfigError

PROFILE_DIRS = (Path.cwd() / "targets", Path(__file__).resolve().parents[2] / "targets")


def profile_dir() -> Path:
    for folder in PROFILE_DIRS:
        if folder.is_dir():
            return folder
    raise ConfigError("no targets/ folder found (looked in the current folder and beside the package)")


def list_targets() -> list[TargetConfig]:
    return [load_target(path) for path in sorted(profile_dir().glob("*.yaml"))]


def load_target(name_or_path: str | Path) -> TargetConfig:
    """A target by profile name (``onnx-int8-dynamic``) or by the path of a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = profile_dir() / f"{name_or_path}.yaml"
        if not path.is_file():
            names = ", ".join(p.stem for p in sorted(profile_dir().glob("*.yaml")))
            raise ConfigError(f"unknown target {str(name_or_path)!r}; the profiles are: {names}")
    if not path.is_file():
        raise ConfigError(f"target file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a target profile is a mapping of keys")
    raw.setdefault("name", path.stem)
    try:
        return TargetConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{path}: {problems}") from None


def resolve_targets(config: Config) -> list[TargetConfig]:
    """The run's targets as profiles: each name found, none twice, each made for the run's task (a profile that
    names its ``tasks`` and not this one is refused): checked when the configuration is loaded, before training."""
    targets = [load_target(t) if isinstance(t, str) else t for t in config.targets]
    names = [t.name for t in targets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"targets: the names {duplicates} appear more than once")
    for target in targets:
        if target.tasks and config.task not in target.tasks:
            raise ConfigError(f"target {target.name} is a {' / '.join(target.tasks)} profile; this run's task is "
                              f"{config.task} (`edgedistill targets --task {config.task}` lists its profiles)")
    return targets
