"""The peers: what a user gets from the vendors' own tools without edgedistill, to measure against.

* ``onnx``: ``optimum-cli export onnx`` then ``optimum-cli onnxruntime quantize`` (optimum's default
  dynamic int8 for the host's ISA, per-tensor), run by a plain ONNX Runtime session;
* ``tflite``: ``litert_torch.convert`` at one fixed shape (its default, one signature) then
  ai-edge-quantizer's ``dynamic_wi8_afp32`` recipe, run by LiteRT's default signature runner.

Each peer runner does only what the tool's documentation does: a session with the thread count, or an
interpreter with the thread count and its single signature. The fixed-shape TFLite peer pads every input
to its one length, as a user of a default conversion must.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from edgedistill.bench.harness import BenchItem
from edgedistill.core.errors import ExportError
from edgedistill.data.encoding import pad_to
from edgedistill.tasks import task_of_model


class PlainOnnxRunner:
    """``onnxruntime.InferenceSession`` with ``intra_op_num_threads`` and nothing else."""

    runtime = "onnxruntime (defaults)"

    def __init__(self, model_path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def predict(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64),
                "token_type_ids": np.zeros_like(input_ids, dtype=np.int64)}
        return self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]


class PlainTFLiteRunner:
    """LiteRT ``Interpreter(num_threads)`` and its one signature, inputs padded to its fixed length."""

    runtime = "ai-edge-litert (defaults)"

    def __init__(self, model_path: Path, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
        self.runner = self.interpreter.get_signature_runner()
        details = self.runner.get_input_details()
        self.names = sorted(details)  # litert-torch names positional inputs args_0, args_1 in call order
        self.length = int(details[self.names[0]]["shape"][1])
        self.dtype = details[self.names[0]]["dtype"]  # int32: litert-torch downcasts 64-bit inputs

    def predict(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        rows = []
        for ids, mask in zip(input_ids, attention_mask, strict=True):
            padded_ids, padded_mask = pad_to(ids[np.asarray(mask, dtype=bool)], self.length, dtype=self.dtype)
            out = self.runner(**{self.names[0]: padded_ids, self.names[1]: padded_mask})
            rows.append(next(iter(out.values())).reshape(1, -1))
        return np.concatenate(rows).astype(np.float32)

    def bucket_for(self, length: int) -> int:
        return self.length


def peer_item(name: str, backend: str, path: Path, source: Path) -> BenchItem:
    """A peer's folder (``backend``: onnx or tflite, built by :func:`build_onnx_peer` / :func:`build_tflite_peer`)
    as a bench item, run by the peer's plain runner."""
    return BenchItem(name, name.split("-")[0], f"peer-{backend}", path, backend, "int8-dynamic", name, source,
                     model_files=(_model_file(backend, path),), loader=f"edgedistill.bench.peers:load_{backend}_peer",
                     task=task_of_model(source).name)


def load_onnx_peer(path: Path, threads: int) -> PlainOnnxRunner:
    return PlainOnnxRunner(_model_file("onnx", path), threads)


def load_tflite_peer(path: Path, threads: int) -> PlainTFLiteRunner:
    return PlainTFLiteRunner(_model_file("tflite", path), threads)


def _model_file(kind: str, path: Path) -> Path:
    return path / ("model_quantized.onnx" if kind == "onnx" else "model.tflite")


def build_onnx_peer(model_dir: Path, out: Path, isa: str) -> Path:
    """optimum-cli export + optimum-cli quantize, exactly as their documentation shows."""
    from edgedistill.export.model_files import copy_side_files

    cli = str(Path(sys.executable).with_name("optimum-cli"))
    export_dir = out.with_name(out.name + "-fp32")
    for command in ([cli, "export", "onnx", "--model", str(model_dir), "--task", task_of_model(model_dir).optimum_task,
                     str(export_dir)],
                    [cli, "onnxruntime", "quantize", "--onnx_model", str(export_dir), f"--{isa}", "-o", str(out)]):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise ExportError(f"{' '.join(command)} failed: {done.stderr.strip()[-800:]}")
    copy_side_files(model_dir, out)
    return _model_file("onnx", out)


def build_tflite_peer(model_dir: Path, out: Path, seq: int) -> Path:
    """litert_torch.convert at (1, seq) + ai-edge-quantizer dynamic_wi8_afp32, as their READMEs show."""
    import litert_torch
    import torch
    from ai_edge_quantizer import quantizer, recipe

    from edgedistill.export.model_files import copy_side_files

    out.mkdir(parents=True, exist_ok=True)
    model = task_of_model(model_dir).load_model(model_dir).eval()
    sample = (torch.zeros(1, seq, dtype=torch.long), torch.ones(1, seq, dtype=torch.long))
    fp32 = out / "model_fp32.tflite"
    litert_torch.convert(model, sample).export(str(fp32))
    qt = quantizer.Quantizer(str(fp32))
    qt.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    qt.quantize().export_model(str(_model_file("tflite", out)), overwrite=True)
    fp32.unlink()
    copy_side_files(model_dir, out)
    return _model_file("tflite", out)


class SentenceTransformersOnnxRunner(PlainOnnxRunner):
    """What ``SentenceTransformer(folder, backend="onnx")`` runs per call: its ONNX file (token states out) in a
    plain ONNX Runtime session, then its Pooling (mean over the mask) and Normalize modules, here in numpy."""

    runtime = "onnxruntime (sentence-transformers' ONNX export)"

    def predict(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        from edgedistill.tasks.embedding import row_normalised

        states = super().predict(input_ids, attention_mask)
        mask = attention_mask[..., None].astype(np.float32)
        return row_normalised((states * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)).astype(np.float32)


def build_sentence_transformers_peers(model_dir: Path, out: Path, isa: str) -> dict[str, Path]:
    """The embedding peers, built the way sentence-transformers documents: ``SentenceTransformer(folder,
    backend="onnx")`` (its optimum export, fp32) and ``export_dynamic_quantized_onnx_model`` (dynamic int8 for
    ``isa``), on a copy of ``model_dir`` (they write into the model folder). Returns name -> ONNX file."""
    import shutil

    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(model_dir, out)
    model = SentenceTransformer(str(out), backend="onnx", device="cpu")
    model.save_pretrained(str(out))
    export_dynamic_quantized_onnx_model(model, isa, str(out))
    return {"st-onnx-fp32": out / "onnx" / "model.onnx",
            "st-onnx-int8-dynamic": out / "onnx" / f"model_qint8_{isa}.onnx"}


def load_st_onnx_peer(path: Path, threads: int) -> SentenceTransformersOnnxRunner:
    return SentenceTransformersOnnxRunner(Path(path), threads)
