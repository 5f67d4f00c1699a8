"""Do two runs hold the same artifacts? Byte for byte, and where the bytes differ, structure for structure.

For a change that should not change what is exported (a refactor), export the same student with the code before
and after, then:

    .venv/bin/python benchmarks/compare_artifacts.py OLD/artifacts NEW/artifacts --name refactor-parity

Per artifact: which recorded files are byte-identical, whether the gate's numbers are identical, and for files
whose bytes differ, whether their structure is: a TFLite file's operators, tensor shapes, types, quantization
parameters and buffer bytes (its tensor names aside: converters name tensors after the traced Python module), a
Core ML package's program and weights, its metadata compared as a mapping (protobuf writes a map's entries in
no fixed order). Writes ``benchmarks/results/NAME.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
GATE_KEYS = ("samples", "agreement", "source_accuracy", "artifact_accuracy", "max_abs", "mean_abs", "passed")


def tflite_structure(path: Path) -> dict[str, Any]:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
    subgraphs = []
    for graph in model.subgraphs:
        tensors = [(None if t.shape is None else tuple(int(d) for d in t.shape), t.type, t.buffer,
                    None if t.quantization is None or t.quantization.scale is None
                    else (tuple(map(float, t.quantization.scale)), tuple(map(int, t.quantization.zeroPoint))))
                   for t in graph.tensors]
        operators = [(op.opcodeIndex, tuple(op.inputs), tuple(op.outputs)) for op in graph.operators]
        subgraphs.append([tensors, operators, tuple(graph.inputs), tuple(graph.outputs)])
    return {"buffers": [hashlib.sha256(bytes(b.data if b.data is not None else b"")).hexdigest()
                        for b in model.buffers],
            "operator_codes": [(code.builtinCode, code.version) for code in model.operatorCodes],
            "subgraphs": subgraphs, "signatures": [(s.signatureKey, s.subgraphIndex) for s in model.signatureDefs]}


def coreml_structure(package: Path) -> dict[str, Any]:
    import coremltools as ct

    spec = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    metadata = dict(spec.description.metadata.userDefined)
    spec.description.metadata.ClearField("userDefined")
    weights = {f.name: hashlib.sha256(f.read_bytes()).hexdigest()
               for f in sorted((package / "Data" / "com.apple.CoreML" / "weights").glob("*"))}
    return {"metadata": metadata, "program": hashlib.sha256(spec.SerializeToString(deterministic=True)).hexdigest(),
            "weights": weights}


def compare(old: Path, new: Path) -> dict[str, Any]:
    a, b = (json.loads((folder / "artifact.json").read_text(encoding="utf-8")) for folder in (old, new))
    differ = sorted(set(a["files"]) ^ set(b["files"]) | {name for name in a["files"] if name in b["files"]
                                                        and a["files"][name]["sha256"] != b["files"][name]["sha256"]})
    entry: dict[str, Any] = {"files": len(a["files"]), "bytes_differ": differ,
                             "gate_identical": all(a["parity"].get(k) == b["parity"].get(k) for k in GATE_KEYS)}
    if "model.tflite" in differ:
        entry["tflite_structure_identical"] = tflite_structure(old / "model.tflite") == \
            tflite_structure(new / "model.tflite")
    if any(name.startswith("model.mlpackage/") for name in differ):
        entry["coreml_structure_identical"] = coreml_structure(old / "model.mlpackage") == \
            coreml_structure(new / "model.mlpackage")
    return entry


def render(report: dict[str, Any]) -> str:
    lines = [f"# Same artifacts? `{report['old']}` against `{report['new']}`", "", f"`{report['command']}`", "",
             *([report["about"], ""] if report.get("about") else []),
             "| artifact | files | byte-identical | differ | gate numbers identical | structure identical |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, e in report["artifacts"].items():
        structure = e.get("tflite_structure_identical", e.get("coreml_structure_identical"))
        lines.append(f"| {name} | {e['files']} | {e['files'] - len(e['bytes_differ'])} | "
                     f"{', '.join(e['bytes_differ']) or '–'} | {e['gate_identical']} | "
                     f"{'–' if structure is None else structure} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", type=Path, help="the artifacts folder of the run before the change")
    parser.add_argument("new", type=Path, help="the artifacts folder of the run after it")
    parser.add_argument("--name", default="artifact-parity", help="results file name (default: artifact-parity)")
    parser.add_argument("--about", default="", help="how the two runs were made, for the report")
    args = parser.parse_args()
    artifacts = {folder.name: compare(folder, args.new / folder.name)
                 for folder in sorted(args.old.glob("*")) if (args.new / folder.name / "artifact.json").is_file()}
    missing = sorted(f.name for f in args.old.glob("*") if not (args.new / f.name / "artifact.json").is_file())
    command = [Path(sys.argv[0]).as_posix(), str(args.old), str(args.new), "--name", args.name]
    report = {"command": " ".join(command + (["--about", "..."] if args.about else [])), "old": str(args.old),
              "new": str(args.new), "about": args.about, "artifacts": artifacts, "missing_in_new": missing}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (RESULTS / f"{args.name}.md").write_text(render(report), encoding="utf-8")
    print(render(report))
    return 0 if not missing else 1


if __name__ == "__main__":
    raise SystemExit(main())
