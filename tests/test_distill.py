"""Distillation: the loss by hand, the weight mapping, gradients, training, and multi-process runs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import distill_config, make_tiny_bert
from edgedistill.core.config import load_config
from edgedistill.training.distill.losses import (
    LossWeights,
    attention_kl_loss,
    cosine_alignment_loss,
    distillation_loss,
    hidden_mse_loss,
    soft_target_loss,
)
from edgedistill.training.distill.student import build_student, default_layer_map
from edgedistill.core.errors import ConfigError, ModelError

ROOT = Path(__file__).resolve().parents[1]


# --- losses against hand-computed values ---------------------------------------------------------

def test_soft_target_loss_matches_hand_computation_with_t_squared():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[3.0, 1.0], [1.0, 1.0]])
    temperature = 2.0
    expected = 0.0
    for srow, trow in zip(s.tolist(), t.tolist()):
        ps = [math.exp(v / temperature) for v in srow]
        pt = [math.exp(v / temperature) for v in trow]
        ps = [v / sum(ps) for v in ps]
        pt = [v / sum(pt) for v in pt]
        expected += sum(p * math.log(p / q) for p, q in zip(pt, ps))
    expected = expected / 2 * temperature**2
    assert soft_target_loss(s, t, temperature).item() == pytest.approx(expected, rel=1e-6)
    # T² scaling: at T=1 the same inputs give the plain KL.
    plain = F.kl_div(F.log_softmax(s, -1), F.softmax(t, -1), reduction="batchmean")
    assert soft_target_loss(s, t, 1.0).item() == pytest.approx(plain.item(), rel=1e-6)
    assert soft_target_loss(t, t, 3.0).item() == pytest.approx(0.0, abs=1e-7)


def test_cosine_loss_ignores_padding():
    hs = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]])
    ht = torch.tensor([[[1.0, 0.0], [1.0, 0.0], [-5.0, 5.0]]])
    mask = torch.tensor([[1, 1, 0]])
    # token 0: cos 1 -> 0; token 1: cos 0 -> 1; token 2 is padding (cos 0 would add 1).
    assert cosine_alignment_loss(hs, ht, mask).item() == pytest.approx(0.5)
    assert cosine_alignment_loss(hs, ht, torch.tensor([[1, 1, 1]])).item() == pytest.approx(2 / 3)


def test_hidden_mse_ignores_padding():
    student, teacher = torch.zeros(1, 3, 4), torch.ones(1, 3, 4)
    teacher[0, 2] = 100.0  # a padding position: must not count
    mask = torch.tensor([[1, 1, 0]])
    assert hidden_mse_loss(student, teacher, mask).item() == pytest.approx(1.0)


def test_attention_kl_matches_hand_computation_and_averages_heads_when_counts_differ():
    uniform = torch.full((1, 2, 2, 2), 0.5)  # batch 1, 2 heads, 2 queries, 2 keys
    peaked = torch.tensor([0.9, 0.1]).expand(1, 2, 2, 2)
    mask = torch.tensor([[1, 1]])
    assert attention_kl_loss(uniform, uniform, mask).item() == pytest.approx(0.0, abs=1e-6)
    expected = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)  # KL(teacher=peaked ‖ student=uniform)
    assert attention_kl_loss(uniform, peaked, mask).item() == pytest.approx(expected, rel=1e-5)
    one_head = torch.full((1, 1, 2, 2), 0.5)  # 1 student head against 2 teacher heads: heads averaged
    assert attention_kl_loss(one_head, peaked, mask).item() == pytest.approx(expected, rel=1e-5)
    padded_query = peaked.clone()
    padded_query[0, :, 1] = torch.tensor([0.01, 0.99])  # the second query row is padding: ignored
    assert attention_kl_loss(uniform, padded_query, torch.tensor([[1, 0]])).item() == pytest.approx(expected, rel=1e-5)


def test_total_is_the_weighted_sum_and_zero_weights_skip_terms():
    s = torch.tensor([[0.5, -0.5], [1.0, 2.0]])
    t = torch.tensor([[2.0, -1.0], [0.0, 1.0]])
    y = torch.tensor([0, 1])
    h = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    w = LossWeights(alpha_kd=0.3, alpha_ce=0.5, alpha_cos=2.0, temperature=3.0)
    total, parts = distillation_loss(s, t, y, w, [h], mask)
    expected = (0.3 * soft_target_loss(s, t, 3.0) + 0.5 * F.cross_entropy(s, y)
                + 2.0 * cosine_alignment_loss(h[0], h[1], mask))
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert set(parts) == {"loss_kd", "loss_ce", "loss_cos"}
    ce_only, parts = distillation_loss(s, None, y, LossWeights(alpha_kd=0, alpha_ce=1, alpha_cos=0))
    assert set(parts) == {"loss_ce"} and ce_only.item() == pytest.approx(F.cross_entropy(s, y).item())


# --- student construction ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory, tiny_tokenizer_dir):
    from transformers import AutoModelForSequenceClassification

    folder = make_tiny_bert(tmp_path_factory.mktemp("teacher"), tiny_tokenizer_dir, layers=4, with_head=True)
    return AutoModelForSequenceClassification.from_pretrained(folder).eval()


def test_identity_layer_map_reproduces_the_teacher(tiny_teacher):
    student, layer_map = build_student(tiny_teacher, 4, [0, 1, 2, 3])
    student.eval()
    ids = torch.tensor([[2, 10, 20, 30, 3, 0, 0], [2, 11, 12, 13, 14, 15, 3]])
    mask = (ids != 0).long()
    with torch.no_grad():
        t = tiny_teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        s = student(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    real = mask.bool()
    for k in range(5):  # embeddings and every layer
        assert (s[k][real] - t[k][real]).abs().max().item() < 1e-5, k


def test_default_map_takes_every_other_layer(tiny_teacher):
    assert default_layer_map(6, 3) == [0, 2, 4]
    assert default_layer_map(12, 6) == [0, 2, 4, 6, 8, 10]
    student, layer_map = build_student(tiny_teacher, 2)
    assert layer_map == [0, 2]
    w_teacher = tiny_teacher.bert.encoder.layer[2].attention.self.query.weight
    assert torch.equal(student.distilbert.transformer.layer[1].attention.q_lin.weight, w_teacher)
    with pytest.raises(ModelError, match=r"distill.layer_map\[1\] = 7 does not exist in a 4-layer teacher"):
        build_student(tiny_teacher, 2, [0, 7])
    with pytest.raises(ModelError, match="needs the teacher's width 32"):
        build_student(tiny_teacher, 2, [0, 2], hidden_size=16)


def test_set_dropout_reaches_every_dropout_and_the_saved_config(tiny_teacher, tmp_path):
    """distill.dropout: the training graph runs without dropout (two forward passes in train mode agree) and the
    config.json written beside the weights says so."""
    from transformers import AutoConfig

    from edgedistill.training.distill.student import set_dropout

    student, _ = build_student(tiny_teacher, 2)
    set_dropout(student.train(), 0.0)
    ids = torch.randint(5, student.config.vocab_size, (2, 12))
    assert torch.equal(student(input_ids=ids).logits, student(input_ids=ids).logits)
    student.save_pretrained(tmp_path)
    saved = AutoConfig.from_pretrained(tmp_path)
    assert saved.dropout == saved.attention_dropout == saved.seq_classif_dropout == 0.0


def test_narrow_student_is_random_and_smaller(tiny_teacher):
    student, layer_map = build_student(tiny_teacher, 2, hidden_size=16)
    assert layer_map is None and student.config.dim == 16
    assert student.config.dim % student.config.n_heads == 0


def test_config_refuses_inconsistent_distill_settings():
    with pytest.raises(ConfigError, match=r"layer_map has no entry \[2\] for student layer 2"):
        load_config(overrides={"distill.layer_map": [0, 1]})
    with pytest.raises(ConfigError, match=r"layer_map\[3\] = 5 has no student layer"):
        load_config(overrides={"distill.layer_map": [0, 1, 3, 5]})
    with pytest.raises(ConfigError, match=r"layer_map\[1\] = -2 is not a teacher layer index"):
        load_config(overrides={"distill.layer_map": [0, -2, 3]})
    with pytest.raises(ConfigError, match="distill.augment needs alpha_kd > 0"):
        load_config(overrides={"distill.augment.variants": 1, "distill.alpha_kd": 0})
    with pytest.raises(ConfigError, match="nothing to train on"):
        load_config(overrides={"distill.alpha_kd": 0, "distill.alpha_ce": 0, "distill.alpha_cos": 0})
    with pytest.raises(ConfigError, match="set alpha_cos to 0"):
        load_config(overrides={"distill.cache_teacher_logits": True})
    with pytest.raises(ConfigError, match="set alpha_cos, alpha_att to 0"):
        load_config(overrides={"distill.cache_teacher_logits": True, "distill.alpha_att": 1.0})


# --- training ---------------------------------------------------------------------------------

def test_gradients_reach_the_student_only(tiny_teacher, tmp_path):
    from transformers import TrainingArguments

    from edgedistill.training.distill.trainer import DistillationTrainer, StudentWithProjection

    student, _ = build_student(tiny_teacher, 2, hidden_size=16)
    module = StudentWithProjection(student, torch.nn.ModuleList([torch.nn.Linear(16, 32)]))
    trainer = DistillationTrainer(
        model=module, args=TrainingArguments(str(tmp_path), report_to=[], use_cpu=True),
        teacher=tiny_teacher, weights=LossWeights(), layer_pairs=[(2, 4)],
    )
    ids = torch.tensor([[2, 10, 20, 3], [2, 11, 3, 0]])
    loss = trainer.compute_loss(module, {"input_ids": ids, "attention_mask": (ids != 0).long(),
                                         "labels": torch.tensor([0, 1])})
    loss.backward()
    assert all(p.grad is not None for p in module.parameters() if p.requires_grad)
    assert module.projections[0].weight.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in tiny_teacher.parameters())
    assert not tiny_teacher.training


def test_distillation_lowers_the_loss_and_writes_both_students(distilled):
    config, results = distilled
    student, baseline = results["student"], results["baseline"]
    log = (student.path / "student.log").read_text()
    losses = [json.loads(line.split(": ", 2)[2].replace("'", '"'))["loss"]
              for line in log.splitlines() if "'loss':" in line]
    assert len(losses) >= 3 and losses[-1] < losses[0] * 0.7
    for result in (student, baseline):
        m = result.metrics
        assert m["layers"] == 2 and m["layer_map"] == [0, 2]
        assert m["parameters"] < m["teacher_parameters"]
        # Two classifiers' accuracies differ by at most the share of labels they disagree on.
        disagreement = 1.0 - m["agreement_with_teacher"]
        assert abs(m["eval_accuracy"] - m["teacher_eval_accuracy"]) <= disagreement + 1e-9
        assert (result.path / "model.safetensors").stat().st_size == m["size_bytes"]
        for name in ("config.json", "tokenizer.json", "metrics.json", "stage.json", "edgedistill_config.yaml"):
            assert (result.path / name).is_file()
    assert student.metrics["loss_weights"]["alpha_kd"] == 1.0
    assert baseline.metrics["loss_weights"] == {"alpha_kd": 0.0, "alpha_ce": 1.0, "alpha_cos": 0.0,
                                                "temperature": 2.0}
    assert student.metrics["eval_accuracy"] >= 0.8 and student.metrics["agreement_with_teacher"] >= 0.8


def test_baseline_starts_from_the_checkpoint_the_teacher_was_fine_tuned_from(distilled, tiny_encoder_dir):
    """The default baseline never sees the teacher: its layers come from the pretrained checkpoint."""
    _, results = distilled
    student, baseline = results["student"], results["baseline"]
    assert student.metrics["init"] == "teacher layers [0, 2]"
    assert baseline.metrics["init"] == f"layers [0, 2] of {tiny_encoder_dir} (before fine-tuning)"
    inputs = json.loads((baseline.path / "stage.json").read_text())["inputs"]
    assert inputs["init"]["from"] == "pretrained"
    assert "init" not in json.loads((student.path / "stage.json").read_text())["inputs"]


def test_pretrained_init_copies_the_pretrained_layers(distilled, tiny_encoder_dir, toy_data_dir, tmp_path):
    from transformers import AutoModel

    from edgedistill.data.task_data import load_task_data
    from edgedistill.training.distill.stage import _initial_student
    from edgedistill.tasks.classification import TASK

    config, _ = distilled
    teacher_dir = Path(config.workdir) / "teacher"
    teacher = TASK.load_model(teacher_dir)
    data = load_task_data(config.data, seed=config.seed)
    pretrained = AutoModel.from_pretrained(tiny_encoder_dir)
    student, layer_map, _ = _initial_student(config, "baseline", teacher, teacher_dir, data, None)
    query = student.distilbert.transformer.layer[1].attention.q_lin.weight
    assert torch.equal(query, pretrained.encoder.layer[2].attention.self.query.weight)
    assert not torch.equal(query, teacher.bert.encoder.layer[2].attention.self.query.weight)  # fine-tuning moved it
    student, _, init = _initial_student(config, "student", teacher, teacher_dir, data, None)
    assert torch.equal(student.distilbert.transformer.layer[1].attention.q_lin.weight,
                       teacher.bert.encoder.layer[2].attention.self.query.weight)


def test_student_folder_loads_with_auto_classes_and_runs_on_tokenizer_output(distilled):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    _, results = distilled
    path = results["student"].path
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    batch = tokenizer(["a great film", "a dull plot"], return_tensors="pt", padding=True)
    assert "token_type_ids" not in batch
    assert model(**batch).logits.shape == (2, 2)
    assert model.config.model_type == "distilbert" and model.config.id2label[1] == "positive"


def test_second_run_is_cached(distilled, caplog):
    from conftest import run_distill

    config, first = distilled
    with caplog.at_level("INFO", logger="edgedistill"):
        again = {r.role: r for r in run_distill(config)}
    assert again["student"].cached and again["baseline"].cached
    assert "student: cache hit" in caplog.text and "baseline: cache hit" in caplog.text


def test_cached_teacher_logits_and_narrow_student(tmp_path, distilled, toy_data_dir):
    from conftest import run_distill

    config, _ = distilled
    teacher_dir = Path(config.workdir) / "teacher"
    cached = distill_config(tmp_path / "a", teacher_dir, toy_data_dir, **{
        "distill.alpha_cos": 0, "distill.cache_teacher_logits": True, "distill.baseline": False,
        "distill.qat.enabled": False})
    (result,) = run_distill(cached)
    assert result.metrics["eval_accuracy"] >= 0.7
    narrow = distill_config(tmp_path / "b", teacher_dir, toy_data_dir, **{
        "distill.hidden_size": 16, "distill.baseline": False, "distill.align": "uniform",
        "distill.qat.enabled": False,
        "require_learning": False})  # random init on 64 toy rows: what is tested here is the shape, not the score
    (result,) = run_distill(narrow)
    assert result.metrics["hidden_size"] == 16 and result.metrics["layer_map"] is None
    assert result.metrics["init"].startswith("random")  # nothing of the wider teacher fits: trained from scratch
    assert result.metrics["parameters"] < result.metrics["teacher_parameters"] / 2


def test_intermediate_layer_losses_train_on_hidden_states_and_attentions(tmp_path, distilled, toy_data_dir):
    """TinyBERT-style task distillation: hidden-state MSE and attention KL on uniformly paired layers."""
    from conftest import run_distill

    config, _ = distilled
    layered = distill_config(tmp_path / "layers", Path(config.workdir) / "teacher", toy_data_dir, **{
        "distill.alpha_cos": 0, "distill.alpha_mse": 1.0, "distill.alpha_att": 1.0, "distill.align": "uniform",
        "distill.baseline": False, "distill.qat.enabled": False})
    (result,) = run_distill(layered)
    log = (result.path / "student.log").read_text()
    logged = [json.loads(line.split(": ", 2)[2].replace("'", '"')) for line in log.splitlines() if "'loss':" in line]
    assert all("loss_mse" in row and "loss_att" in row and "loss_cos" not in row for row in logged)
    assert logged[-1]["loss_att"] < logged[0]["loss_att"]  # the student's attention moves toward the teacher's
    assert result.metrics["loss_weights"]["alpha_att"] == 1.0 and result.metrics["align"] == "uniform"
    assert result.metrics["eval_accuracy"] >= 0.7


def test_two_phase_schedule_trains_the_layers_first_then_the_prediction(tmp_path, distilled, toy_data_dir):
    """TinyBERT's schedule: the intermediate-layer losses alone, then kd + ce on the same student."""
    from conftest import run_distill

    config, _ = distilled
    two_phase = distill_config(tmp_path / "phases", Path(config.workdir) / "teacher", toy_data_dir, **{
        "distill.alpha_cos": 0, "distill.alpha_mse": 1.0, "distill.alpha_att": 1.0, "distill.align": "uniform",
        "distill.intermediate_epochs": 4.0, "distill.baseline": False, "distill.qat.enabled": False})
    (result,) = run_distill(two_phase)
    first, second = result.metrics["phases"]
    assert (first["phase"], second["phase"]) == ("intermediate", "prediction")
    assert first["loss_weights"]["alpha_kd"] == first["loss_weights"]["alpha_ce"] == 0.0
    assert second["loss_weights"]["alpha_mse"] == second["loss_weights"]["alpha_att"] == 0.0
    assert result.metrics["steps"] == first["steps"] + second["steps"]
    log = (result.path / "student.log").read_text()
    logged = [json.loads(line.split(": ", 2)[2].replace("'", '"')) for line in log.splitlines() if "'loss':" in line]
    layers = [row for row in logged if "loss_att" in row]
    prediction = [row for row in logged if "loss_kd" in row]
    assert layers and prediction and logged.index(layers[-1]) < logged.index(prediction[0])
    assert not any("loss_kd" in row or "loss_ce" in row for row in layers)
    assert not any("loss_att" in row or "loss_mse" in row for row in prediction)
    assert result.metrics["eval_accuracy"] >= 0.7


def test_attention_loss_reads_the_training_students_probabilities_before_dropout():
    """The eager kernels return attention probabilities after dropout: a training student's rows would hold
    zeros (a KL of ~28 nats each) and not sum to 1. While the attention loss is on they must be whole."""
    from transformers import BertConfig, BertForSequenceClassification

    from edgedistill.training.distill.stage import _attention_probabilities

    torch.manual_seed(0)
    teacher = BertForSequenceClassification(BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        attention_probs_dropout_prob=0.5)).eval()
    student, _ = build_student(teacher, 1)
    student.train()
    inputs = {"input_ids": torch.randint(5, 50, (4, 12)), "attention_mask": torch.ones(4, 12, dtype=torch.long)}
    with _attention_probabilities((teacher, student), needed=True):
        (inside,) = student(**inputs, output_attentions=True).attentions
    (outside,) = student(**inputs, output_attentions=True).attentions
    assert torch.allclose(inside.sum(-1), torch.ones(4, 4, 12), atol=1e-5) and (inside > 0).all()
    assert (outside == 0).any()  # the student's own dropout is back for everything else
    assert student.distilbert.transformer.layer[0].attention.dropout.p == 0.5


def test_switching_to_eager_attention_logs_nothing():
    """BERT and DistilBERT cannot switch their attention class at run time (they fall back to eager by themselves
    when asked for attentions): transformers' warnings about it are noise inside the switch, visible outside it."""
    import logging

    from transformers import BertConfig, BertForSequenceClassification

    from edgedistill.training.distill.stage import _attention_probabilities

    teacher = BertForSequenceClassification(BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)).eval()
    student, _ = build_student(teacher, 1)
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logging.getLogger("transformers").addHandler(handler)
    try:
        with _attention_probabilities((teacher, student), needed=True):
            inputs = torch.randint(5, 50, (2, 6))
            teacher(input_ids=inputs, output_attentions=True)
            student(input_ids=inputs, output_attentions=True)
        inside = [record.getMessage() for record in records]
        student.set_attn_implementation("eager")
    finally:
        logging.getLogger("transformers").removeHandler(handler)
    assert inside == []
    assert any("attention implementation dynamically" in record.getMessage() for record in records)


def test_two_phase_schedule_needs_both_kinds_of_loss():
    with pytest.raises(ConfigError, match="intermediate_epochs = 1.0 .* alpha_mse and alpha_att are both 0"):
        load_config(overrides={"distill.intermediate_epochs": 1.0})
    with pytest.raises(ConfigError, match="alpha_kd, alpha_ce and alpha_cos are all 0"):
        load_config(overrides={"distill.intermediate_epochs": 1.0, "distill.alpha_att": 1.0, "distill.alpha_kd": 0,
                               "distill.alpha_ce": 0, "distill.alpha_cos": 0})


LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517"],
    "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                   "--main_process_port", "29519"],
}


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_process_launch(tmp_path, distilled, toy_data_dir, launcher):
    config, _ = distilled
    teacher_dir = Path(config.workdir) / "teacher"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [*LAUNCHERS[launcher], "-m", "edgedistill", "distill", "--data", str(toy_data_dir), "--workdir", str(tmp_path),
           "--threads", "1", "--set", f"teacher.model={teacher_dir}", "--set", "data.max_length=16",
           "--set", "distill.layers=2", "--set", "distill.epochs=2", "--set", "distill.batch_size=8",
           "--set", "distill.baseline=false"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-12000:]
    metrics = json.loads((tmp_path / "student" / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(tmp_path / "student").config.n_layers == 2
    assert not list(tmp_path.glob(".student.tmp-*")) and not list(tmp_path.glob(".teacher.tmp-*"))


def test_killed_distillation_resumes_from_its_checkpoint(tmp_path, distilled, toy_data_dir, monkeypatch, caplog):
    from transformers import TrainerCallback

    from conftest import run_distill

    config, _ = distilled
    teacher_dir = Path(config.workdir) / "teacher"
    resumable = distill_config(tmp_path, teacher_dir, toy_data_dir, **{
        "distill.baseline": False, "distill.qat.enabled": False, "distill.save_steps": 4, "distill.epochs": 2})

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 6:
                raise KeyboardInterrupt("killed")

    from edgedistill.training import common as training

    monkeypatch.setattr(training, "LogToFileCallback", Kill)  # the stage builds its callback from here
    with pytest.raises(KeyboardInterrupt):
        run_distill(resumable)
    assert not (tmp_path / "student").exists()  # nothing half-written
    checkpoints = list((tmp_path / ".checkpoints").glob("student-*/checkpoint-4"))
    assert len(checkpoints) == 1
    monkeypatch.undo()
    with caplog.at_level("INFO", logger="edgedistill"):
        (result,) = run_distill(resumable)
    assert "resuming from" in caplog.text and result.metrics["resumed_from"].endswith("checkpoint-4")
    assert result.metrics["steps"] == 16  # 64 rows / batch 8 * 2 epochs: the count continued from 4
    assert not list((tmp_path / ".checkpoints").glob("student-*"))


def test_killed_two_phase_distillation_resumes_in_its_second_phase(tmp_path, distilled, toy_data_dir, monkeypatch):
    """The finished first phase is loaded from its last checkpoint (nothing retrains), the second continues."""
    from transformers import TrainerCallback

    from edgedistill.training import common as training
    from conftest import run_distill

    config, _ = distilled
    resumable = distill_config(tmp_path, Path(config.workdir) / "teacher", toy_data_dir, **{
        "distill.baseline": False, "distill.qat.enabled": False, "distill.save_steps": 4, "distill.epochs": 2,
        "distill.alpha_cos": 0, "distill.alpha_att": 1.0, "distill.align": "uniform",
        "distill.intermediate_epochs": 1})

    class KillInPrediction(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.max_steps == 16 and state.global_step == 6:  # the prediction phase: 64 rows / 8 * 2 epochs
                raise KeyboardInterrupt("killed")

    monkeypatch.setattr(training, "LogToFileCallback", KillInPrediction)
    with pytest.raises(KeyboardInterrupt):
        run_distill(resumable)
    (checkpoints,) = (tmp_path / ".checkpoints").glob("student-*")
    assert (checkpoints / "intermediate" / "checkpoint-8").is_dir()  # the first phase's end
    assert (checkpoints / "prediction" / "checkpoint-4").is_dir()
    monkeypatch.undo()
    (result,) = run_distill(resumable)
    first, second = result.metrics["phases"]
    assert first["resumed_from"].endswith("intermediate/checkpoint-8") and first["steps"] == 8
    assert second["resumed_from"].endswith("prediction/checkpoint-4") and second["steps"] == 16
    assert not checkpoints.exists()
