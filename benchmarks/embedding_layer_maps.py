"""Which teacher layers an embedding student should keep: each map, untrained, on STS-B *train* pairs.

    .venv/bin/python benchmarks/embedding_layer_maps.py --data ../shared/data/stsb     # ~1 min, 2 threads

For every layer map of 3 out of all-MiniLM-L6-v2's 6 layers listed below, the student built from those layers
(no training) embeds the first 2,000 STS-B training sentences (1,000 pairs): Spearman of its pair cosines
against the gold scores, and the mean cosine of its vectors to the teacher's. Train pairs, so that choosing the
map does not look at the dev split the task is scored on (results/embeddings/recipe-trials.md records them).
"""

from __future__ import annotations

import argparse

import numpy as np

MAPS = ([0, 2, 4], [1, 3, 5], [0, 2, 5], [0, 3, 5], [0, 1, 5], [0, 4, 5])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/stsb")
    parser.add_argument("--pairs", type=int, default=1000)
    args = parser.parse_args()
    import torch
    from transformers import AutoTokenizer

    from edgedistill.core.config import load_config
    from edgedistill.core.models import resolve_model
    from edgedistill.tasks import get_task, load_data
    from edgedistill.tasks.embedding import embedding_module, row_cosines
    from edgedistill.training.distill.student import build_student
    from edgedistill.training.embedding import encode_texts

    torch.set_num_threads(2)
    config = load_config(overrides={"task": "embedding", "data.dataset": args.data})
    data, task = load_data(config), get_task("embedding")
    source = resolve_model(config.teacher.model)
    teacher = task.load_model(source.location).eval()
    tokenizer = AutoTokenizer.from_pretrained(source.location)
    texts, labels = data.train.texts[: 2 * args.pairs], np.asarray(data.train.labels[: args.pairs])
    reference = encode_texts(embedding_module(teacher, None), tokenizer, texts, 128, 128)
    print(f"teacher: Spearman {task.metrics(reference, labels)['spearman']:.2f}")
    for layer_map in MAPS:
        student, _ = build_student(teacher, 3, layer_map)
        vectors = encode_texts(embedding_module(student.eval(), None), tokenizer, texts, 128, 128)
        print(f"layers {layer_map}: Spearman {task.metrics(vectors, labels)['spearman']:.2f}, "
              f"cosine to the teacher {row_cosines(vectors, reference).mean():.3f}")


if __name__ == "__main__":
    main()
