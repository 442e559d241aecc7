"""The layering contract: the folder list is the data flow, and nothing reaches back.

Each layer may import the layers above it in LAYERS and modules of its own layer, never one below it. Imports
are read from the source (top-level and inside functions alike), so an import hidden in a function to dodge a
cycle is still a back edge. Two more rules: no module imports another module's private name, and no module
imports a planner module inside a function (the cycles those imports used to hide are gone; a lazy import
needs a reason in LAZY_OK).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Top to bottom: the order data flows in. A module belongs to the first entry that is it or its package.
LAYERS: list[tuple[str, ...]] = [
    ("planner.errors", "planner.atomic", "planner.units", "hwtargets"),  # base: imports nothing of ours
    ("planner.model",),  # read the model: load, check, bind dims, infer shapes, build the IR
    ("planner.costs",),  # per-node cost formulas (never see a target)
    ("passes",),  # graph rewrites; they read models, nothing of the planner's beyond them
    ("planner.targets",),  # hardware as data: the Target type, spec-sheet rates, the TOML files, this host
    ("planner.predict",),  # kernels, roofline, memory: one configuration on one target
    ("planner.ort",),  # onnxruntime here: sessions, the executed graph, measuring, profiling
    ("planner.calibration",),  # measure this machine, fit rates, the calibrated host, validate
    ("planner.search",),  # pass pipelines as variants, the sweep over targets and batches, plan types
    ("planner.llm",),  # decoders: prefill and decode, KV cache, tensor parallelism
    ("planner.fleet",),  # traffic in, fleet out: simulated batching over replicas, the cheapest fleet per target
    ("planner.output",),  # text, tables, reports, plan files, the emitted model
    ("planner.api",),  # plan(): the pipeline top to bottom
    ("planner.ci",),  # plan check / plan diff: compare two plans, gate on a baseline
    ("planner.commands", "planner.cli"),  # the command line
    ("harness",),  # test and benchmark harnesses (not shipped): drive the command line
]

# (importer, imported) pairs allowed to stay inside a function, with the reason.
_PUBLIC_API = "planner/__init__ loads the public API on first use, so that `import passes` (which imports " \
    "planner.errors, running planner/__init__ first) does not meet itself half-initialised"
LAZY_OK: dict[tuple[str, str], str] = {
    ("planner", "planner.api"): _PUBLIC_API,
    ("planner", "planner.calibration.host"): _PUBLIC_API,
    ("planner", "planner.search.plan_types"): _PUBLIC_API,
}


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in ("planner", "passes", "hwtargets", "harness"):
        for p in (ROOT / pkg).rglob("*.py"):
            parts = p.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = p
    return out


MODULES = _modules()


def layer_of(module: str) -> int | None:
    for i, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return i
    return None


def _imports(name: str, path: Path):
    """(imported module, imported name or None, inside a function?) for each import of our packages."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top = {id(n) for n in tree.body}
    for block in tree.body:  # `if TYPE_CHECKING:` imports never run: an edge for layering, not a lazy import
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test):
            top |= {id(n) for n in block.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield (full, None, id(node) not in top) if full in MODULES else (base, alias.name, id(node) not in top)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, id(node) not in top


def _ours(module: str) -> bool:
    return module.split(".")[0] in ("planner", "passes", "hwtargets", "harness")


EDGES = [(importer, imported, name, lazy) for importer, path in sorted(MODULES.items())
         for imported, name, lazy in _imports(importer, path) if _ours(imported)]


def test_every_module_has_a_layer():
    # planner/__init__.py is the public API over all layers: it alone may import from any of them
    missing = [m for m in MODULES if m != "planner" and layer_of(m) is None]
    assert not missing, f"modules outside every layer (add them to LAYERS): {missing}"


def test_no_back_edges():
    back = [f"{a} -> {b}" for a, b, _, _ in EDGES if a != "planner" and layer_of(b) is not None
            and layer_of(a) is not None and layer_of(b) > layer_of(a)]
    assert not back, "imports that reach back to a later layer:\n" + "\n".join(back)


def test_no_private_names_across_modules():
    private = [f"{a} imports {b}.{n}" for a, b, n, _ in EDGES if n and n.startswith("_") and not n.startswith("__")
               and b != a]
    assert not private, "\n".join(private)


def test_no_function_level_imports_of_our_modules():
    lazy = [f"{a} -> {b}" for a, b, _, is_lazy in EDGES if is_lazy and (a, b) not in LAZY_OK]
    assert not lazy, "imports inside functions (lift them, or say why in LAZY_OK):\n" + "\n".join(lazy)


@pytest.mark.parametrize("module", ["planner.predict.roofline", "planner.ort.executed", "planner.targets.catalog"])
def test_the_contract_sees_a_back_edge(module, tmp_path, monkeypatch):
    """The checker itself must fail on a planted back edge, or it proves nothing."""
    planted = tmp_path / "planted.py"
    planted.write_text("from planner.commands import check\n")
    monkeypatch.setitem(MODULES, module, planted)
    edges = list(_imports(module, planted))
    assert any(layer_of(b) > layer_of(module) for b, _, _ in edges if _ours(b))


@pytest.mark.parametrize("first", ["passes", "planner", "planner.errors", "passes.verify", "planner.llm.variants"])
def test_every_package_imports_first_on_its_own(first):
    """A fresh interpreter importing `first` before anything else: no half-initialised module on the way."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", f"import {first}; import planner; planner.plan"], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr.strip().splitlines()[-1:]
