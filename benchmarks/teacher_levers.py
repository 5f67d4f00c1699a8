"""Teacher levers that did not become options: a mean-pooling head, an average of the weights, R-Drop.

    .venv/bin/python benchmarks/teacher_levers.py --seed 42 --ema 0.998 --rdrop 0.5   # ~24 min on 2 cores
    .venv/bin/python benchmarks/teacher_levers.py --report                             # rebuild the tables only

Each run fine-tunes the packaged checkpoint as the teacher stage does by default (its data, tokenizer,
TrainingArguments and seed; the full SST-2 train split) with one or more changes:

- `--pool mean`: classify the attention-masked mean of the last hidden states, the pooling all-MiniLM-L6-v2 was
  contrastively trained for, instead of BERT's [CLS] pooler;
- `--ema DECAY`: keep an exponential moving average of the weights (updated after every optimizer step) and
  evaluate it too, so one run gives the final and the averaged weights;
- `--rdrop ALPHA`: R-Drop (Liang et al., 2021): each batch goes through the model twice with different dropout
  masks, cross-entropy on both plus ALPHA times the symmetric KL between the two predictions (twice the compute).

A run with the [CLS] pooler and no R-Drop is the plain recipe: its final accuracy is the baseline each lever is
paired with (same seed, same script; the stage itself also evaluates before and after each epoch, which moves
the data order, so its figure for a seed differs). Every run appends a record to <workdir>/runs.jsonl; the
report (benchmarks/results/teacher-levers.json and .md) is rebuilt from that file after each run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from edgedistill.core.devices import device_class

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "data" / "sst2"


def train_once(pool: str, ema_decay: float, rdrop_alpha: float, seed: int, out: Path,
               max_train_samples: int | None) -> dict[str, Any]:
    """One fine-tuning run; returns its record (final and, with --ema, averaged-weight dev accuracy)."""
    import torch
    from torch import nn
    from transformers import (AutoTokenizer, BertForSequenceClassification, DataCollatorWithPadding, Trainer,
                              TrainerCallback, set_seed)
    from transformers.modeling_outputs import SequenceClassifierOutput

    from edgedistill.core.config import load_config
    from edgedistill.data.task_data import load_task_data
    from edgedistill.core.host import host_info
    from edgedistill.core.models import resolve_model
    from edgedistill.tasks import get_task
    from edgedistill.training.common import LogToFileCallback, trainer_metrics, training_arguments

    class MeanPoolingBert(BertForSequenceClassification):
        """The classifier on the masked mean of the last hidden states (the pooler is left unused)."""

        def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **_):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            logits = self.classifier(self.dropout(pooled))
            loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
            return SequenceClassifierOutput(loss=loss, logits=logits)

    class WeightAverage(TrainerCallback):
        """An exponential moving average of every floating-point tensor, after each optimizer step."""

        def __init__(self, model: nn.Module, decay: float):
            self.decay = decay
            self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}

        def on_step_end(self, args, state, control, model=None, **kwargs):  # noqa: D102 - Trainer API
            with torch.no_grad():
                for name, value in model.state_dict().items():
                    if name in self.shadow:
                        self.shadow[name].mul_(self.decay).add_(value, alpha=1 - self.decay)

    class RDropTrainer(Trainer):
        """Two dropout passes per batch (one forward over the batch twice): mean CE + alpha * symmetric KL."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs["labels"]
            doubled = {k: torch.cat([v, v]) for k, v in inputs.items() if k != "labels"}
            first, second = model(**doubled).logits.chunk(2)
            functional = nn.functional
            ce = (functional.cross_entropy(first, labels) + functional.cross_entropy(second, labels)) / 2
            log_p, log_q = functional.log_softmax(first, -1), functional.log_softmax(second, -1)
            kl = (functional.kl_div(log_p, log_q, log_target=True, reduction="batchmean")
                  + functional.kl_div(log_q, log_p, log_target=True, reduction="batchmean")) / 2
            loss = ce + rdrop_alpha * kl
            return (loss, SequenceClassifierOutput(loss=loss, logits=first)) if return_outputs else loss

    overrides: dict[str, Any] = {"data.dataset": str(DATA), "seed": seed}
    if max_train_samples:
        overrides["data.max_train_samples"] = max_train_samples
    config = load_config(overrides=overrides)
    torch.set_num_threads(config.threads)
    set_seed(seed)
    data = load_task_data(config.data, seed=seed)
    source = resolve_model(config.teacher.model)
    tokenizer = AutoTokenizer.from_pretrained(source.location, local_files_only=True)
    model_class = MeanPoolingBert if pool == "mean" else BertForSequenceClassification
    model = model_class.from_pretrained(source.location, local_files_only=True, num_labels=len(data.label_names))
    train_set = data.train.features(tokenizer, config.data.max_length)
    eval_set = data.eval.features(tokenizer, config.data.max_length)
    args = training_arguments(out, config.teacher, seed=seed, eval_strategy="no", disable_tqdm=False)
    average = WeightAverage(model, ema_decay) if ema_decay else None
    trainer = (RDropTrainer if rdrop_alpha else Trainer)(
        model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
        data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer, compute_metrics=trainer_metrics(get_task(config.task), data.label_names),
        callbacks=[LogToFileCallback(), *([average] if average else [])])
    started = time.perf_counter()
    trainer.train()
    record: dict[str, Any] = {"pool": pool, "ema": ema_decay, "rdrop": rdrop_alpha, "seed": seed,
                              "train_samples": len(data.train),
                              "train_min": round((time.perf_counter() - started) / 60, 1),
                              "acc": trainer.evaluate()["eval_accuracy"]}
    if average:
        model.load_state_dict({**model.state_dict(), **average.shadow})
        record["acc_ema"] = trainer.evaluate()["eval_accuracy"]
    record["host"] = host_info(config.threads)
    record["command"] = " ".join(["benchmarks/teacher_levers.py", *sys.argv[1:]])
    return record


def lever_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per lever (final and averaged weights of each setting), paired by seed with the plain recipe."""
    plain = {r["seed"]: r["acc"] for r in records if r["pool"] == "cls" and not r["rdrop"]}
    settings: dict[str, list[tuple[int, float, float]]] = {}
    for r in records:
        name = ("mean-pooling head" if r["pool"] == "mean" else "[CLS] pooler") + (
            f", R-Drop alpha {r['rdrop']}" if r["rdrop"] else "")
        settings.setdefault(name, []).append((r["seed"], r["acc"], r["train_min"]))
        if "acc_ema" in r:
            settings.setdefault(f"{name}, EMA of the weights ({r['ema']})", []).append(
                (r["seed"], r["acc_ema"], r["train_min"]))
    rows = []
    for name, runs in settings.items():
        runs.sort()
        accuracies = [acc for _, acc, _ in runs]
        # the plain row is the baseline itself
        gains = [] if name == "[CLS] pooler" else [100 * (acc - plain[seed]) for seed, acc, _ in runs if seed in plain]
        rows.append({
            "lever": name, "seeds": [seed for seed, _, _ in runs], "accuracies": accuracies,
            "mean": statistics.mean(accuracies), "sd": statistics.stdev(accuracies) if len(runs) > 1 else None,
            "gain_points": gains or None,
            "gain_mean": statistics.mean(gains) if gains else None,
            "gain_sd": statistics.stdev(gains) if len(gains) > 1 else None,
            "train_min_mean": round(statistics.mean(t for _, _, t in runs), 1),
        })
    return rows


def render(rows: list[dict[str, Any]], records: list[dict[str, Any]]) -> str:
    lines = ["# Teacher levers on SST-2 (diagnostics, not options)", "",
             "The packaged all-MiniLM-L6-v2 fine-tuned with the teacher stage's default recipe (1 epoch, lr 1e-4, "
             "batch 32 grouped by length, full SST-2 train split), with the changes each row names; SST-2 dev accuracy. "
             "Gains are paired by seed with the plain run ([CLS] pooler, final weights) of the same script.", "",
             "| lever | seeds | SST-2 dev per seed | mean ± sd | points over plain, per seed | mean ± sd | train time |",
             "| --- " * 7 + "|"]
    for row in rows:
        sd = f" ± {row['sd']:.4f}" if row["sd"] is not None else ""
        gains = ", ".join(f"{g:+.2f}" for g in row["gain_points"]) if row["gain_points"] else "-"
        gain = (f"{row['gain_mean']:+.2f}" + (f" ± {row['gain_sd']:.2f}" if row["gain_sd"] is not None else "")
                if row["gain_mean"] is not None else "-")
        lines.append(f"| {row['lever']} | {', '.join(map(str, row['seeds']))} | "
                     f"{', '.join(f'{a:.4f}' for a in row['accuracies'])} | {row['mean']:.4f}{sd} | {gains} | {gain} | "
                     f"{row['train_min_mean']} min |")
    hosts = {(f"{r['host']['cpu']} ({device_class(r['host']['machine'], r['host']['isa'])})",
              r["host"].get("threads"), r["host"]["libraries"].get("torch"),
              r["host"]["libraries"].get("transformers")) for r in records}
    lines += ["", "Hosts: " + "; ".join(f"{cpu}, {threads} threads, torch {torch}, transformers {tf}"
                                        for cpu, threads, torch, tf in sorted(hosts, key=str)) + ".",
              "Commands: " + "; ".join(f"`{c}`" for c in dict.fromkeys(r["command"] for r in records)) + ".",
              "EMA rows come from the same runs as the row above them (the averaged weights evaluated after the "
              "final ones). Standard deviations are sample (n-1); one SST-2 dev sentence is 0.11 points.",
              *(f"Note on {sum(r.get('note') == note for r in records)} runs: {note}." for note in
                dict.fromkeys(r["note"] for r in records if r.get("note"))), ""]
    return "\n".join(lines)


def write_report(workdir: Path) -> str:
    records = [json.loads(line) for line in (workdir / "runs.jsonl").read_text().splitlines() if line.strip()]
    rows = lever_rows(records)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "teacher-levers.json").write_text(json.dumps({"levers": rows, "runs": records}, indent=2) + "\n")
    markdown = render(rows, records)
    (RESULTS / "teacher-levers.md").write_text(markdown)
    return markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pool", choices=["cls", "mean"], default="cls", help="classifier input (default: cls)")
    parser.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                        help="also evaluate an exponential moving average of the weights (0: off)")
    parser.add_argument("--rdrop", type=float, default=0.0, metavar="ALPHA", help="R-Drop's KL weight (0: off)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "teacher-levers")
    parser.add_argument("--max-train-samples", type=int, default=None,
                        help="a smoke test on part of the train split: printed, not recorded")
    parser.add_argument("--report", action="store_true", help="rebuild the report from <workdir>/runs.jsonl only")
    args = parser.parse_args()
    if not args.report:
        from edgedistill.core.logs import configure_console

        configure_console()
        name = f"{args.pool}-ema{args.ema}-rdrop{args.rdrop}-s{args.seed}"
        record = train_once(args.pool, args.ema, args.rdrop, args.seed, args.workdir / name, args.max_train_samples)
        print("RESULT", json.dumps({k: v for k, v in record.items() if k != "host"}))
        if args.max_train_samples:
            return  # a smoke test: neither recorded nor reported
        args.workdir.mkdir(parents=True, exist_ok=True)
        with (args.workdir / "runs.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
    print(write_report(args.workdir))


if __name__ == "__main__":
    main()
