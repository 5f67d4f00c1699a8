"""The files of a ``save_pretrained`` folder that an artifact derives from and carries beside it."""

from __future__ import annotations

import shutil
from pathlib import Path

from edgedistill.core.hashing import sha256_file, sha256_json

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                   "merges.txt", "sentencepiece.bpe.model", "spiece.model")
SOURCE_FILES = ("config.json", "model.safetensors", "pytorch_model.bin")


def source_hash(model_dir: Path) -> str:
    """The content hash of a model's weights and config: what an artifact is derived from."""
    files = [Path(model_dir) / name for name in SOURCE_FILES if (Path(model_dir) / name).is_file()]
    return sha256_json({f.name: sha256_file(f) for f in files})


def copy_side_files(model_dir: Path, out: Path) -> None:
    """``config.json`` and the tokenizer files beside a model file, unless the exporter wrote its own."""
    for name in ("config.json", *TOKENIZER_FILES):
        if (model_dir / name).is_file() and not (out / name).exists():
            shutil.copy2(model_dir / name, out / name)
