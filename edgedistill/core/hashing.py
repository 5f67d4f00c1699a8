"""Content hashes: the keys of the stage cache and the fingerprints recorded in every output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_tree(root: Path, *, exclude: frozenset[str] = frozenset()) -> str:
    """Hash a file or a directory: every file's relative path and content, in sorted order."""
    root = Path(root)
    if root.is_file():
        return sha256_file(root)
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel.split("/")[0] in exclude:
            continue
        digest.update(rel.encode())
        digest.update(b"\0")
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


# Files of a model or artifact folder that record how it was made or described, not what it computes: the
# stage logs (teacher.log, student.log, qat.log, ...), the stage record (whose timestamp changes with every
# rebuild) and the model card (a benchmark rewrites it).
_RECORD_FILES = frozenset({"stage.json", "README.md"})


def model_folder_hash(folder: Path) -> str:
    """The content hash of a model or artifact folder, without its logs, stage record and card: the one way a
    stage keys on another stage's output."""
    folder = Path(folder)
    records = frozenset(p.name for p in folder.iterdir() if p.suffix == ".log") | _RECORD_FILES \
        if folder.is_dir() else frozenset()
    return sha256_tree(folder, exclude=records)


def sha256_json(value: Any) -> str:
    """Hash a JSON-able value independently of key order."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
