"""The embedding task end to end on tiny models: STS data, the sentence-transformers teacher and student, vectors
with pooling and normalisation in every exported graph, the vector gate, predict's cosines and search."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from conftest import make_tiny_bert
from toy_data import random_sentence, write_sts
from edgedistill.core.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def sts_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")  # its own folder: distill.corpus auto reads the data sets beside stsb/
    folder, corpus = root / "stsb", root / "sst2"
    folder.mkdir()
    corpus.mkdir()
    write_sts(folder / "sts-train.csv", 120, seed=1)
    write_sts(folder / "sts-dev.csv", 60, seed=2)
    (corpus / "train.tsv").write_text("sentence\tlabel\n" + "".join(
        f"{random_sentence(random.Random(i))}\t{i % 2}\n" for i in range(80)), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def st_teacher(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    """A tiny random BERT encoder as a sentence-transformers folder (mean pooling, normalised); its weights drawn
    wide (std 0.5) so that its sentence vectors differ (at 0.02 every pair's cosine is ~0.93, and any rounding
    reorders them)."""
    from edgedistill.training.embedding import write_sentence_transformers_files

    folder = make_tiny_bert(tmp_path_factory.mktemp("st_teacher"), tiny_tokenizer_dir, layers=4, seed=3,
                            initializer_range=0.5)
    write_sentence_transformers_files(folder, 32, "mean", 32)
    return folder


def embedding_config(workdir: Path, teacher: Path, data: Path, **overrides):
    from edgedistill.core.config import load_config

    base = {"task": "embedding", "teacher.model": str(teacher), "data.dataset": str(data), "data.max_length": 32,
            "distill.layers": 2, "distill.epochs": 3, "distill.batch_size": 16, "distill.learning_rate": 1e-3,
            "distill.logging_steps": 10, "distill.corpus": [], "distill.corpus_max_sentences": None,
            "data.calibration_samples": 32, "workdir": str(workdir), "threads": 1,
            "require_learning": False}  # a random teacher has no STS skill to pass on
    base.update(overrides)
    return load_config(overrides=base)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, st_teacher, sts_dir):
    """The embedding teacher and distill stages on the tiny teacher: (config, data, teacher, results by role)."""
    from edgedistill.tasks import load_data
    from edgedistill.training.distill import run_distill
    from edgedistill.training.teacher import run_teacher

    config = embedding_config(tmp_path_factory.mktemp("emb_run"), st_teacher, sts_dir,
                              **{"distill.augment.variants": 1})
    data = load_data(config)
    teacher = run_teacher(config, data=data)
    return config, data, teacher, {r.role: r for r in run_distill(config, teacher, data)}


def _st_vectors(folder: Path, texts: list[str]) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu").encode(texts, batch_size=8)


def _our_vectors(folder: Path, texts: list[str]) -> np.ndarray:
    from transformers import AutoTokenizer

    from edgedistill.tasks import task_of_model
    from edgedistill.tasks.embedding import embedding_module
    from edgedistill.training.embedding import encode_texts

    model = task_of_model(folder).load_model(folder).eval()
    return encode_texts(embedding_module(model, None), AutoTokenizer.from_pretrained(folder), texts, 32, 8)


# -- data -------------------------------------------------------------------------------------------


def test_sts_files_load_as_flattened_pairs_keeping_the_first_seven_fields(sts_dir):
    from edgedistill.core.config import DataConfig
    from edgedistill.data.sts import load_sts_data, pair_rows

    data = load_sts_data(DataConfig(dataset=str(sts_dir)))
    assert len(data.train) == 240 and len(data.train.labels) == 120
    assert len(data.eval) == 120 and len(data.eval.labels) == 60
    row = (sts_dir / "sts-train.csv").read_text().splitlines()[3].split("\t")
    assert data.train.texts[6:8] == [row[5], row[6]]  # pair 3 has two extra trailing fields
    first, second = pair_rows(np.arange(7))
    assert first.tolist() == [0, 2, 4] and second.tolist() == [1, 3, 5]


@pytest.mark.parametrize("score, message", [("high", "score 'high' is not a number"),
                                            ("5.5", "score '5.5' is outside 0-5")])
def test_a_bad_sts_score_names_the_file_and_line(tmp_path, score, message):
    from edgedistill.data.sts import read_sts_file

    path = tmp_path / "sts.csv"
    path.write_text("g\tf\ty\t1\t3.0\ta b\tc d\ng\tf\ty\t2\t" + score + "\te f\tg h\n", encoding="utf-8")
    with pytest.raises(DataError, match=rf"{path}, line 2: {message}"):
        read_sts_file(path)


def test_a_short_sts_row_is_refused(tmp_path):
    from edgedistill.data.sts import read_sts_file

    path = tmp_path / "sts.csv"
    path.write_text("g\tf\ty\t1\t3.0\tonly one sentence\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1: 6 tab-separated fields, an STS row has 7"):
        read_sts_file(path)


@pytest.mark.parametrize("content, message", [(b"", "holds no text|is empty"), (b"\x00\x01binary", "not a text file"),
                                              (b"caf\xe9 au lait\n", "not valid UTF-8")])
def test_a_bad_corpus_stops_before_training(tmp_path, st_teacher, sts_dir, content, message):
    from edgedistill.tasks import load_data
    from edgedistill.training.embedding import corpus_sentences

    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(content)
    config = embedding_config(tmp_path / "run", st_teacher, sts_dir, **{"distill.corpus": [str(corpus)]})
    with pytest.raises(DataError, match=message):
        corpus_sentences(config, load_data(config))


def test_corpus_auto_adds_the_data_sets_beside_and_never_the_eval_sentences(tmp_path, st_teacher, sts_dir):
    from edgedistill.tasks import load_data
    from edgedistill.training.embedding import corpus_sentences

    config = embedding_config(tmp_path / "run", st_teacher, sts_dir, **{"distill.corpus": "auto"})
    data = load_data(config)
    sentences, sources = corpus_sentences(config, data)
    assert sources[0]["source"].startswith("task data") and any(s["source"].endswith("train.tsv") for s in sources)
    assert not set(sentences) & set(data.eval.texts)
    assert len(sentences) == len(set(sentences))
    task_sentences = sentences[:sources[0]["sentences"]]
    capped = embedding_config(tmp_path / "run", st_teacher, sts_dir,
                              **{"distill.corpus": "auto", "distill.corpus_max_sentences": len(task_sentences) + 5})
    kept, _ = corpus_sentences(capped, data)  # the cap samples the corpus; every task sentence stays
    assert kept[:len(task_sentences)] == task_sentences and len(kept) == len(task_sentences) + 5
    assert set(kept[len(task_sentences):]) < set(sentences[len(task_sentences):])


def test_an_augment_file_is_refused_for_embeddings(tmp_path, st_teacher, sts_dir):
    from edgedistill.core.errors import ConfigError
    from edgedistill.tasks import load_data
    from edgedistill.training.embedding import run_distill

    config = embedding_config(tmp_path / "run", st_teacher, sts_dir, **{"distill.augment.file": "more.txt"})
    with pytest.raises(ConfigError, match="name the file there"):
        run_distill(config, None, load_data(config))
    assert not (tmp_path / "run").exists()


def test_conll_files_give_their_sentences(tmp_path):
    from edgedistill.data.unlabelled import conll_sentences

    path = tmp_path / "train.txt"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n",
                    encoding="utf-8")
    assert conll_sentences(path) == ["EU rejects", "Peter"]


# -- config -----------------------------------------------------------------------------------------


def test_the_embedding_task_brings_its_own_defaults_and_refuses_classification_profiles(tmp_path, capsys):
    from edgedistill.cli import main
    from edgedistill.core.config import load_config
    from edgedistill.core.targets import resolve_targets

    config = load_config(overrides={"task": "embedding"})
    assert config.teacher.train == "never" and str(config.workdir) == "runs/embedding"
    assert "onnx-int8-static" in config.targets and config.distill.qat.enabled is False
    assert [t.name for t in resolve_targets(config)] == config.targets
    # the TFLite full-integer default splits outlier channels on the output side only (the profile says why)
    full_int8 = {t.name: t for t in resolve_targets(config)}["tflite-int8-static-output-split"]
    assert full_int8.precision == "int8-static" and full_int8.options["outlier_split_sides"] == ["output"]
    with pytest.raises(ConfigError, match="target onnx-int8-dynamic-with-tokenizer is a classification profile"):
        resolve_targets(load_config(overrides={"task": "embedding", "targets": ["onnx-int8-dynamic-with-tokenizer"]}))
    # the command line refuses it when it loads the configuration, before any stage runs
    assert main(["run", "--task", "embedding", "--workdir", str(tmp_path), "--set",
                 "targets=[onnx-int8-dynamic-with-tokenizer]"]) == 2
    assert "is a classification profile" in capsys.readouterr().err and not any(tmp_path.iterdir())
    assert load_config().task == "classification"  # the classification defaults are untouched


# -- models -----------------------------------------------------------------------------------------


def test_teacher_vectors_are_what_sentence_transformers_computes(trained, st_teacher):
    _, data, teacher, _ = trained
    texts = data.eval.texts[:24]
    assert np.abs(_our_vectors(teacher.path, texts) - _st_vectors(st_teacher, texts)).max() < 1e-5
    assert teacher.metrics["fine_tuned"] is False and "eval_spearman" in teacher.metrics


def test_the_student_is_a_sentence_transformers_folder_in_the_teachers_space(trained):
    _, data, teacher, results = trained
    student, baseline = results["student"], results["baseline"]
    texts = data.eval.texts[:24]
    assert np.abs(_our_vectors(student.path, texts) - _st_vectors(student.path, texts)).max() < 1e-5
    # trained on the teacher's vectors, the student moves towards them (a random teacher's vectors are all close:
    # the distance left, 1 - cosine, is what shrinks); the untrained baseline stays where it started
    assert 1 - student.metrics["cosine_to_teacher_mean"] < 0.5 * (1 - baseline.metrics["cosine_to_teacher_mean"])
    assert student.metrics["steps"] > 0 and baseline.metrics["steps"] == 0
    saved = json.loads((student.path / "config.json").read_text())  # the embedding defaults train without dropout
    assert saved["dropout"] == saved["attention_dropout"] == 0.0
    variants = student.metrics["corpus_sources"][-1]  # distill.augment.variants: 1, one per task sentence at most
    assert variants["source"].startswith("word-replacement variants") and variants["sentences"] > 0
    assert variants["sentences"] <= student.metrics["corpus_sources"][0]["sentences"]
    for key in ("eval_spearman", "retention_of_teacher_spearman", "cross_retrieval_top10"):
        assert key in student.metrics


def test_the_hidden_state_term_pulls_each_layer_towards_the_teacher_layer_it_came_from(tmp_path, st_teacher,
                                                                                     sts_dir):
    """alpha_mse: the student layers' outputs move towards the outputs of the teacher layers they were copied
    from (the term's value falls over training), logged by name; without a layer map it is refused."""
    from edgedistill.core.errors import ConfigError
    from edgedistill.tasks import load_data
    from edgedistill.training.distill import run_distill
    from edgedistill.training.teacher import run_teacher

    config = embedding_config(tmp_path / "run", st_teacher, sts_dir, **{"distill.alpha_mse": 1.0,
                                                                         "distill.baseline": False})
    data = load_data(config)
    student = run_distill(config, run_teacher(config, data=data), data)[0].metrics
    history = [h["loss_mse"] for h in student["loss_history"]]
    assert history[-1] < 0.8 * history[0] and "train_loss_mse" in student
    narrow = embedding_config(tmp_path / "narrow", st_teacher, sts_dir,
                              **{"distill.alpha_mse": 1.0, "distill.hidden_size": 16, "distill.baseline": False})
    with pytest.raises(ConfigError, match="alpha_mse pairs each student layer"):
        run_distill(narrow, run_teacher(narrow, data=data), data)


# -- the gate ---------------------------------------------------------------------------------------


def test_spearman_matches_scipy():
    from scipy.stats import spearmanr

    from edgedistill.tasks.embedding import spearman

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 6, 200).astype(float), rng.normal(size=200)  # ties in x
    assert spearman(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)


def test_the_vector_gate_passes_close_vectors_and_names_each_broken_bound():
    from edgedistill.core.config import Tolerance
    from edgedistill.tasks import get_task
    from edgedistill.tasks.embedding import row_normalised

    task = get_task("embedding")
    rng = np.random.default_rng(1)
    reference = row_normalised(rng.normal(size=(200, 16))).astype(np.float32)
    labels = rng.uniform(0, 5, 100)
    close = row_normalised(reference + rng.normal(scale=1e-3, size=reference.shape)).astype(np.float32)
    report = task.judge(reference, close, labels, task.tolerance("int8-static", Tolerance()))
    assert report.passed and report.measures["cosine_min"] > 0.99
    assert report.measures["top10_overlap"] > 0.9
    shuffled = reference[rng.permutation(len(reference))]
    report = task.judge(reference, shuffled, labels, task.tolerance("int8-static", Tolerance()))
    assert not report.passed
    assert any(f.startswith("mean cosine to the checkpoint's vectors") for f in report.failures)
    assert any(f.startswith("top-10 neighbour overlap") for f in report.failures)
    fp32 = task.judge(reference, close, labels, task.tolerance("fp32", Tolerance()))
    assert fp32.failures == [f"max |embedding difference| {fp32.max_abs:.3g} > 0.0001"]


# -- exports ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The student exported to ONNX fp32 and int8-dynamic, TFLite fp32 (buckets) and Core ML fp32."""
    from edgedistill.core.config import Tolerance
    from edgedistill.core.targets import load_target
    from edgedistill.export.stage import ExportSettings, export_target

    config, data, _, results = trained
    out = tmp_path_factory.mktemp("emb_artifacts")
    settings = ExportSettings.from_config(config)
    # a 32-wide random model's int8 neighbours shift more than a real one's: the bounds a target may set, set here
    loose = Tolerance(min_neighbour_overlap=0.6, max_accuracy_drop=5.0)
    targets = {"onnx-fp32": load_target("onnx-fp32"),
               # built for this host's kernels (the profile's avx512-vnni weights run through AVX2's u8s8 path on an
               # AVX2-only host, where this 32-wide model's cosine falls to 0.989): the gate checks what it runs
               "onnx-int8-dynamic": load_target("onnx-int8-dynamic").model_copy(update={"tolerance": loose,
                                                                                        "device": "host"}),
               "tflite-fp32": load_target("tflite-fp32").model_copy(update={"options": {"buckets": [8, 16, 32]}}),
               "coreml-fp32": load_target("coreml-fp32")}
    return {name: export_target(results["student"].path, target, data, out / name, settings)
            for name, target in targets.items()}


def test_every_backend_returns_unit_vectors_named_embedding_with_the_pooling_inside(exported, trained):
    import onnx

    _, data, _, results = trained
    reference = _our_vectors(results["student"].path, data.eval.texts[:8])
    for name, artifact in exported.items():
        info = artifact.info
        assert info["task"] == "embedding" and info["parity"]["passed"], name
        golden = json.loads((artifact.path / "golden.json").read_text())
        case = golden["cases"][0]
        assert len(case["embedding"]) == reference.shape[1] and case["norm"] == pytest.approx(1.0, abs=1e-4)
        card = (artifact.path / "README.md").read_text()
        assert "pipeline_tag: sentence-similarity" in card and "cosine" in card
    graph = onnx.load(str(exported["onnx-fp32"].path / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
    assert [o.name for o in graph.output] == ["embedding"]
    assert {"ReduceSum", "Div"} <= {n.op_type for n in graph.node}  # mean pooling and normalisation in the graph
    int8 = exported["onnx-int8-dynamic"].info["parity"]
    assert {"cosine_mean", "cosine_min", "top10_overlap", "spearman_drop_points"} <= set(int8)


def test_padding_never_changes_the_vector(exported, trained):
    """One sentence padded to every TFLite bucket (each signature run directly) and to every ONNX length gives the
    same vector: the pooling reads the real tokens only."""
    from ai_edge_litert.interpreter import Interpreter
    from transformers import AutoTokenizer

    from edgedistill.data.encoding import pad_to, token_ids
    from edgedistill.export.backends.base import get_backend

    _, data, _, results = trained
    tokenizer = AutoTokenizer.from_pretrained(results["student"].path)
    ids = token_ids(tokenizer, data.eval.texts[0], 32)
    widths = [w for w in (8, 16, 32) if w >= len(ids)]
    assert len(widths) >= 2
    interpreter = Interpreter(model_path=str(exported["tflite-fp32"].path / "model.tflite"))
    tflite = [interpreter.get_signature_runner(f"seq_{w}")(**dict(zip(("input_ids", "attention_mask"),
                                                                       pad_to(ids, w))))["embedding"][0]
              for w in widths]
    onnx = get_backend("onnx").load(exported["onnx-fp32"], 1)
    onnx_vectors = [onnx.predict(*pad_to(ids, w, dtype=np.int64))[0] for w in (len(ids), *widths)]
    for vectors in (tflite, onnx_vectors):
        assert max(np.abs(v - vectors[0]).max() for v in vectors) < 1e-5
    assert np.abs(tflite[0] - onnx_vectors[0]).max() < 1e-4


def test_predict_prints_the_cosine_matrix_and_searches_a_corpus(exported, tmp_path, capsys):
    from edgedistill.cli import main

    artifact = exported["onnx-fp32"].path
    assert main(["predict", str(artifact), "good film", "bad film", "good film"]) == 0
    out = capsys.readouterr().out
    assert "3 text(s), embedding dimension 32" in out
    rows = [line.split() for line in out.splitlines()[2:]]
    assert float(rows[0][3]) == pytest.approx(1.0, abs=1e-4) and float(rows[0][1]) == pytest.approx(1.0, abs=1e-4)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("bad plot\ngood film\nthe story\n", encoding="utf-8")
    assert main(["predict", str(artifact), "good film", "--corpus", str(corpus), "--top", "2", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[0])
    assert record["results"][0] == {"rank": 1, "line": 2, "text": "good film", "score": pytest.approx(1.0, abs=1e-4)}
    assert len(record["results"]) == 2


def test_predict_refuses_a_corpus_for_a_classifier(tiny_student_dir, tmp_path, capsys):
    from edgedistill.cli import main

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a\n", encoding="utf-8")
    assert main(["predict", str(tiny_student_dir), "good", "--corpus", str(corpus)]) == 2
    assert "does not rank a corpus" in capsys.readouterr().err
