"""This machine's matrix-multiply limit: fp32 and int8 GEMM throughput with the kernels the backends use.

    .venv/bin/python benchmarks/matmul_peak.py --threads 2      # ~1 min; prints JSON

The denominator of "achieved fraction": an artifact that runs F FLOPs in t seconds reaches
F / t / peak of the GEMM throughput this machine delivers at the same thread count. Measured:

* fp32: ONNX Runtime ``MatMul`` (MLAS) and ``torch.matmul`` (oneDNN/MKL);
* int8: ONNX Runtime ``MatMulInteger`` (uint8 x int8 -> int32, MLAS, VNNI where the CPU has it), the
  kernel behind ONNX Runtime's dynamic quantization, and ``torch._int_mm`` where the build has it.

Shapes are the transformer's own (128 tokens x hidden 768 x 768 or 3072) and a square 1024^3; the peak
is the best of them, so the fraction is against the best the machine showed, not a datasheet number.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import numpy as np

SHAPES = ((128, 768, 768), (128, 768, 3072), (128, 3072, 768), (1024, 1024, 1024))


def _time(fn: Callable[[], object], min_s: float = 1.0, min_runs: int = 10) -> float:
    """Median seconds per call after warm-up."""
    for _ in range(3):
        fn()
    samples: list[float] = []
    started = time.perf_counter()
    while len(samples) < min_runs or time.perf_counter() - started < min_s:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return float(np.median(samples))


def _ort_session(m: int, k: int, n: int, int8: bool, threads: int):  # noqa: ANN202
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        weight = numpy_helper.from_array(rng.integers(-127, 128, size=(k, n), dtype=np.int8), "B")
        node = helper.make_node("MatMulInteger", ["A", "B"], ["Y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        weight = numpy_helper.from_array(rng.standard_normal((k, n)).astype(np.float32), "B")
        node = helper.make_node("MatMul", ["A", "B"], ["Y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph([node], "gemm", [helper.make_tensor_value_info("A", a_type, [m, k])],
                              [helper.make_tensor_value_info("Y", y_type, [m, n])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    a = rng.integers(0, 256, size=(m, k), dtype=np.uint8) if int8 else rng.standard_normal((m, k)).astype(np.float32)
    return lambda: session.run(None, {"A": a})


def measure(threads: int) -> dict[str, object]:
    import torch

    torch.set_num_threads(threads)
    results = []
    for m, k, n in SHAPES:
        flops = 2 * m * k * n
        x, w = torch.randn(m, k), torch.randn(k, n)
        candidates = {
            ("fp32", "onnxruntime MatMul"): _ort_session(m, k, n, False, threads),
            ("fp32", "torch.matmul"): lambda x=x, w=w: torch.matmul(x, w),
            ("int8", "onnxruntime MatMulInteger"): _ort_session(m, k, n, True, threads),
        }
        xi, wi = torch.randint(-128, 127, (m, k), dtype=torch.int8), torch.randint(-128, 127, (k, n), dtype=torch.int8)
        try:
            torch._int_mm(xi, wi)
            candidates[("int8", "torch._int_mm")] = lambda xi=xi, wi=wi: torch._int_mm(xi, wi)
        except (RuntimeError, AttributeError):
            pass
        for (dtype, impl), fn in candidates.items():
            seconds = _time(fn)
            results.append({"dtype": dtype, "impl": impl, "m": m, "k": k, "n": n, "ms": round(seconds * 1e3, 4),
                            "gflops": round(flops / seconds / 1e9, 1)})
    peak = {}
    for dtype in ("fp32", "int8"):
        best = max((r for r in results if r["dtype"] == dtype), key=lambda r: r["gflops"])
        peak[dtype] = {"gflops": best["gflops"], "impl": best["impl"], "shape": [best["m"], best["k"], best["n"]]}
    return {"threads": threads, "peak": peak, "measurements": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="write the JSON here as well as printing it")
    args = parser.parse_args()
    result = measure(args.threads)
    text = json.dumps(result, indent=2)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
