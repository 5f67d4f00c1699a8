"""TFLite: every precision converts and passes its gate; buckets, over-long input, int8 dequantization."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import TFLITE_BUCKETS as BUCKETS
from conftest import TFLITE_PROFILES as PROFILES
from conftest import TFLITE_SETTINGS_ARGS
from conftest import recheck

from edgedistill.export.backends.tflite import InputTooLongError, TFLiteRunner, dequantize
from edgedistill.export.stage import ExportSettings

SETTINGS = ExportSettings(**TFLITE_SETTINGS_ARGS)


@pytest.fixture(scope="module")
def artifacts(tiny_tflite_artifacts):
    return tiny_tflite_artifacts


@pytest.mark.parametrize("name", PROFILES)
def test_each_precision_converts_and_its_record_is_what_it_computes(artifacts, name, tiny_student_dir, data):
    info = json.loads((artifacts[name].path / "artifact.json").read_text())
    parity = info["parity"]
    assert parity["samples"] == 200
    agreement, max_abs = recheck(artifacts[name], tiny_student_dir, data, 48)  # run again here, outside the gate
    if info["target"]["precision"] == "fp32":
        assert max_abs <= 1e-4 and parity["max_abs"] <= 1e-4
    else:
        assert max_abs > 1e-6 and agreement == pytest.approx(1.0, abs=0.05)
    assert (artifacts[name].path / "tokenizer.json").is_file()


def test_one_signature_per_bucket_with_named_io(artifacts):
    runner = TFLiteRunner(artifacts["tflite-fp32"].path / "model.tflite", threads=1)
    signatures = runner.model.get_signature_list()
    assert signatures == {f"seq_{b}": {"inputs": ["input_ids", "attention_mask"], "outputs": ["logits"]}
                          for b in BUCKETS}
    assert runner.buckets == BUCKETS and runner.bucket_for(5) == 8 and runner.bucket_for(9) == 16


def test_runner_picks_the_smallest_bucket_and_matches_longer_padding(artifacts):
    runner = TFLiteRunner(artifacts["tflite-fp32"].path / "model.tflite", threads=1)
    ids = np.array([[2, 10, 20, 3, 0, 0], [2, 11, 12, 13, 3, 0]])
    mask = (ids != 0).astype(np.int64)
    short = runner.predict(ids, mask)
    padded = np.pad(ids, ((0, 0), (0, 10))), np.pad(mask, ((0, 0), (0, 10)))  # width 16: same real tokens
    np.testing.assert_allclose(runner.predict(*padded), short, atol=1e-5)
    assert short.shape == (2, 2) and short.dtype == np.float32


def test_over_long_input_is_truncated_with_a_warning_or_refused(artifacts, tiny_student_dir):
    path = artifacts["tflite-fp32"].path / "model.tflite"
    ids = np.full((1, 20), 7)
    ids[0, 0], ids[0, -1] = 2, 3
    mask = np.ones_like(ids)
    with pytest.warns(UserWarning, match="input of 20 tokens truncated to the largest bucket \\(16\\)"):
        assert TFLiteRunner(path, threads=1).predict(ids, mask).shape == (1, 2)
    with pytest.raises(InputTooLongError, match="input of 20 tokens is longer than the largest bucket \\(16\\)"):
        TFLiteRunner(path, threads=1, overflow="refuse").predict(ids, mask)


def test_int8_static_keeps_float_io_at_the_signature_boundary(artifacts):
    """Integer ops inside, float logits out: ai-edge-quantizer dequantizes before the graph output when the
    output op is not quantized (the runner still dequantizes integer outputs: see the next test)."""
    runner = TFLiteRunner(artifacts["tflite-int8-static"].path / "model.tflite", threads=1)
    signature = runner.signatures[8]
    assert signature["output"]["dtype"] == "float32" and signature["quantization"] is None
    assert runner.predict(np.array([[2, 10, 3]]), np.array([[1, 1, 1]])).dtype == np.float32


def test_dequantize_uses_scale_and_zero_point():
    np.testing.assert_allclose(dequantize(np.array([[-3, 1]], dtype=np.int8), (0.5, -3)), [[0.0, 2.0]])
    floats = np.array([[0.25]], dtype=np.float32)
    assert dequantize(floats, (0.5, -3)) is floats


def test_signatures_share_one_xnnpack_weight_cache_file(artifacts, tmp_path, monkeypatch):
    """XNNPACK packs weights per signature; the cache file packs them once for every bucket."""
    from edgedistill.export.backends.tflite import weight_cache_path

    monkeypatch.setenv("EDGEDISTILL_CACHE", str(tmp_path))
    path = artifacts["tflite-int8-dynamic"].path / "model.tflite"
    cache = weight_cache_path(path)
    assert cache.parent == tmp_path / "xnnpack" and not cache.exists()
    first = TFLiteRunner(path, threads=1).predict(np.array([[2, 10, 3]]), np.array([[1, 1, 1]]))
    assert cache.is_file() and cache.stat().st_size > 0
    again = TFLiteRunner(path, threads=1).predict(np.array([[2, 10, 3]]), np.array([[1, 1, 1]]))
    np.testing.assert_array_equal(first, again)
