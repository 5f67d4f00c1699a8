"""Run fixed inputs through an artifact's runtime and write what it returned: the one program that both the
host's Python (x86) and the arm64 Python under qemu run, so that the two runs differ in the CPU's kernels alone.

Standalone on purpose: the standard library, numpy and the runtime (ai-edge-litert or onnxruntime), nothing of
edgedistill, because the arm64 environment holds those and no more. It does what the host's runners do
(:class:`edgedistill.export.backends.tflite.TFLiteRunner`: LiteRT's ``CompiledModel`` on the CPU accelerator,
XNNPACK; :class:`edgedistill.export.backends.onnx.OnnxRunner`: an ONNX Runtime CPU session, every graph
optimization on) on inputs the host has already tokenized and padded to the shapes the file takes.

    python -I replay_worker.py REQUEST.json
    python -I replay_worker.py --capabilities     # the CPU's hardware-capability words, as JSON

REQUEST: ``{"backend": "tflite" | "onnx", "model": path, "threads": n, "site": folder to import from or null,
"feeds": path.npz, "signatures": [TFLite signature per feed], "weight_cache": XNNPACK weight cache file (TFLite),
"out": path.npz, "info": path.json}``.
``feeds.npz`` holds ``<i>/input_ids``, ``<i>/attention_mask`` (and ``<i>/token_type_ids``: an ONNX graph that
declares it takes it) for each feed ``i``; ``out.npz`` gets ``<i>``: the float32 output (integer outputs
dequantized with the tensor's scale and zero point), ``info.json`` the runtime's versions, the CPU's hardware
capability words (``AT_HWCAP``, ``AT_HWCAP2``, read from ``/proc/self/auxv`` on arm64) and the seconds taken.
Standard output carries one ``progress DONE TOTAL`` line per feed, for the caller's progress bar.
"""

from __future__ import annotations

import json
import platform
import struct
import sys
import time
from importlib import metadata

AT_HWCAP, AT_HWCAP2 = 16, 26


def hardware_capabilities() -> dict[str, int]:
    """The kernel's (here: qemu's) ``AT_HWCAP`` / ``AT_HWCAP2`` words: what the CPU offers the runtime's kernels."""
    try:
        with open("/proc/self/auxv", "rb") as handle:
            raw = handle.read()
    except OSError:
        return {}
    words = dict(struct.iter_unpack("<QQ", raw[: len(raw) // 16 * 16]))
    return {name: words[key] for name, key in (("hwcap", AT_HWCAP), ("hwcap2", AT_HWCAP2)) if key in words}


def run_tflite(model: str, threads: int, feeds: dict, signatures: list[str], weight_cache: str | None) -> list:
    import numpy as np
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from ai_edge_litert.options import CpuOptions, Options

    # As the runner does: XNNPACK packs the weights into a weight cache (on a full-integer file the logits move by
    # up to ~0.2 without one, on x86 and arm64 alike)
    cpu = CpuOptions(num_threads=threads, **({"xnnpack_weight_cache_path": weight_cache} if weight_cache else {}))
    compiled = CompiledModel.from_file(model, options=Options(hardware_accelerators=HardwareAccelerator.CPU,
                                                              cpu_options=cpu))
    names = compiled.get_signature_list()
    prepared: dict[str, dict] = {}
    outputs = []
    for number, signature in enumerate(signatures):
        if signature not in prepared:
            index = compiled.get_signature_index(signature)
            detail = next(iter(compiled.get_output_tensor_details(signature).values()))
            quantization = None
            if not str(detail["dtype"]).startswith("float"):
                interpreter = Interpreter(model_path=model,
                                          experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
                output = next(iter(interpreter.get_signature_runner(signature).get_output_details().values()))
                quantization = tuple(output["quantization"])
            prepared[signature] = {"index": index, "inputs": compiled.create_input_buffers(index),
                                   "outputs": compiled.create_output_buffers(index), "detail": detail,
                                   "quantization": quantization}
        entry = prepared[signature]
        for name, buffer in zip(names[signature]["inputs"], entry["inputs"], strict=True):
            buffer.write(np.ascontiguousarray(feeds[f"{number}/{name}"], dtype=np.int32))
        compiled.run_by_index(entry["index"], entry["inputs"], entry["outputs"])
        shape = entry["detail"]["shape"]
        values = np.asarray(entry["outputs"][0].read(int(np.prod(shape)), np.dtype(entry["detail"]["dtype"])))
        values = values.reshape(*shape)
        if entry["quantization"] is not None:
            scale, zero_point = entry["quantization"]
            values = (values.astype(np.float32) - zero_point) * scale
        outputs.append(values.astype(np.float32))
        progress(number + 1, len(signatures))
    return outputs


def run_onnx(model: str, threads: int, feeds: dict, count: int) -> list:
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    wanted = [i.name for i in session.get_inputs()]
    output = session.get_outputs()[0].name
    outputs = []
    for number in range(count):
        feed = {name: np.asarray(feeds[f"{number}/{name}"], dtype=np.int64) for name in wanted}
        outputs.append(session.run([output], feed)[0].astype(np.float32))
        progress(number + 1, count)
    return outputs


def progress(done: int, total: int) -> None:
    print(f"progress {done} {total}", flush=True)


def main(request_path: str) -> int:
    with open(request_path, encoding="utf-8") as handle:
        request = json.load(handle)
    if request.get("site"):
        sys.path.insert(0, request["site"])
    import numpy as np

    started = time.perf_counter()
    with np.load(request["feeds"]) as archive:
        feeds = {name: archive[name] for name in archive.files}
    count = len({name.split("/")[0] for name in feeds})
    if request["backend"] == "tflite":
        outputs = run_tflite(request["model"], request["threads"], feeds, request["signatures"],
                             request.get("weight_cache"))
        runtime = "ai-edge-litert"
    else:
        outputs = run_onnx(request["model"], request["threads"], feeds, count)
        runtime = "onnxruntime"
    np.savez(request["out"], **{str(number): value for number, value in enumerate(outputs)})
    info = {"machine": platform.machine(), "python": platform.python_version(),
            "versions": {name: metadata.version(name) for name in (runtime, "numpy")},
            "hardware_capabilities": hardware_capabilities() if platform.machine() == "aarch64" else {},
            "xnnpack_weight_cache": bool(request.get("weight_cache")) and request["backend"] == "tflite",
            "feeds": count, "seconds": round(time.perf_counter() - started, 3)}
    with open(request["info"], "w", encoding="utf-8") as handle:
        json.dump(info, handle)
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--capabilities"]:
        print(json.dumps(hardware_capabilities()))
        sys.exit(0)
    sys.exit(main(sys.argv[1]))
