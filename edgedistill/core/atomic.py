"""Write outputs so that nothing already on disk is lost and nothing half-written is left.

A stage builds its output in a temporary sibling folder and renames it into place only when complete.
If anything fails on the way, the temporary folder is removed and the previous output stays intact.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgedistill.core.errors import EdgeDistillError

# Errors that mean "this storage cannot take the output", as opposed to bugs.
_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


@contextlib.contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary directory beside ``final``; on success it replaces ``final`` whole."""
    final = Path(final)
    blocker = next((p for p in (final.parent, *final.parent.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise EdgeDistillError(f"cannot write {final}: {blocker} is a file, not a folder (choose another "
                               "output folder with --workdir or --out)")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    except OSError as exc:
        raise EdgeDistillError(f"cannot write into {final.parent}: {exc.strerror} (choose another output "
                               "folder with --workdir or --out)") from None
    try:
        yield tmp
        if final.exists():
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno in _STORAGE_ERRORS:
            raise EdgeDistillError(f"cannot write {final}: {exc.strerror}; nothing already there was changed "
                                   "(free space, or choose another output folder)") from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def process_rank() -> int:
    """This process's rank under torchrun / accelerate launch (0 when not distributed)."""
    return int(os.environ.get("RANK", "0"))


@contextlib.contextmanager
def scratch_directory() -> Iterator[Path]:
    """A throwaway folder: where the non-first processes of a distributed run write, so nothing lasts."""
    path = Path(tempfile.mkdtemp(prefix="edgedistill-rank"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def stage_directory(final: Path) -> contextlib.AbstractContextManager[Path]:
    """The first process publishes ``final`` atomically; the others work in a scratch folder."""
    return atomic_directory(final) if process_rank() == 0 else scratch_directory()


def synchronize_processes() -> None:
    """Barrier across the processes of a torchrun / accelerate run (a no-op otherwise): after the first
    process published a stage, and before it deletes anything the others may still be reading."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def write_text_atomic(path: Path, text: str) -> None:
    """Write text through a temporary file and rename it over ``path``."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, value: Any) -> None:
    """Write JSON through a temporary file and rename it over ``path``."""
    write_text_atomic(path, json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")
