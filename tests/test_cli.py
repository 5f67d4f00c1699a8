"""The command line: fast help, teaching help texts, clean errors (no traceback, exit status 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_tsv, toy_rows

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgedistill", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


@pytest.mark.parametrize("verb", [None, "config", "data", "teacher", "distill", "run", "export", "verify", "targets",
                                  "bench", "compare"])
def test_help_imports_nothing_heavy(verb):
    args = ["--help"] if verb is None else [verb, "--help"]
    code = (
        "import sys, runpy; sys.argv = ['edgedistill', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('edgedistill', run_name='__main__')\n"
        "except SystemExit: pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'numpy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout  # what keeps --help instant: no torch, transformers, numpy
    assert "usage: edgedistill" in result.stdout


def test_top_level_help_teaches_the_stages():
    out = run_cli("--help").stdout
    for verb in ("run", "teacher", "distill", "export", "verify", "bench", "compare", "targets", "data", "config"):
        assert f"\n  {verb} " in out, verb  # every verb listed with what it does
        if verb not in ("compare", "targets", "config", "data"):
            assert f"edgedistill {verb} " in out.split("Examples:")[1], verb  # and an example
    assert "Examples:" in out and "edgedistill VERB --help" in out


def test_config_prints_the_commented_default_and_resolves_overrides():
    assert "# edgedistill's embedded default configuration" in run_cli("config").stdout
    resolved = run_cli("config", "--preset", "quick", "--set", "teacher.epochs=2").stdout
    assert "max_train_samples: 8000" in resolved and "epochs: 2" in resolved


def test_data_verb_reports_splits(tmp_path):
    write_tsv(tmp_path / "train.tsv", toy_rows(10))
    write_tsv(tmp_path / "dev.tsv", toy_rows(4))
    result = run_cli("data", "--data", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert '"rows": 10' in result.stdout and '"0": 2' in result.stdout  # integer labels, no names given


def test_bad_input_is_one_clear_line_and_exit_2(tmp_path):
    (tmp_path / "train.tsv").write_text("sentence\tlabel\nfine\t1\tx\n")
    result = run_cli("data", "--data", str(tmp_path / "train.tsv"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "edgedistill data: error:" in result.stderr and "line 2: expected 2 fields" in result.stderr


def test_bad_config_key_from_the_command_line():
    result = run_cli("config", "--set", "teacher.lr=1")
    assert result.returncode == 2 and "unknown key 'teacher.lr'" in result.stderr


def test_targets_lists_one_line_per_profile():
    result = run_cli("targets")
    lines = result.stdout.strip().splitlines()
    assert len(lines) == len(list((ROOT / "targets").glob("*.yaml")))
    assert any(line.startswith("onnx-int8-dynamic ") and "int8-dynamic" in line for line in lines)


def test_export_with_unknown_target_lists_profiles(tmp_path):
    write_tsv(tmp_path / "train.tsv", toy_rows(10))
    result = run_cli("export", "--model", str(tmp_path), "--target", "onnx-int3", "--out", str(tmp_path / "o"),
                     "--data", str(tmp_path / "train.tsv"))
    assert result.returncode == 2 and "unknown target 'onnx-int3'; the profiles are:" in result.stderr


def test_verify_on_a_folder_that_is_not_an_artifact(tmp_path):
    result = run_cli("verify", str(tmp_path), "--files-only")
    assert result.returncode == 2 and "is not an edgedistill artifact (no artifact.json)" in result.stderr
