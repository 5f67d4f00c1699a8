"""Embedding-student recipe trials, chosen on sentences held out of the corpus (never on the STS-B dev split).

    .venv/bin/python benchmarks/embedding_trials.py --name dropout0 --dropout 0 --sentences 30000 --epochs 2

One trial = the embedding recipe as it stood before these trials (``edgedistill run --task embedding``'s distill
stage, ``_fit``: the 3-layer student from all-MiniLM-L6-v2's layers 0, 3, 5, MSE on the normalised vectors, AdamW,
length-grouped batches of 64; the teacher's dropout, a uniform sample of the corpus, no variants) on a seeded
sample of the default corpus, with the flags changing one thing. Before sampling, 1,000 of the task's training sentences
and 1,000 of the other corpus sentences (seeded) are set aside; the trial is judged on them: the student's mean
cosine to the teacher's vector on sentences it never saw, from the task's own text and from the rest of the mix. The same cosine on 2,000 of its *training* sentences tells
capacity (both low) from generalisation (train high, held-out low). STS-B dev figures (Spearman, cosine,
cross-retrieval top-10) are printed and recorded beside them, as what the choice gave, not what made it.

Each trial appends one record to ``--out`` (default benchmarks/results/embeddings/trials.json); the teacher's
vectors for the whole corpus are computed once and kept in the user cache, as the distill stage keeps them.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

HOLDOUT = 2000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True)
    parser.add_argument("--data", default="../shared/data/stsb")
    parser.add_argument("--sentences", type=int, default=30000, help="training sentences sampled from the corpus")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--dropout", type=float, default=None, help="the student's dropout (default: the teacher's)")
    parser.add_argument("--freeze-word-embeddings", action="store_true", help="keep the teacher's word embeddings")
    parser.add_argument("--task-first", action="store_true",
                        help="every task training sentence in the sample, the rest drawn from the other sources")
    parser.add_argument("--variants", type=int, default=0,
                        help="word-replacement variants per task training sentence, inside --sentences")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--workdir", default="/tmp/embedding-trials")
    parser.add_argument("--out", default="benchmarks/results/embeddings/trials.json")
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer, set_seed

    import edgedistill.training.embedding as recipe
    from edgedistill.core.config import load_config
    from edgedistill.core.hashing import model_folder_hash
    from edgedistill.tasks import get_task, load_data
    from edgedistill.tasks.embedding import embedding_module, pooling_of, row_cosines
    from edgedistill.training.distill.student import build_student, ends_layer_map

    overrides = {"task": "embedding", "data.dataset": args.data, "workdir": args.workdir, "seed": args.seed,
                 "distill.corpus_max_sentences": None, "distill.epochs": args.epochs,
                 "distill.augment.variants": args.variants}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = json.loads(value) if value[:1] in "0123456789-[{tfn" else value
    config = load_config(overrides=overrides)
    torch.set_num_threads(config.threads)
    data, task = load_data(config), get_task("embedding")
    teacher = recipe.run_teacher(config, data=data)
    corpus, _ = recipe.corpus_sentences(config, data)
    tokenizer = AutoTokenizer.from_pretrained(teacher.path)
    teacher_model = task.load_model(teacher.path).eval()
    teacher_hash = model_folder_hash(teacher.path)
    all_vectors = recipe.teacher_vectors(teacher_model, tokenizer, corpus, 128, 128, teacher_hash)
    row_of = {text: i for i, text in enumerate(corpus)}

    task_rows = [row_of[t] for t in dict.fromkeys(t.strip() for t in data.train.texts) if t in row_of]
    other_rows = sorted(set(range(len(corpus))) - set(task_rows))
    task_rows = random.Random(1234).sample(task_rows, len(task_rows))
    other_rows = random.Random(1234).sample(other_rows, len(other_rows))
    held_task, held_other = task_rows[:HOLDOUT // 2], other_rows[:HOLDOUT // 2]
    task_pool, other_pool = task_rows[HOLDOUT // 2:], other_rows[HOLDOUT // 2:]
    rng = random.Random(args.seed)
    if args.task_first or args.variants:
        train = task_pool + rng.sample(other_pool, max(0, args.sentences - len(task_pool) * (1 + args.variants)))
    else:
        train = rng.sample(task_pool + other_pool, min(args.sentences, len(task_pool) + len(other_pool)))
    sentences = [corpus[i] for i in sorted(train)]
    lookup = dict(zip(corpus, all_vectors))
    if args.variants:
        variants = recipe.task_variants(config, teacher.path, [corpus[i] for i in task_pool], set(lookup))
        vectors = recipe.encode_texts(embedding_module(teacher_model, None), tokenizer, variants, 128, 128)
        lookup.update(zip(variants, vectors))
        sentences += variants
    recipe.teacher_vectors = lambda _t, _k, texts, *_a: np.stack([lookup[t] for t in texts])

    set_seed(args.seed)
    student, layer_map = build_student(teacher_model, config.distill.layers,
                                       ends_layer_map(teacher_model.config.num_hidden_layers, config.distill.layers))
    if args.dropout is not None:
        for module in student.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = args.dropout
    if args.freeze_word_embeddings:
        student.get_input_embeddings().weight.requires_grad_(False)
    started = time.perf_counter()
    fit = recipe._fit(config, student, teacher_model, tokenizer, sentences, pooling_of(teacher_model), teacher_hash,
                      layer_map)
    seconds = time.perf_counter() - started
    student.eval()
    module = embedding_module(student, None)

    def cosine(indices: list[int]) -> float:
        texts = [corpus[i] for i in indices]
        vectors = recipe.encode_texts(module, tokenizer, texts, 128, 128)
        return float(row_cosines(vectors, all_vectors[indices]).mean())

    dev_teacher = recipe.encode_texts(embedding_module(teacher_model, None), tokenizer, data.eval.texts, 128, 128)
    dev = recipe.vector_scores(task, recipe.encode_texts(module, tokenizer, data.eval.texts, 128, 128), dev_teacher,
                               data, teacher.metrics["eval_spearman"])
    record = {"name": args.name, "sentences": len(sentences), "epochs": args.epochs, "seed": args.seed,
              "dropout": args.dropout,
              "freeze_word_embeddings": args.freeze_word_embeddings,
              "task_first": args.task_first, "variants": args.variants, "overrides": args.set, "steps": fit["steps"],
              "train_loss_embedding": fit["train_loss_embedding"], "train_s": round(seconds, 1),
              "cosine_held_out_task": cosine(held_task), "cosine_held_out_other": cosine(held_other),
              "cosine_train": cosine(random.Random(7).sample(train, HOLDOUT)),
              "dev_spearman": dev["eval_spearman"], "dev_cosine": dev["cosine_to_teacher_mean"],
              "dev_cross_retrieval_top10": dev["cross_retrieval_top10"], "threads": config.threads}
    print(json.dumps(record, indent=1))
    out = Path(args.out)
    records = json.loads(out.read_text()) if out.is_file() else []
    out.write_text(json.dumps(records + [record], indent=1) + "\n")


if __name__ == "__main__":
    main()
