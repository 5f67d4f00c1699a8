"""The embedding recipe: a sentence-transformers teacher used as it is, and a student that learns its vectors.

Teacher stage: the teacher (a sentence-transformers folder, a plain BERT-family folder with mean pooling, or the
packaged all-MiniLM-L6-v2) is saved to ``<workdir>/teacher/`` as an encoder with its pooling recorded and the
sentence-transformers files beside it, and scored on the STS eval pairs; nothing is trained.

Distill stage: the student is a DistilBERT encoder built from the teacher's layers as the DistilBERT paper
initialises it (:mod:`.distill.student`), the first and the last kept and the rest evenly between
(:func:`~edgedistill.training.distill.student.ends_layer_map`: 0, 3, 5 of 6), trained on unlabelled sentences
to reproduce the teacher's normalised sentence vectors: ``alpha_embedding · ‖s - t‖²`` per sentence (= 2 - 2 cos;
the sentence-transformers distillation recipe's MSE, summed over the dimensions) ``+ alpha_cos · (1 - cos)`` of
the last hidden states on the real tokens ``+ alpha_mse ·`` the mean squared error between each student layer's
output and that of the teacher layer it was copied from (TinyBERT's hidden-state term; off by default). Its vectors therefore live in the teacher's space: an index the
teacher built can be queried by the student. The corpus: every task training sentence, the files of
``distill.corpus`` (a seeded sample under ``corpus_max_sentences``), and ``distill.augment.variants``
word-replacement variants of each task sentence; the task defaults train without dropout (``distill.dropout``):
both came closer to the teacher on held-out sentences (``benchmarks/results/embeddings/recipe-trials.md``). The baseline is the same student untrained (the teacher's layers,
truncated). Both folders load with ``SentenceTransformer(folder)``. Each role's ``metrics.json`` holds the STS
Spearman, its retention of the teacher's, the mean cosine to the teacher's vector per eval sentence and the
cross-retrieval top-10 overlap.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgedistill.core.cache import run_cached_stage
from edgedistill.core.config import Config, dump_config
from edgedistill.core.errors import ConfigError, ModelError
from edgedistill.core.hashing import model_folder_hash, sha256_json
from edgedistill.core.host import host_info
from edgedistill.core.models import ModelSource, load_model_config, resolve_model
from edgedistill.data.task_data import TaskData
from edgedistill.tasks import get_task
from edgedistill.training.common import MODEL_OUTPUTS, TeacherResult, stop_if_nothing_learnt

log = logging.getLogger("edgedistill.embedding")

ST_MODULES = [
    {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
    {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
]


# -- sentence-transformers folders ------------------------------------------------------------------


def source_pooling(folder: Path) -> str:
    """The pooling a sentence-transformers folder configures (``modules.json`` -> its Pooling module's
    ``config.json``); mean for a plain encoder folder. Anything but mean or [CLS] pooling is refused."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return "mean"
    try:
        modules = json.loads(modules_file.read_text(encoding="utf-8"))
        pooling = next((m for m in modules if m.get("type", "").endswith("Pooling")), None)
        if pooling is None:
            return "mean"
        settings = json.loads((folder / pooling["path"] / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{modules_file}: cannot read the pooling configuration ({exc})") from None
    modes = [key.removeprefix("pooling_mode_").removesuffix("_token").removesuffix("_tokens")
             for key, on in settings.items() if key.startswith("pooling_mode_") and on]
    if modes == ["mean"] or modes == ["cls"]:
        return modes[0]
    raise ModelError(f"{folder / pooling['path'] / 'config.json'}: pooling {modes or 'none'} is not supported; "
                     "edgedistill exports mean or [CLS] pooling")


def write_sentence_transformers_files(folder: Path, dimension: int, pooling: str, max_length: int) -> None:
    """``modules.json``, the Pooling and Normalize modules and ``sentence_bert_config.json``: what makes a
    ``save_pretrained`` encoder folder load with ``SentenceTransformer(folder)`` and give the same vectors."""
    (folder / "modules.json").write_text(json.dumps(ST_MODULES, indent=2) + "\n", encoding="utf-8")
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "2_Normalize").mkdir(exist_ok=True)
    settings = {"word_embedding_dimension": dimension, "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_length, "do_lower_case": False}, indent=2) + "\n", encoding="utf-8")


def save_encoder(model: Any, tokenizer: Any, out: Path, role: str, pooling: str, max_length: int,
                 extra: dict[str, Any] | None = None) -> None:
    """An encoder folder of the embedding task: ``save_pretrained`` + tokenizer + sentence-transformers files."""
    import inspect

    from edgedistill.tasks.embedding import TASK
    from edgedistill.training.distill.student import hidden_size_of

    model.config.edgedistill = {"task": TASK.name, "role": role, "pooling": pooling, **(extra or {})}
    model.save_pretrained(out)
    if "token_type_ids" not in inspect.signature(model.forward).parameters:  # DistilBERT: ids and mask only, as
        from transformers import AutoTokenizer  # the classification students (sentence-transformers feeds them all)

        tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path,
                                                  model_input_names=["input_ids", "attention_mask"])
    tokenizer.save_pretrained(out)
    write_sentence_transformers_files(out, hidden_size_of(model), pooling, max_length)


# -- vectors ----------------------------------------------------------------------------------------


def encode_texts(module: Any, tokenizer: Any, texts: list[str], max_length: int, batch_size: int,
                 progress: str | None = None) -> np.ndarray:
    """The vectors of ``module`` (an :func:`edgedistill.tasks.embedding.embedding_module`) for ``texts``, in
    order; batches of similar length (little padding), no gradients."""
    import torch
    from tqdm.auto import tqdm

    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    order = np.argsort(lengths, kind="stable")
    chunks = []
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc=progress, disable=progress is None, leave=False):
            batch = [texts[i] for i in order[start:start + batch_size]]
            encoded = tokenizer(batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt",
                                return_token_type_ids=False)
            chunks.append(module(encoded["input_ids"], encoded["attention_mask"]).float().numpy())
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    stacked = np.concatenate(chunks)
    out = np.empty_like(stacked)
    out[order] = stacked  # back in the order of ``texts``
    return out


def vector_scores(task: Any, vectors: np.ndarray, teacher_vectors: np.ndarray | None, data: TaskData,
                  teacher_spearman: float | None) -> dict[str, Any]:
    """A model's eval scores: the task's metrics (Spearman, Pearson), and beside the teacher's vectors the
    retention of its Spearman, the mean / min cosine to its vector per sentence and the cross-retrieval overlap."""
    from edgedistill.tasks.embedding import cross_retrieval_overlap, row_cosines

    labels = np.asarray(data.eval.labels, dtype=np.float64)
    scores: dict[str, Any] = {f"eval_{k}": v for k, v in task.metrics(vectors, labels).items()}
    if teacher_vectors is not None:
        cosines = row_cosines(vectors, teacher_vectors)
        scores.update({"retention_of_teacher_spearman": scores["eval_spearman"] / teacher_spearman,
                       "cosine_to_teacher_mean": float(cosines.mean()),
                       "agreement_with_teacher": float(cosines.mean()),  # the task's agreement: the mean cosine
                       "cosine_to_teacher_min": float(cosines.min()),
                       "cross_retrieval_top10": cross_retrieval_overlap(vectors, teacher_vectors)})
    return scores


# -- the teacher stage ------------------------------------------------------------------------------


def run_teacher(config: Config, *, force: bool = False, data: TaskData) -> TeacherResult:
    """The teacher as it is, saved as an encoder folder and scored; cached on its content and the data."""
    task = get_task(config.task)
    if config.teacher.train == "always":
        raise ConfigError("teacher.train: always: the embedding task uses its teacher as it is (its vectors are "
                          "what the student learns); set teacher.train to never or auto")
    source = resolve_model(config.teacher.model)
    model_config = load_model_config(source)
    inputs = {"model": source.fingerprint(), "data": data.fingerprint, "max_length": config.data.max_length,
              "recipe": "embedding"}
    out = Path(config.workdir) / "teacher"
    metrics, cached = run_cached_stage("teacher", out, inputs, MODEL_OUTPUTS,
                                       lambda tmp: _save_teacher(config, task, source, model_config, data, tmp),
                                       dump_config(config), force=force)
    if not cached:
        log.info("teacher: saved to %s (eval Spearman %.2f)", out, metrics["eval_spearman"])
    return TeacherResult(out, metrics, cached=cached)


def _save_teacher(config: Config, task: Any, source: ModelSource, model_config: Any, data: TaskData,
                  out: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer

    from edgedistill.tasks.embedding import embedding_module

    torch.set_num_threads(config.threads)
    folder = Path(source.location) if source.is_local else None
    pooling = source_pooling(folder) if folder is not None else "mean"
    log.info("teacher: %s (%s, %d layers, hidden %d, %s pooling) from %s, used as it is", source.reference,
             model_config.model_type, getattr(model_config, "num_hidden_layers", -1),
             getattr(model_config, "hidden_size", -1), pooling, source.location)
    model = task.load_model(source.location, local_files_only=source.is_local).eval()
    tokenizer = AutoTokenizer.from_pretrained(source.location, local_files_only=source.is_local)
    save_encoder(model, tokenizer, out, "teacher", pooling, config.data.max_length)
    log.info("data: %d eval sentences (%d pairs)", len(data.eval), len(data.eval.labels))
    vectors = encode_texts(embedding_module(model, None), tokenizer, data.eval.texts, config.data.max_length,
                           config.teacher.eval_batch_size, progress="teacher vectors")
    return {"role": "teacher", "model": source.reference, "model_type": model_config.model_type,
            "parameters": sum(p.numel() for p in model.parameters()), "pooling": pooling, "fine_tuned": False,
            **vector_scores(task, vectors, None, data, None), "dimension": int(vectors.shape[1]),
            "train_time_s": 0.0, "eval_samples": len(data.eval), "eval_pairs": len(data.eval.labels),
            "data_sources": data.sources, "command": sys.argv, "host": host_info(config.threads)}


# -- the distill stage ------------------------------------------------------------------------------


def corpus_sentences(config: Config, data: TaskData) -> tuple[list[str], list[dict[str, Any]]]:
    """The distinct sentences the student learns on (the task data's training sentences, then
    ``distill.corpus``; over ``corpus_max_sentences``, every task sentence and a seeded sample of the rest), and
    where each part came from. The eval sentences are never among them."""
    from edgedistill.data.unlabelled import read_unlabelled, train_files_beside

    parts: list[tuple[str, list[str]]] = [("task data: training sentences", list(data.train.texts))]
    corpus = config.distill.corpus
    if corpus == "auto":
        local = Path(config.data.dataset)
        files = train_files_beside(local if local.is_dir() else local.parent) if local.exists() else []
        if not files:
            log.info("distill.corpus: auto found no data sets beside %s: the student learns on the task data's "
                     "sentences alone (name more text with distill.corpus)", config.data.dataset)
    else:
        files = [Path(f) for f in corpus]
    for file in files:
        texts, _ = read_unlabelled(file, config.data.model_copy(update={"text_pair_column": None}), "corpus")
        parts.append((str(file), texts))
    held_out = set(data.eval.texts)
    seen: set[str] = set()
    sentences: list[str] = []
    sources = []
    for name, texts in parts:
        fresh = 0
        for text in (t.strip() for t in texts):
            if text and text not in seen and text not in held_out:
                seen.add(text)
                sentences.append(text)
                fresh += 1
        sources.append({"source": name, "sentences": fresh})
    limit = config.distill.corpus_max_sentences
    if limit is not None and len(sentences) > limit:  # the task's own sentences all stay: the closest to what
        kept = sources[0]["sentences"]  # the task is scored on (a seeded sample of the rest fills the cap)
        rest = random.Random(config.seed).sample(range(kept, len(sentences)), max(0, limit - kept))
        sentences = sentences[:kept] + [sentences[i] for i in sorted(rest)]
    log.info("corpus: %d distinct sentences%s (%s)", len(sentences),
             f" (at most {limit}: every task sentence, a seeded sample of the rest)" if limit else "",
             "; ".join(f"{s['sentences']} from {s['source']}" for s in sources))
    return sentences, sources


def task_variants(config: Config, teacher_dir: Path, task_sentences: list[str], exclude: set[str]) -> list[str]:
    """``distill.augment.variants`` word-replacement variants of each task training sentence (TinyBERT's
    augmentation, :mod:`edgedistill.training.distill.augment`: words replaced by neighbours in the teacher's
    word-embedding space), none of them already in ``exclude``; at most ``augment.max_samples`` (seeded). More
    text like the text the task is scored on: the teacher gives each its vector like any corpus sentence."""
    from transformers import AutoTokenizer

    from edgedistill.training.distill.augment import make_variants, teacher_neighbours

    settings = config.distill.augment
    neighbours = teacher_neighbours(AutoTokenizer.from_pretrained(teacher_dir),
                                    get_task(config.task).load_model(teacher_dir), task_sentences, settings.neighbours)
    rng = random.Random(config.seed)
    variants, _ = make_variants(task_sentences, None, neighbours, settings.variants, settings.replace_prob, rng)
    variants = [v for v in dict.fromkeys(variants) if v not in exclude]
    if settings.max_samples is not None and len(variants) > settings.max_samples:
        variants = [variants[i] for i in sorted(rng.sample(range(len(variants)), settings.max_samples))]
    return variants


def run_distill(config: Config, teacher: TeacherResult, data: TaskData, *, force: bool = False) -> list[Any]:
    """The distilled student and (unless disabled) the untrained baseline, each cached on its own."""
    from edgedistill.training.distill.stage import DistillResult

    if config.distill.qat.enabled:
        raise ConfigError("distill.qat.enabled: quantization-aware training is built for classification students; "
                          "set it to false for the embedding task (its full-integer exports are gated as they are)")
    if config.distill.augment.file:
        raise ConfigError(f"distill.augment.file: {config.distill.augment.file}: the embedding task's unlabelled "
                          "text is distill.corpus; name the file there")
    teacher_hash = model_folder_hash(teacher.path)
    sentences, sources = corpus_sentences(config, data)
    if config.distill.augment.variants:
        task_sentences = sentences[:sources[0]["sentences"]]
        variants = task_variants(config, teacher.path, task_sentences, set(sentences) | set(data.eval.texts))
        sentences += variants
        sources.append({"source": f"word-replacement variants of the task sentences "
                                  f"({config.distill.augment.variants} per sentence at most)", "sentences": len(variants)})
        log.info("corpus: %d word-replacement variants of the %d task sentences", len(variants), len(task_sentences))
    results = []
    for role in ("student", "baseline") if config.distill.baseline else ("student",):
        d = config.distill
        inputs = {"teacher": teacher_hash, "data": data.fingerprint, "max_length": config.data.max_length,
                  "layers": d.layers, "layer_map": d.layer_map or "first, last, evenly between",
                  "hidden_size": d.hidden_size, "seed": config.seed, "recipe": "embedding"}
        if d.student_architecture != "auto":  # auto decides from the teacher, which the key already holds
            inputs["student_architecture"] = d.student_architecture
        if role == "student":
            schedule = d.model_dump(include={"epochs", "learning_rate", "weight_decay", "warmup_ratio", "batch_size",
                                             "alpha_embedding", "alpha_cos", "alpha_mse"})
            if not schedule["alpha_mse"]:  # students cached before the term existed stay cached
                del schedule["alpha_mse"]
            if d.dropout is not None:
                schedule["dropout"] = d.dropout
            inputs.update({"corpus": sha256_json(sentences), "schedule": schedule})
        out = Path(config.workdir) / role
        metrics, cached = run_cached_stage(
            role, out, inputs, MODEL_OUTPUTS,
            lambda tmp, role=role: _build_student(config, role, teacher, data, sentences, sources, tmp),
            dump_config(config), force=force)
        if not cached:
            log.info("%s: saved to %s (eval Spearman %.2f, %.1f%% of the teacher; cosine to the teacher %.4f, "
                     "cross-retrieval top-10 %.2f%%)", role, out, metrics["eval_spearman"],
                     100 * metrics["retention_of_teacher_spearman"], metrics["cosine_to_teacher_mean"],
                     100 * metrics["cross_retrieval_top10"])
        results.append(DistillResult(role, out, metrics, cached))
    return results


def _build_student(config: Config, role: str, teacher: TeacherResult, data: TaskData, sentences: list[str],
                   sources: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer, set_seed

    from edgedistill.core.families import family_of
    from edgedistill.tasks.embedding import embedding_module, pooling_of
    from edgedistill.training.distill.student import build_student, ends_layer_map, set_dropout

    torch.set_num_threads(config.threads)
    set_seed(config.seed)
    task = get_task(config.task)
    d = config.distill
    tokenizer = AutoTokenizer.from_pretrained(teacher.path)
    teacher_model = task.load_model(teacher.path).eval()
    pooling = pooling_of(teacher_model)
    chosen = d.layer_map
    if chosen is None and d.hidden_size in (None, teacher_model.config.hidden_size) \
            and family_of(teacher_model.config.model_type).layer_list is not None:  # not ALBERT's shared layer
        chosen = ends_layer_map(teacher_model.config.num_hidden_layers, d.layers)
    student, layer_map = build_student(teacher_model, d.layers, chosen, d.hidden_size, d.student_architecture)
    log.info("%s: %s, %d layers, %.1fM parameters, init from %s", role, type(student).__name__, d.layers,
             sum(p.numel() for p in student.parameters()) / 1e6,
             f"teacher layers {layer_map}" if layer_map else "random (narrower than the teacher)")
    started = time.perf_counter()
    fit: dict[str, Any] = {"steps": 0, "epochs": 0}
    if role == "student":
        if d.dropout is not None:
            set_dropout(student, d.dropout)
        fit = _fit(config, student, teacher_model, tokenizer, sentences, pooling, model_folder_hash(teacher.path),
                   layer_map)
    else:
        log.info("baseline: the student as initialised, untrained: what distillation adds is the difference")
    train_time = round(time.perf_counter() - started, 2)
    student.eval()
    save_encoder(student, tokenizer, out, role, pooling, config.data.max_length, {"layer_map": layer_map})
    batch = d.eval_batch_size
    teacher_vectors = encode_texts(embedding_module(teacher_model, None), tokenizer, data.eval.texts,
                                   config.data.max_length, batch)
    vectors = encode_texts(embedding_module(student, None), tokenizer, data.eval.texts, config.data.max_length, batch)
    scores = vector_scores(task, vectors, teacher_vectors, data, teacher.metrics["eval_spearman"])
    if role == "student":
        stop_if_nothing_learnt(task, scores, np.asarray(data.eval.labels), role,
                               "distill.epochs, distill.learning_rate, distill.corpus", config.require_learning)
    return {"role": role, "teacher": str(teacher.path), "layer_map": layer_map, "pooling": pooling,
            "parameters": sum(p.numel() for p in student.parameters()),
            **scores, "teacher_eval_spearman": teacher.metrics["eval_spearman"], **fit, "train_time_s": train_time,
            "corpus_sentences": len(sentences) if role == "student" else 0,
            "corpus_sources": sources if role == "student" else [], "eval_samples": len(data.eval),
            "eval_pairs": len(data.eval.labels), "command": sys.argv, "host": host_info(config.threads)}


def teacher_vectors(teacher: Any, tokenizer: Any, sentences: list[str], max_length: int, batch_size: int,
                    teacher_hash: str) -> np.ndarray:
    """The teacher's vectors for the corpus, kept in the user cache (``teacher-vectors/``, named by the teacher's
    content, the sentences and the length) so that another seed or workdir does not compute them again."""
    from edgedistill.core.cache import user_cache_dir
    from edgedistill.tasks.embedding import embedding_module

    key = sha256_json({"teacher": teacher_hash, "sentences": sentences, "max_length": max_length})[:32]
    path = user_cache_dir("teacher-vectors") / f"{key}.npy"
    if path.is_file():
        log.info("student: the teacher's vectors for %d corpus sentences, from %s", len(sentences), path)
        return np.load(path)
    log.info("student: the teacher's vectors for %d corpus sentences", len(sentences))
    vectors = encode_texts(embedding_module(teacher, None), tokenizer, sentences, max_length, batch_size,
                           progress="teacher vectors")
    partial = path.with_suffix(".partial.npy")
    np.save(partial, vectors)
    partial.replace(path)
    return vectors


def _fit(config: Config, student: Any, teacher: Any, tokenizer: Any, sentences: list[str],
         pooling: str, teacher_hash: str, layer_map: list[int] | None) -> dict[str, Any]:
    """Train ``student`` to reproduce the teacher's normalised vectors on ``sentences``: AdamW, linear warm-up
    and decay, batches of similar length (shuffled batch order each epoch), the teacher's vectors computed once
    (its hidden states per batch only when ``alpha_cos`` or ``alpha_mse`` needs them)."""
    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from edgedistill.tasks.embedding import pool
    from edgedistill.training.distill.losses import cosine_alignment_loss, hidden_mse_loss

    d = config.distill
    task = get_task(config.task)
    targets = torch.from_numpy(teacher_vectors(teacher, tokenizer, sentences, config.data.max_length,
                                               d.eval_batch_size, teacher_hash))
    encoded = tokenizer(sentences, truncation=True, max_length=config.data.max_length)["input_ids"]
    lengths = [len(ids) for ids in encoded]
    order = sorted(range(len(sentences)), key=lambda i: lengths[i])
    batches = [order[i:i + d.batch_size] for i in range(0, len(order), d.batch_size)]
    steps = math.ceil(len(batches) * d.epochs)
    optimizer = torch.optim.AdamW(student.parameters(), lr=d.learning_rate, weight_decay=d.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, round(d.warmup_ratio * steps), steps)
    rng = random.Random(config.seed)
    names = ["loss_embedding"] + ["loss_cos"] * bool(d.alpha_cos) + ["loss_mse"] * bool(d.alpha_mse)
    if d.alpha_mse and not layer_map:
        raise ConfigError("distill.alpha_mse pairs each student layer with the teacher layer it was copied from; "
                          "a narrower student has none: set alpha_mse to 0")
    student.train()
    losses, step, history = [], 0, []
    progress = tqdm(total=steps, desc="student", leave=False)
    while step < steps:
        rng.shuffle(batches)
        for batch in batches[: steps - step]:
            padded = tokenizer([sentences[i] for i in batch], padding=True, truncation=True,
                               max_length=config.data.max_length, return_tensors="pt", return_token_type_ids=False)
            ids, mask = padded["input_ids"], padded["attention_mask"]
            states = student(input_ids=ids, attention_mask=mask, output_hidden_states=bool(d.alpha_mse))
            hidden = states.last_hidden_state
            loss, _ = task.prediction_loss(pool(hidden, mask, pooling), targets[batch], None, d.alpha_embedding,
                                           0.0, 1.0)
            parts = [loss.item()]
            if d.alpha_cos or d.alpha_mse:
                with torch.no_grad():
                    teacher_states = teacher(input_ids=ids, attention_mask=mask,
                                             output_hidden_states=bool(d.alpha_mse))
            if d.alpha_cos:
                cosine = cosine_alignment_loss(hidden, teacher_states.last_hidden_state, mask)
                loss = loss + d.alpha_cos * cosine
                parts.append(cosine.item())
            if d.alpha_mse:  # student layer k imitates the output of the teacher layer it was copied from
                mse = torch.stack([hidden_mse_loss(states.hidden_states[k + 1],
                                                   teacher_states.hidden_states[t + 1], mask)
                                   for k, t in enumerate(layer_map)]).mean()
                loss = loss + d.alpha_mse * mse
                parts.append(mse.item())
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(parts)
            step += 1
            progress.update()
            if step % d.logging_steps == 0 or step == steps:
                recent = np.mean(losses[-d.logging_steps:], axis=0)
                progress.set_postfix(loss=f"{recent.sum():.4f}")
                history.append({"step": step, **{name: round(float(v), 6) for name, v in zip(names, recent)}})
                log.info("student: step %d/%d, %s, lr %.2e", step, steps,
                         ", ".join(f"{name} {v:.5f}" for name, v in zip(names, recent)), schedule.get_last_lr()[0])
    progress.close()
    last_epoch = np.mean(losses[-len(batches):], axis=0)
    return {"steps": steps, "epochs": d.epochs, "train_loss_embedding": float(last_epoch[0]),
            **{f"train_{name}": float(v) for name, v in zip(names[1:], last_epoch[1:])},
            "loss_history": history}
