"""The ``edgedistill`` command: one thin function per verb; the stages do the work.

Only argparse and the config are imported here. torch, transformers and the backends are imported
inside the verbs that need them, so ``edgedistill --help`` answers instantly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from edgedistill import __version__
from edgedistill.core.errors import CheckFailed, EdgeDistillError
from edgedistill.core.registry import TASKS
from edgedistill.pipeline import STAGES  # stdlib-only at import: the parser lists the stages

_EPILOG = """\
The stages, in order (each reads what the one before wrote under the workdir):
  run       all of them: teacher -> distill -> export + verify -> bench -> report (cached, resumable)
  teacher   load or fine-tune the BERT teacher             -> <workdir>/teacher/
  distill   DistilBERT-style student, its quantization-aware twin, the no-teacher baseline
                                                           -> <workdir>/student/, qat/, baseline/
  export    one model, one target -> a verified artifact folder (model files, tokenizer, artifact.json)
  verify    re-check an artifact: file hashes, golden vectors, then parity against its source model;
            --isa arm64: replay it on the phone's instruction set under qemu (numerics, not latency)
  predict   label and probabilities for texts, from a checkpoint or any artifact in its own runtime
  targets   list the target profiles in targets/
  bench     latency, memory, size and accuracy of every model, each in its own process -> report
  compare   two reports side by side
Tools:
  data      load and summarize a data set (splits, label counts) without training
  config    print the commented default configuration, or the one your options resolve to
  arm64     build (setup) or show (status) the arm64 emulation environment verify --isa runs in

Examples:
  edgedistill run --data ../shared/data/sst2               # the whole pipeline on the default config
  edgedistill run --data ../shared/data/sst2 --preset quick --workdir runs/quick   # < 20 min
  edgedistill teacher --data ../shared/data/sst2            # the packaged MiniLM teacher on SST-2
  edgedistill teacher --data reviews.csv --text-column review --label-column stars --preset quick
  edgedistill config > my.yaml && edgedistill teacher -c my.yaml --set teacher.epochs=3
  edgedistill data --data ../shared/data/sst2              # check a data set before training
  edgedistill distill --data ../shared/data/sst2 --set distill.layers=2
  torchrun --nproc_per_node=2 -m edgedistill distill --data ../shared/data/sst2   # DDP (gloo on CPU)
  edgedistill export --model runs/default/student --target onnx-int8-dynamic --out artifacts/onnx-int8
  edgedistill verify artifacts/onnx-int8 --data ../shared/data/sst2
  edgedistill arm64 setup && edgedistill verify artifacts/onnx-int8 --isa arm64   # its numerics on a phone CPU
  edgedistill predict artifacts/onnx-int8 "a gripping, funny film" "dull and far too long"
  cat reviews.txt | edgedistill predict runs/default/student - --json
  edgedistill bench --data ../shared/data/sst2               # everything in runs/default -> runs/default/report

Exit status: 0 when everything asked for passed; 1 when an artifact failed its gate, `verify` found a
difference, a trained model learnt nothing or a benchmark row failed (reports and manifest still written);
2 when the input was wrong (options, config, data, a model folder).

Run `edgedistill VERB --help` for the options of each verb.
"""


def _config_default(dotted: str) -> str:
    """A config key's default, read from the config models (so ``--help`` never repeats a stale copy)."""
    from edgedistill.core.config import Config

    model: Any = Config
    *parents, leaf = dotted.split(".")
    for part in parents:
        model = model.model_fields[part].annotation
    field = model.model_fields[leaf]
    value = field.default_factory() if field.default_factory else field.default
    return "none" if value is None else ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _add_config_options(parser: argparse.ArgumentParser, *, data: bool = True) -> None:
    """The options that build a run's configuration: a file, a preset, ``--set``, and the common keys."""
    group = parser.add_argument_group("configuration (later options override earlier sources)")
    group.add_argument("-c", "--config", metavar="YAML", help="a config file (see `edgedistill config`)")
    group.add_argument("--preset", choices=["quick"], help="quick: a few thousand training rows, minutes")
    group.add_argument("--task", choices=list(TASKS),
                       help="what the models compute: classification (a label per text or pair) or embedding (a "
                            "unit vector per text, distilled from a sentence-transformers teacher on STS pairs and "
                            f"unlabelled text; its own defaults: data, targets, runs/embedding); default: "
                            f"{_config_default('task')}")
    if data:
        group.add_argument("--data", metavar="PATH_OR_ID",
                           help="task data: a .tsv/.csv/.jsonl file, a folder with train.* and dev.*, a hub id, "
                                f"or 'sst2' ($EDGEDISTILL_DATA_DIR, else the hub); default: {_config_default('data.dataset')}")
        group.add_argument("--text-column", metavar="NAME",
                           help=f"column holding the text (default: {_config_default('data.text_column')})")
        group.add_argument("--label-column", metavar="NAME",
                           help=f"column holding the label (default: {_config_default('data.label_column')})")
        group.add_argument("--label-names", metavar="A,B,...",
                           help="label names in id order, comma-separated (default: the data set's own when known, "
                                "else string labels sorted, integer labels named by number)")
    group.add_argument("--workdir", metavar="DIR", help=f"where every stage writes (default: {_config_default('workdir')})")
    group.add_argument("--threads", type=_positive_int, metavar="N",
                       help=f"CPU threads (default: {_config_default('threads')})")
    group.add_argument("--seed", type=int, metavar="N", help=f"random seed (default: {_config_default('seed')})")
    group.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override any config key, YAML value: --set teacher.epochs=2 (repeatable)")


def _add_eval_samples(parser: argparse.ArgumentParser, what: str) -> None:
    """The one name for "how many eval sentences" (``--verify-samples``, its older name, still works)."""
    parser.add_argument("--eval-samples", "--verify-samples", dest="eval_samples", type=_positive_int, metavar="N",
                        help=f"{what} on the first N eval rows (default: all)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _config_from_args(args: argparse.Namespace) -> Any:
    from edgedistill.core.config import load_config, parse_override

    overrides: dict[str, Any] = {}
    label_names = getattr(args, "label_names", None)
    flags = {
        "task": getattr(args, "task", None),
        "data.dataset": getattr(args, "data", None),
        "data.text_column": getattr(args, "text_column", None),
        "data.label_column": getattr(args, "label_column", None),
        "data.label_names": label_names.split(",") if label_names else None,
        "workdir": args.workdir,
        "threads": args.threads,
        "seed": args.seed,
        "distill.augment.file": getattr(args, "augment_file", None),
        "verify_isa.isas": [args.verify_isa] if getattr(args, "verify_isa", None) else None,
    }
    overrides.update({key: value for key, value in flags.items() if value is not None})
    overrides.update(dict(parse_override(item) for item in args.overrides))
    from edgedistill.core.targets import resolve_targets

    config = load_config(args.config, preset=args.preset, overrides=overrides)
    resolve_targets(config)  # every target found and made for the task, before any stage runs
    return config


def cmd_config(args: argparse.Namespace) -> int:
    """Print the embedded default config, or the resolved config when options are given."""
    from edgedistill.core.config import default_config_text, dump_config

    given = args.config or args.preset or args.overrides or any(
        getattr(args, name) is not None
        for name in ("task", "data", "text_column", "label_column", "label_names", "workdir", "threads", "seed")
    )
    sys.stdout.write(dump_config(_config_from_args(args)) if given else default_config_text())
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """Load and validate the task data; print its splits, labels and fingerprint."""
    from edgedistill.tasks import load_data

    config = _config_from_args(args)
    data = load_data(config)
    print(json.dumps(data.summary(), indent=2))
    return 0


def cmd_teacher(args: argparse.Namespace) -> int:
    """Run the teacher stage."""
    from edgedistill.tasks import get_task
    from edgedistill.training.teacher import run_teacher

    config = _config_from_args(args)
    result = run_teacher(config, force=args.force)
    headline = f"eval_{get_task(config.task).headline}"
    print(json.dumps({"teacher": str(result.path), "cached": result.cached,
                      headline: round(result.metrics[headline], 4), "train_time_s": result.metrics["train_time_s"]},
                     indent=2))
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    """Run the teacher stage (cached), then distil the student and train the baseline."""
    from edgedistill.tasks import get_task, load_data
    from edgedistill.training.distill import run_distill
    from edgedistill.training.teacher import run_teacher

    config = _config_from_args(args)
    data = load_data(config)
    results = run_distill(config, run_teacher(config, data=data), data, force=args.force)
    headline = get_task(config.task).headline
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({
            r.role: {
                "path": str(r.path),
                "cached": r.cached,
                f"eval_{headline}": round(r.metrics[f"eval_{headline}"], 4),
                "agreement_with_teacher": round(r.metrics["agreement_with_teacher"], 4),
                f"retention_of_teacher_{headline}": round(r.metrics[f"retention_of_teacher_{headline}"], 4),
                "parameters": r.metrics["parameters"],
            } for r in results
        }, indent=2))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Export one model for one target, verify it, publish it (exit 1 when its gate fails)."""
    from pathlib import Path

    from edgedistill.core.targets import load_target
    from edgedistill.tasks import load_data
    from edgedistill.export.stage import ExportSettings, export_target

    config = _config_from_args(args)
    target = load_target(args.target)
    data = load_data(config)
    artifact = export_target(Path(args.model), target, data, Path(args.out),
                             ExportSettings.from_config(config, verify_samples=args.eval_samples))
    parity = artifact.info["parity"]
    verified_on = _replay_after_export(artifact.path, data, config) if config.verify_isa.isas else []
    print(json.dumps({"artifact": str(artifact.path), "target": target.name,
                      "files": {k: v["bytes"] for k, v in artifact.info["files"].items()},
                      "parity": {k: v for k, v in parity.items() if k not in ("gate", "failures", "runtime")},
                      **({"verified_on": verified_on} if verified_on else {})}, indent=2))
    failed = [r for r in verified_on if not r["passed"]]
    if failed:
        from edgedistill.core.errors import VerificationError

        raise VerificationError("; ".join(f"arm64 {r['cpu']}: " + "; ".join(r["failures"]) for r in failed))
    return 0


def _replay_after_export(path: Any, data: Any, config: Any) -> list[dict[str, Any]]:
    """``export --verify-isa arm64``: the new artifact replayed on each configured CPU, recorded; the verdicts."""
    from edgedistill.emulation.environment import Arm64Environment
    from edgedistill.emulation.replay import REPLAYABLE, record_verification, replay, summary
    from edgedistill.export.backends.base import Artifact

    if Artifact.open(path).target.backend not in REPLAYABLE:
        print(f"edgedistill export: --verify-isa: {path} is not TFLite or ONNX; nothing replayed", file=sys.stderr)
        return []
    environment = Arm64Environment.load()
    verdicts = []
    for cpu in config.verify_isa.cpus:
        record = replay(path, data, cpu=cpu, samples=config.verify_isa.samples, environment=environment)
        record_verification(path, record)
        verdicts.append(summary(record))
    return verdicts


def cmd_run(args: argparse.Namespace) -> int:
    """The whole pipeline (or --only / --from a stage), then a summary of what it produced; exit 1 when an
    artifact failed its gate or a benchmark row failed (the report and manifest are written all the same)."""
    from edgedistill.pipeline import run_pipeline

    config = _config_from_args(args)
    manifest = run_pipeline(config, only=args.only, start=args.start, force=args.force)
    stages = manifest["stages"]
    exports = stages.get("export", {})
    failed = {k: v["error"][:300] for k, v in exports.items() if v["status"] != "verified"}
    isa_failed = {k: f"arm64 {r['cpu']}: " + "; ".join(r["failures"])[:300]
                  for k, v in exports.items() for r in v.get("verified_on", []) if not r["passed"]}
    bench_failed = stages.get("bench", {}).get("failed_rows", [])
    summary = {
        "workdir": str(config.workdir),
        "cached": sorted(k for k, v in stages.items() if k != "export" and v.get("cached")),
        "artifacts_verified": sorted(k for k, v in exports.items() if v["status"] == "verified"),
        "artifacts_failed": failed,
        **({"artifacts_verified_on_arm64": sorted(k for k, v in exports.items() if v.get("verified_on") and
                                                  all(r["passed"] for r in v["verified_on"]))}
           if config.verify_isa.isas else {}),
        **({"artifacts_failed_on_arm64": isa_failed} if isa_failed else {}),
        **({"bench_rows_failed": bench_failed} if bench_failed else {}),
        "report": stages.get("bench", {}).get("path"),
        "manifest": str(config.workdir / "manifest.json"),
    }
    print(json.dumps(summary, indent=2))
    if failed or bench_failed or isa_failed:
        print(f"edgedistill run: {len(failed)} artifact(s) failed their gate"
              + (f", {len(isa_failed)} failed on arm64 (emulated)" if isa_failed else "")
              + (f", {len(bench_failed)} benchmark row(s) failed" if bench_failed else "")
              + " (see the report and manifest.json)", file=sys.stderr)
        return 1
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Re-check an artifact's files and, with data, its parity with the source model; or a whole run.
    Exit 1 when anything differs."""
    from pathlib import Path

    from edgedistill.core.errors import VerificationError
    from edgedistill.export.stage import verify_artifact
    from edgedistill.pipeline import MANIFEST, verify_run

    if args.isa:  # an artifact, or each of a run's, replayed on another instruction set
        return _verify_on_isa(args)
    if (Path(args.artifact) / MANIFEST).is_file():
        problems = verify_run(Path(args.artifact))
        if problems:
            raise VerificationError(f"{args.artifact}: {len(problems)} output(s) changed since the run:\n  "
                                    + "\n  ".join(problems))
        print(json.dumps({"run": args.artifact, "outputs": "all hashes match the manifest"}, indent=2))
        return 0
    data = None if args.files_only else _verification_data(args)
    result = verify_artifact(Path(args.artifact), data, threads=args.threads or _config_from_args(args).threads,
                             verify_samples=args.eval_samples)
    print(json.dumps(result, indent=2))
    if args.layers is not None and data is not None:
        from edgedistill.export.stage import layer_error_table

        print()
        print(layer_error_table(Path(args.artifact), data, threads=_config_from_args(args).threads,
                                samples=args.layer_samples, limit=args.layers or None))
    return 0


def _verify_on_isa(args: argparse.Namespace) -> int:
    """``verify ARTIFACT|RUN_DIR --isa arm64``: replay each TFLite / ONNX artifact under emulation on each ``--cpu``,
    record it, exit 1 on a failure."""
    from pathlib import Path

    from edgedistill.core.errors import VerificationError
    from edgedistill.emulation.environment import Arm64Environment
    from edgedistill.emulation.replay import REPLAYABLE, describe_failure, record_verification, replay
    from edgedistill.export.backends.base import Artifact
    from edgedistill.pipeline import MANIFEST

    if args.files_only or args.layers is not None:
        raise EdgeDistillError("--isa replays the artifact; it does not combine with --files-only or --layers")
    environment = Arm64Environment.load()
    given = Path(args.artifact)
    paths = [given]
    if (given / MANIFEST).is_file():  # a run: every artifact it holds that has an arm64 runtime
        paths = [p.parent for p in sorted(given.glob("artifacts/*/artifact.json"))
                 if Artifact.open(p.parent).target.backend in REPLAYABLE]
        if not paths:
            raise EdgeDistillError(f"{given}: no TFLite or ONNX artifact under artifacts/ to replay")
    data = _verification_data(args, paths[0])
    checks = _config_from_args(args).verify_isa
    failures = []
    for path in paths:
        for cpu in args.cpu or checks.cpus:
            record = replay(path, data, cpu=cpu, samples=args.eval_samples or checks.samples, threads=1,
                            environment=environment)
            record_verification(path, record)
            print(json.dumps({"artifact": str(path), **{k: v for k, v in record.items()
                                                       if k not in ("golden_failures", "changed", "cpu_features")}},
                             indent=2))
            if not record["passed"]:
                failures.append(describe_failure(path, record))
    if failures:
        raise VerificationError("\n".join(failures))
    return 0


def cmd_arm64(args: argparse.Namespace) -> int:
    """``arm64 setup``: build the emulation environment; ``arm64 status``: what it holds, or why there is none."""
    from edgedistill.emulation.environment import Arm64Environment, build_environment

    environment = build_environment(force=args.force) if args.action == "setup" else Arm64Environment.load()
    record = environment.record
    print(json.dumps({"environment": str(environment.root), "qemu": record["qemu"]["version"],
                      "python": record["python"], "runtimes": record["runtimes"],
                      "cpus": {name: " ".join(cpu["features"]) for name, cpu in record["cpus"].items()},
                      "built": record["created"], "build_seconds": record["build_seconds"]}, indent=2))
    return 0


def _verification_data(args: argparse.Namespace, artifact: Any = None) -> Any:
    """The data ``verify`` checks on: what the options name, or, when they name none, the data the artifact
    (``artifact``, default the one given) was gated on (its ``artifact.json`` ``gated_on``), said on stderr."""
    from pathlib import Path

    from edgedistill.core.config import DataConfig
    from edgedistill.export.backends.base import Artifact
    from edgedistill.tasks import task_of_artifact

    config = _config_from_args(args)
    info = Artifact.open(Path(artifact or args.artifact)).info
    task = task_of_artifact(info)  # the artifact's task reads the data, whatever the options' task
    recorded = info.get("gated_on") or {}
    if args.data is None and not args.config and recorded.get("data"):
        print(f"edgedistill verify: no --data given: using the data the artifact was gated on "
              f"({recorded['data']['dataset']})", file=sys.stderr)
        return task.load_data(DataConfig.model_validate(recorded["data"]), recorded.get("seed", config.seed))
    return task.load_data(config.data, config.seed)


def cmd_predict(args: argparse.Namespace) -> int:
    """Run a checkpoint or an artifact on texts (or sentence pairs)."""
    from edgedistill.bench.predict import open_model, read_corpus, read_texts, render, render_search

    texts = read_texts(args.texts, args.file)
    corpus = read_corpus(args.corpus) if args.corpus else None
    predictor = open_model(args.model, threads=args.threads)
    if predictor.note:
        print(f"edgedistill predict: {predictor.note}", file=sys.stderr)
    if corpus is not None:
        print(render_search(texts, corpus, predictor.search(texts, corpus, args.top), args.json))
    else:
        print(render(predictor, predictor.predict(texts), args.json))
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    """List the target profiles, one line each."""
    from edgedistill.core.targets import list_targets

    for target in list_targets():
        if args.task and target.tasks and args.task not in target.tasks:
            continue
        print(f"{target.name:34s} {target.backend:8s} {target.precision:13s} {target.device:16s} {target.description}")
    return 0


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def cmd_bench(args: argparse.Namespace) -> int:
    """Benchmark checkpoints and artifacts, each in its own process, into one report (exit 1 when a row failed)."""
    from pathlib import Path

    from edgedistill.bench.harness import discover, eval_gold, run_bench, settings_from
    from edgedistill.bench.report import write_report
    from edgedistill.core.errors import EdgeDistillError
    from edgedistill.tasks import get_task, load_data
    from edgedistill.export.model_card import update_cards

    config = _config_from_args(args)
    paths = [Path(p) for p in args.paths] or [Path(config.workdir)]
    items = discover(paths)
    if not items:
        raise EdgeDistillError(f"nothing to benchmark in {', '.join(map(str, paths))}: no teacher/, student/, "
                               "baseline/ or artifacts/*/artifact.json")
    data = load_data(config)
    texts = data.eval.inputs[: args.eval_samples] if args.eval_samples else data.eval.inputs
    flags = {"batch_sizes": args.batch_sizes and list(args.batch_sizes),
             "seq_lengths": args.seq_lengths and list(args.seq_lengths),
             "real_samples": args.real_samples, "min_time": args.min_time}
    bench = config.bench.model_copy(update={k: v for k, v in flags.items() if v})
    settings = settings_from(bench, threads=config.threads, max_length=config.data.max_length,
                             eval_rows=len(texts))
    out = Path(args.out) if args.out else Path(config.workdir) / "report"
    gold = eval_gold(get_task(config.task), data.eval, items, config.data.max_length)[: len(texts)]
    report = run_bench(items, texts, gold, settings, out, label_names=data.label_names)
    for path in write_report(report, out):
        print(path)
    update_cards(report)  # each artifact's README.md gets its latency and memory on this host
    failed = [r["name"] for r in report["rows"] if r["status"] != "ok"]
    if failed:
        print(f"edgedistill bench: {len(failed)} row(s) failed: {', '.join(failed)} (see report.md)",
              file=sys.stderr)
        return 1
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Print two report.json files side by side."""
    from pathlib import Path

    from edgedistill.bench.report import compare_reports

    sys.stdout.write(compare_reports(Path(args.a), Path(args.b)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgedistill",
        description="Turn a BERT teacher into small, fast, verified on-device models.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"edgedistill {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verb = _verb_factory(verbs)
    _add_tool_verbs(verb)
    _add_stage_verbs(verb)
    _add_artifact_verbs(verb)
    _add_using_verbs(verb)
    return parser


Verb = Callable[..., argparse.ArgumentParser]


def _verb_factory(verbs: Any) -> Verb:
    """``verb(name, func, summary, details, configured=True)``: one subcommand; ``configured`` ones read a run's
    configuration (and take its options), the others do not."""

    def verb(name: str, func: Callable[[argparse.Namespace], int], summary: str, details: str,
             configured: bool = True) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=summary, description=f"{summary}\n\n{details}",
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(func=func)
        if configured:
            _add_config_options(sub)
        return sub

    return verb


def _add_tool_verbs(verb: Verb) -> None:
    """config and data: look before training."""
    verb("config", cmd_config, "print the default config (or the resolved one)",
         "With no options, prints the embedded default YAML, comments included: copy it and edit it.\n"
         "With options (-c, --preset, --set ...), prints the config they resolve to, validated.")
    verb("data", cmd_data, "load and check task data",
         "Reads the train and eval splits exactly as training will, reports rows and label counts,\n"
         "and fails with the file and line of the first bad row.")


def _add_stage_verbs(verb: Verb) -> None:
    """teacher, distill and run: the stages that train, and the whole pipeline."""
    teacher = verb("teacher", cmd_teacher, "load or fine-tune the teacher",
                   "Loads a BERT-family model (packaged:all-MiniLM-L6-v2, a save_pretrained folder, or a\n"
                   "hub id). If its classification head is untrained, fine-tunes it on the task with\n"
                   "transformers' Trainer. Writes <workdir>/teacher/ (save_pretrained folder, metrics.json,\n"
                   "teacher.log). A second run with identical inputs reuses it (content-hash cache).")
    teacher.add_argument("--force", action="store_true", help="rebuild even when the cache is valid")
    distill = verb("distill", cmd_distill, "distil a DistilBERT-style student (its QAT twin, a no-teacher baseline)",
                   "Builds a DistilBERT student of the teacher's task from the teacher (embeddings and every\n"
                   "other layer copied, as in the DistilBERT paper) and trains it with transformers' Trainer on\n"
                   "  alpha_kd * T^2 * KL(teacher || student at temperature T) + alpha_ce * CE(labels)\n"
                   "  + alpha_cos * (1 - cos(student hidden, teacher hidden))\n"
                   "  [+ alpha_mse * hidden-state MSE + alpha_att * attention KL: TinyBERT's layer losses],\n"
                   "optionally on extra rows the teacher labels (distill.augment: an unlabelled text file,\n"
                   "embedding-neighbour variants of the training sentences), then trains it on under int8\n"
                   "fake quantization (quantization-aware distillation, the QAT student: distill.qat), then\n"
                   "trains the same student on labels alone as the baseline.\n"
                   "Runs the teacher stage first (cached). Writes <workdir>/student/, <workdir>/qat/ and\n"
                   "<workdir>/baseline/ (save_pretrained folders with metrics.json). Settings: the distill\n"
                   "section of `edgedistill config`.\n"
                   "Multi-process: torchrun --nproc_per_node=N -m edgedistill distill ... (or accelerate launch).")
    distill.add_argument("--force", action="store_true", help="retrain even when the cache is valid")
    augment_help = ("unlabelled in-domain text for the teacher to label for the student: .txt (one per line), "
                    ".tsv/.csv/.jsonl (the text column) or a folder (distill.augment.file)")
    distill.add_argument("--augment-file", metavar="PATH", help=augment_help)
    run = verb("run", cmd_run, "the whole pipeline: teacher to verified artifacts and a report",
               "teacher -> distill (student, QAT student, baseline) -> export every model in export_models to every\n"
               "target (each verified before it is written; a failed gate writes no artifact, the run goes on\n"
               "and exits 1) ->\n"
               "bench -> report. Each stage is keyed by the content hash of its inputs: a finished stage\n"
               "is skipped and says so; a killed distillation resumes from its last checkpoint.\n"
               "Writes <workdir>/manifest.json (config, seed, keys, every output's hash, versions, host).")
    which = run.add_mutually_exclusive_group()
    which.add_argument("--only", choices=STAGES, metavar="STAGE", help=f"run one stage: {', '.join(STAGES)}")
    which.add_argument("--from", dest="start", choices=STAGES, metavar="STAGE",
                       help=f"run from this stage on ({', '.join(STAGES)})")
    run.add_argument("--force", action="store_true", help="rebuild the selected stages even when cached")
    run.add_argument("--augment-file", metavar="PATH", help=augment_help)
    run.add_argument("--verify-isa", choices=["arm64"],
                     help="replay every TFLite / ONNX artifact on arm64 under qemu after its gate (verify_isa; "
                          "`edgedistill arm64 setup` first); a failure exits 1")


def _add_artifact_verbs(verb: Verb) -> None:
    """export and verify: one artifact, written and re-checked."""
    export = verb("export", cmd_export, "export one model for one target, verified",
                  "Converts a save_pretrained folder with the target's backend and precision, loads the\n"
                  "result in its own runtime, and compares it with the PyTorch model on the eval split under\n"
                  "the task's gate (a classifier: fp32 max |logit diff| <= 1e-4; fp16 label agreement >= 99%;\n"
                  "int8 >= 98%; reduced precisions: accuracy drop <= 1 point; full-integer int8-static: >= 99% and\n"
                  "<= 0.5 point; bounds finer than two eval sentences are read as two, and the report says so).\n"
                  "Only a verified artifact is written (atomically). int8-static calibrates on\n"
                  "data.calibration_samples training sentences; a failed int8-static gate names its worst tensors.")
    export.add_argument("--model", required=True, metavar="DIR", help="a save_pretrained model folder")
    export.add_argument("--target", required=True, metavar="NAME_OR_YAML",
                        help="a profile name from `edgedistill targets`, or a target YAML file")
    export.add_argument("--out", required=True, metavar="DIR", help="the artifact folder to write")
    export.add_argument("--verify-isa", choices=["arm64"],
                        help="then replay it on arm64 under qemu (verify_isa: CPUs, samples); a failure exits 1")
    _add_eval_samples(export, "verify")
    check = verb("verify", cmd_verify, "re-check an artifact (or a whole run folder)",
                 "ARTIFACT_DIR: recomputes every file's sha256 against artifact.json (names what changed),\n"
                 "re-runs its golden vectors (golden.json: fixed texts, their ids and the logits recorded at\n"
                 "export; names each text that no longer reproduces), then re-runs the parity gate against\n"
                 "the source model recorded in artifact.json.\n"
                 "RUN_DIR (a workdir with manifest.json): re-hashes every output of the run and names\n"
                 "each file that changed.\n"
                 "--layers: where an int8 model loses accuracy, per quantized tensor, worst first:\n"
                 "  edgedistill verify runs/default/artifacts/student-onnx-int8-static --layers\n"
                 "--isa arm64: the artifact (or every TFLite / ONNX artifact of RUN_DIR) replayed on the arm64 build\n"
                 "of its runtime under qemu (`edgedistill arm64 setup` once first), against the x86 run and the\n"
                 "checkpoint under its own gate; recorded in artifact.json (verified_on) and its card:\n"
                 "  edgedistill verify runs/default --isa arm64 --cpu cortex-a76 --cpu cortex-a53")
    check.add_argument("artifact", metavar="ARTIFACT_DIR|RUN_DIR")
    check.add_argument("--files-only", action="store_true", help="check hashes only, no parity run")
    _add_eval_samples(check, "verify")
    check.add_argument("--layers", type=int, nargs="?", const=20, metavar="N",
                       help="full-integer (int8-static) ONNX/TFLite artifacts: print the per-tensor quantization "
                            "error against the float source (SQNR, clipping), the N worst first (default 20; 0: all)")
    check.add_argument("--layer-samples", type=_positive_int, default=256, metavar="N",
                       help="eval sentences the per-layer error is measured on (default 256)")
    check.add_argument("--isa", choices=["arm64"],
                       help="replay the artifact (a RUN_DIR: each of its TFLite and ONNX artifacts) on the phone's "
                            "instruction set under qemu emulation (`edgedistill arm64 setup` first): its golden "
                            "vectors and --eval-samples eval sentences (default: verify_isa.samples, "
                            f"{_config_default('verify_isa.samples')}) against the x86 run and the checkpoint, "
                            "under the artifact's own gate; "
                            "recorded in artifact.json (verified_on) and the model card. Numerics only, no latency")
    check.add_argument("--cpu", action="append", choices=list(_arm64_cpus()), metavar="MODEL",
                       help="with --isa: the emulated CPU, repeatable: " + "; ".join(
                           f"{name}: {why}" for name, why in _arm64_cpus().items())
                       + f" (default: verify_isa.cpus, {_config_default('verify_isa.cpus')})")
    arm64 = verb("arm64", cmd_arm64, "the arm64 emulation environment (qemu user mode) that verify --isa uses",
                 "setup: build it once, from the package registries alone: qemu-user-static (apt-get, as root),\n"
                 "Debian's arm64 Python and libraries (apt-get download into a private state; nothing is\n"
                 "installed for arm64 on the host), the aarch64 wheels of ai-edge-litert, onnxruntime and numpy at\n"
                 "this host's versions (pip download), one root per emulated CPU with its /proc/cpuinfo. About a\n"
                 "minute; kept in $EDGEDISTILL_ARM64_ENV, else $EDGEDISTILL_CACHE/emulation/arm64 (default\n"
                 "~/.cache/edgedistill/emulation/arm64), recorded in its environment.json.\n"
                 "Verification then needs no network.\n"
                 "status: what the environment holds, or one line saying why there is none.\n"
                 "  edgedistill arm64 setup && edgedistill verify runs/default/artifacts/student-tflite-int8-static --isa arm64",
                 configured=False)
    arm64.add_argument("action", choices=["setup", "status"])
    arm64.add_argument("--force", action="store_true", help="setup: rebuild even when the environment is current")


def _arm64_cpus() -> dict[str, str]:
    """The emulated CPU models and why each is offered (stdlib-only module: the parser stays fast)."""
    from edgedistill.core.arm_cpus import CPU_MODELS

    return {name: model.why for name, model in CPU_MODELS.items()}


def _add_using_verbs(verb: Verb) -> None:
    """predict, bench, compare and targets: running, measuring and choosing artifacts."""
    predict = verb("predict", cmd_predict, "run a checkpoint or an artifact on texts",
                   "MODEL: a save_pretrained checkpoint (run in PyTorch) or an artifact folder (run in its own\n"
                   "runtime: ONNX Runtime, LiteRT, Core ML; off macOS the labelled Core ML emulation), tokenized\n"
                   "with the tokenizer files it carries. A text holding a tab is a sentence pair (first<TAB>second).\n"
                   "For a classifier: label, probability and text per line, or with --json one JSON object per\n"
                   "line (text, label, probabilities). For a sentence encoder: the embedding dimension and the\n"
                   "cosine matrix of the texts (--json: each text's vector and cosines); with --corpus FILE, the\n"
                   "--top K lines of FILE closest to each text (semantic search on the artifact itself).\n"
                   "  edgedistill predict runs/default/artifacts/student-tflite-int8-static \"not worth the ticket\"\n"
                   "  edgedistill predict runs/embedding/artifacts/student-onnx-int8-static \"a dog runs\" --corpus notes.txt",
                   configured=False)
    predict.add_argument("model", metavar="MODEL", help="a checkpoint folder or an artifact folder")
    predict.add_argument("texts", nargs="*", metavar="TEXT", help="texts to run; - reads one per line from stdin")
    predict.add_argument("--file", metavar="FILE", help="a UTF-8 text file, one text per line (- for stdin)")
    predict.add_argument("--json", action="store_true", help="JSON Lines output")
    predict.add_argument("--corpus", metavar="FILE",
                         help="sentence encoders: rank the lines of this UTF-8 file against each text")
    predict.add_argument("--top", type=_positive_int, default=5, metavar="K",
                         help="with --corpus: how many lines to list per text (default: 5)")
    predict.add_argument("--threads", type=_positive_int, default=int(_config_default("threads")), metavar="N",
                         help=f"CPU threads (default: {_config_default('threads')})")
    bench = verb("bench", cmd_bench, "benchmark models and artifacts into one report",
                 "Measures each checkpoint (in PyTorch) and each artifact (in its own runtime) in a fresh\n"
                 "process: load time, peak RSS, eval accuracy, agreement with the teacher and the fp32\n"
                 "student, max logit drift, and latency (first run, warm-up, then mean/std/p50/p90/p99)\n"
                 "over batch sizes x sequence lengths, plus real eval-set lengths at batch 1.\n"
                 "Writes report.json (the source), report.md, report.csv and PNG plots.")
    bench.add_argument("paths", nargs="*", metavar="PATH",
                       help="model folders, artifact folders or workdirs (default: the workdir)")
    bench.add_argument("--out", metavar="DIR", help="report folder (default: <workdir>/report)")
    bench.add_argument("--batch-sizes", type=_int_list, metavar="1,8",
                       help=f"default: bench.batch_sizes ({_config_default('bench.batch_sizes')})")
    bench.add_argument("--seq-lengths", type=_int_list, metavar="16,32,64,128",
                       help=f"default: bench.seq_lengths ({_config_default('bench.seq_lengths')})")
    _add_eval_samples(bench, "score the models")
    bench.add_argument("--real-samples", type=_positive_int, metavar="N",
                       help="eval sentences timed one by one at their real length "
                            f"(default: bench.real_samples, {_config_default('bench.real_samples')})")
    bench.add_argument("--min-time", type=float, metavar="S",
                       help=f"minimum timed seconds per shape (default: bench.min_time, {_config_default('bench.min_time')})")
    compare = verb("compare", cmd_compare, "set two reports side by side",
                   "Matches rows by name and prints latency ratios, accuracy and size of both (Markdown).",
                   configured=False)
    compare.add_argument("a", metavar="A/report.json")
    compare.add_argument("b", metavar="B/report.json")
    targets = verb("targets", cmd_targets, "list the target profiles",
                   "Each profile in targets/ names a backend, a precision and options; pass its name to --target,\n"
                   "or copy one and pass the YAML file. A profile made for one task only says so (tasks:).",
                   configured=False)
    targets.add_argument("--task", choices=list(TASKS), help="only the profiles this task can use")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 0
    from edgedistill.core.logs import configure_console

    configure_console(args.verbose)
    try:
        return args.func(args)
    except CheckFailed as exc:  # the input was fine; what was built or checked did not pass
        print(f"edgedistill {args.verb}: failed: {exc}", file=sys.stderr)
        return 1
    except EdgeDistillError as exc:
        print(f"edgedistill {args.verb}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"edgedistill {args.verb}: interrupted; finished outputs are intact", file=sys.stderr)
        return 130
