"""The house's shape: imports run one way, the task is one seam, and each concept has one owner.

These read the source (no model is built), so they run in well under a second.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "edgedistill"
# The stages in dependency order: a module may import from its own folder and the folders before it.
LAYERS = ("core", "data", "tasks", "quant", "training", "export", "emulation", "bench")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every edgedistill module ``path`` imports, at module level or inside a function (not under
    ``if TYPE_CHECKING``), with the packages Python runs on the way (``a.b.c`` runs ``a.b``)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    own = _module_name(path)
    modules = {name for name in found if name in known}
    # the packages Python runs first, but not the importer's own: a package may import its submodules
    parents = {".".join(name.split(".")[:i]) for name in modules for i in range(2, name.count(".") + 1)}
    parents = {p for p in parents if p in known and not (own + ".").startswith(p + ".")}
    return (modules | parents) - {own}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, set(modules)) for name, path in modules.items()}


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt])
            elif nxt not in state:
                walk(nxt, path + [nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            walk(start, [start])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_imports_run_down_the_stages():
    """core < data < tasks < quant < training < export < emulation < bench; cli and pipeline on top import anything."""
    upward = []
    for module, imported in _graph().items():
        layer = module.split(".")[1] if module.count(".") else None
        if layer not in LAYERS:
            continue
        for target in imported:
            target_layer = target.split(".")[1] if target.count(".") else None
            if target_layer in LAYERS and LAYERS.index(target_layer) > LAYERS.index(layer):
                upward.append(f"{module} -> {target}")
    assert not upward, "imports against the stage order: " + ", ".join(sorted(upward))


def test_a_backend_imports_neither_the_gate_nor_a_stage():
    offenders = [f"{m} -> {t}" for m, imported in _graph().items() if m.startswith("edgedistill.export.backends")
                 for t in imported if t in ("edgedistill.export.gate", "edgedistill.export.stage",
                                            "edgedistill.pipeline") or t.startswith("edgedistill.training")]
    assert not offenders, offenders


def _source_outside_tasks() -> dict[str, str]:
    return {str(p.relative_to(PACKAGE)): p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py")
            if p.relative_to(PACKAGE).parts[0] != "tasks"}


def test_no_module_outside_the_task_package_names_a_task_class_or_branches_on_a_task():
    task_facts = re.compile(r"ForSequenceClassification|ForTokenClassification|num_labels|\bid2label\b")
    task_branch = re.compile(r"""(task|\.name)\s*(==|!=|in)\s*\(?\s*["'](classification|embedding|token-classification)""")
    offenders = [f"{name}: {m.group(0)}" for name, text in _source_outside_tasks().items()
                 for pattern in (task_facts, task_branch) for m in [pattern.search(text)] if m]
    assert not offenders, offenders


def test_backends_and_precisions_are_listed_once():
    """Only edgedistill/core/registry.py spells out which backends exist and which precisions each builds."""
    listing = re.compile(r"""["']onnx["']\s*,\s*["']tflite["']|["']fp16["']\s*,\s*["']int8-dynamic["']""")
    offenders = [name for name, text in _source_outside_tasks().items()
                 if name != "core/registry.py" and listing.search(text)]
    assert not offenders, offenders


def test_bucket_padding_and_signature_names_have_one_owner():
    """Padding a row to a fixed-shape bucket and naming a TFLite signature happen in data/encoding.py alone."""
    patterns = re.compile(r"""f["']seq_\{|next\(\(?b for b in|\bfor b in buckets if b >=""")
    offenders = [name for name, text in _source_outside_tasks().items()
                 if name != "data/encoding.py" and patterns.search(text)]
    assert not offenders, offenders
