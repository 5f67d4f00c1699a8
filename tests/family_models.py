"""Tiny random-weight models of every encoder family, built from their configs (no download), for each task:
what the support matrix (benchmarks/families.py, tests/test_families.py) builds, distils and exports.

Every family shares the tests' tiny WordPiece tokenizer ([PAD] = 0), so each config's pad token is 0; the
geometry is each family's own in miniature (ELECTRA's and ALBERT's narrower embeddings, MobileBERT's bottlenecks,
DeBERTa-v3's relative attention without absolute positions or token types, RoBERTa's 1e-5 layer norms and
one token type as published)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HIDDEN, LAYERS, HEADS = 32, 2, 4
COMMON = {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
          "intermediate_size": 2 * HIDDEN, "max_position_embeddings": 64, "pad_token_id": 0,
          "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
ROBERTA_LIKE = {"type_vocab_size": 1, "layer_norm_eps": 1e-5, "max_position_embeddings": 64 + 1,
                "bos_token_id": 2, "eos_token_id": 3}

# model_type -> the config settings of its tiny model (over COMMON).
FAMILY_SETTINGS: dict[str, dict[str, Any]] = {
    "bert": {},
    "roberta": ROBERTA_LIKE,
    "xlm-roberta": ROBERTA_LIKE,
    "camembert": ROBERTA_LIKE,
    "distilbert": {"dim": HIDDEN, "n_layers": LAYERS, "n_heads": HEADS, "hidden_dim": 2 * HIDDEN, "dropout": 0.0,
                   "attention_dropout": 0.0, "seq_classif_dropout": 0.0},
    "electra": {"embedding_size": 16},
    "deberta-v2": {"relative_attention": True, "pos_att_type": ["p2c", "c2p"], "position_biased_input": False,
                   "max_relative_positions": -1, "position_buckets": 16, "norm_rel_ebd": "layer_norm",
                   "share_att_key": True, "type_vocab_size": 0, "layer_norm_eps": 1e-7},
    # MPNet fixes its padding index at 1 (positions start at 2) and reads 32 relative-position buckets in code
    "mpnet": {"relative_attention_num_buckets": 32, "max_position_embeddings": 64 + 2},
    "albert": {"embedding_size": 16, "num_hidden_groups": 1, "inner_group_num": 1},
    "mobilebert": {"embedding_size": 16, "true_hidden_size": 16, "intra_bottleneck_size": 16,
                   "num_feedforward_networks": 2, "intermediate_size": HIDDEN},
}
TASK_CLASSES = {"classification": "AutoModelForSequenceClassification",
                "token-classification": "AutoModelForTokenClassification", "embedding": "AutoModel"}


def tiny_family_model(model_type: str, task: str, folder: Path, tokenizer_dir: Path, seed: int = 0,
                      initializer_range: float = 0.2) -> Path:
    """A random ``model_type`` model of ``task`` (a classifier of 2 labels, a tagger of 3 tags, or a bare
    encoder read with mean pooling) saved with the tiny tokenizer; wide weights so that outputs differ between
    inputs and a numerics error shows."""
    import torch
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    settings = {**COMMON, **FAMILY_SETTINGS[model_type], "vocab_size": tokenizer.vocab_size,
                "initializer_range": initializer_range}
    if model_type == "distilbert":
        settings = {k: v for k, v in settings.items() if k not in COMMON or k in ("max_position_embeddings",
                                                                                "pad_token_id")}
        settings["initializer_range"] = initializer_range
    if task == "classification":
        settings.update(id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    elif task == "token-classification":
        tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
        settings.update(id2label=dict(enumerate(tags)), label2id={t: i for i, t in enumerate(tags)})
    config = AutoConfig.for_model(model_type, **settings)
    torch.manual_seed(seed)
    model = getattr(transformers, TASK_CLASSES[task]).from_config(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if task == "embedding":
        from edgedistill.training.embedding import write_sentence_transformers_files

        write_sentence_transformers_files(folder, HIDDEN, "mean", 32)
    return folder


# -- the support matrix -------------------------------------------------------------------------------

CELLS = ("student", "onnx", "tflite", "coreml")
# Each backend's cell: its fp32 export under the fp32 gate (max |diff| <= 1e-4), then its int8 export.
PROFILES = {"onnx": ("onnx-fp32", "onnx-int8-dynamic"), "tflite": ("tflite-fp32", "tflite-int8-dynamic"),
            "coreml": ("coreml-fp32", "coreml-int8-weights")}
MAX_LENGTH = 32
BUCKETS = [16, MAX_LENGTH]  # Core ML's enumerated shapes need two or more
# The int8 exports' gate in the matrix: every bound open, so it passes when the file converts, loads, runs on the
# eval split and gives finite outputs (a non-finite output fails any comparison).
RUNS_AND_FINITE = {"max_abs": 1e30, "min_agreement": 0.0, "max_accuracy_drop": 1e30, "min_cosine_mean": -1.0,
                   "min_cosine": -1.0, "min_neighbour_overlap": 0.0}
IDENTITY_ATOL = 1e-5


def toy_task_data(task: str, root: Path) -> Any:
    """The task's toy data set, written under ``root`` and loaded as the exports' gate reads it."""
    from conftest import toy_rows, write_tsv
    from toy_data import tagged_sentences, write_conll, write_sts

    from edgedistill.core.config import load_config
    from edgedistill.tasks import load_data

    folder = root / f"data-{task}"
    folder.mkdir(parents=True, exist_ok=True)
    if task == "classification":
        write_tsv(folder / "train.tsv", toy_rows(64, seed=1))
        write_tsv(folder / "dev.tsv", toy_rows(48, seed=2))
        overrides = {"data.label_names": ["negative", "positive"]}
    elif task == "token-classification":
        write_conll(folder / "train.txt", tagged_sentences(64, seed=1))
        write_conll(folder / "valid.txt", tagged_sentences(40, seed=2))
        overrides = {}
    else:
        write_sts(folder / "sts-train.csv", 40, seed=1)
        write_sts(folder / "sts-dev.csv", 30, seed=2)
        overrides = {}
    config = load_config(overrides={"task": task, "data.dataset": str(folder), "data.max_length": MAX_LENGTH,
                                    **overrides})
    return load_data(config)


def student_cell(model_dir: Path, task: str) -> str:
    """Student init from the teacher with every layer kept (the identity map): hidden states on real tokens within
    1e-5 of the teacher's, and a student of fewer layers builds and runs; "pass" or why not, in one line."""
    import torch

    from edgedistill.tasks import get_task
    from edgedistill.training.distill.student import build_student

    try:
        teacher = get_task(task).load_model(model_dir).eval()
        student, _ = build_student(teacher, LAYERS, list(range(LAYERS)))
        smaller, _ = build_student(teacher, 1)
        ids = torch.randint(5, teacher.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
        ids[:, 0], ids[:, -1], ids[1, 8] = 2, 3, 3
        mask = torch.ones_like(ids)
        mask[1, 9:], ids[1, 9:] = 0, 0
        with torch.no_grad():
            want = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            got = student.eval()(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
            smaller.eval()(input_ids=ids, attention_mask=mask)
        real = mask[..., None].bool()
        diff = max(float((w - g).masked_fill(~real, 0).abs().max()) for w, g in zip(want, got))
    except Exception as exc:  # noqa: BLE001 - the cell records any failure as its reason
        return one_line(exc)
    if diff > IDENTITY_ATOL:
        return f"{type(student).__name__} with the identity layer map differs from the teacher by {diff:.2g}"
    return "pass"


def backend_cell(model_dir: Path, backend: str, data: Any, out: Path) -> str:
    """The backend's fp32 export through the fp32 gate, then its int8 export converted, run on the eval split and
    checked finite (a random model's int8 agreement says nothing about a family: the real gates are the
    pipelines'); "pass" or the first failure."""
    from edgedistill.core.config import Tolerance
    from edgedistill.core.targets import load_target
    from edgedistill.export.stage import ExportSettings, export_target

    settings = ExportSettings(max_length=MAX_LENGTH, threads=1, calibration_samples=16, seed=0)
    fp32, int8 = PROFILES[backend]
    for name in (fp32, int8):
        target = load_target(name)
        if "buckets" in target.options:
            target = target.model_copy(update={"options": {**target.options, "buckets": BUCKETS}})
        if "weight_threshold" in target.options:  # the tiny matrices are below the default 2,048 elements
            target = target.model_copy(update={"options": {**target.options, "weight_threshold": 256}})
        if name == int8:
            target = target.model_copy(update={"tolerance": Tolerance(**RUNS_AND_FINITE)})
        try:
            export_target(model_dir, target, data, out / name, settings)
        except Exception as exc:  # noqa: BLE001 - the cell records any failure as its reason
            return f"{name}: {one_line(exc)}"
    return "pass"


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one line: its type and the first line of its message without the scratch paths, shortened."""
    import re

    first = (str(exc).strip().splitlines() or [""])[0]
    first = re.sub(r" (against|of|convert) /\S+", r" \1 the model", first)
    first = re.sub(r"/\S+\.mlpackage", "the package", first)
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def support_table(matrix: dict[str, dict[str, dict[str, str]]]) -> str:
    """The README's Markdown of ``families.json``: per task, one row per family and one column per cell, a check
    mark or a numbered note with the failure's one-line reason (notes numbered across the tasks)."""
    from edgedistill.core.families import FAMILIES

    lines: list[str] = []
    notes: list[str] = []
    for task, families in matrix.items():
        lines += [f"**{task}**", "", "| family | " + " | ".join(CELLS) + " |", "|" + " --- |" * (len(CELLS) + 1)]
        for family, spec in FAMILIES.items():
            row = [f"{spec.title} (`{family}`)"]
            for cell in CELLS:
                value = families.get(family, {}).get(cell, "not run")
                if value == "pass":
                    row.append("✓")
                else:
                    notes.append(value)
                    row.append(f"✗ [{len(notes)}]")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    lines += [f"[{i}] {note}  " for i, note in enumerate(notes, 1)]
    return "\n".join(lines).rstrip() + "\n"
