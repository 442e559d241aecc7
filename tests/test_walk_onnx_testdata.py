"""A deterministic sample of onnx's own test models through the `plan` CLI: each plans or is refused in one line.

The full walk (every file and all ~1,900 node cases) is benchmarks/walk_onnx_testdata.py. Here: every 8th
node-case module (the pool modules' reference implementations take seconds to import, so they are skipped),
every control-flow module, a stride over those cases, and a stride over the model files.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import time
import warnings
from pathlib import Path

import onnx
import pytest

from harness.outcome import CRASHED, PLANNED, REFUSED, Tally, run_plan_cli

SLOW_TO_IMPORT = {"averagepool", "lppool", "maxpool"}
CONTROL_FLOW = ["if_", "loop", "scan", "sequence_map"]
NODE_CASES = 80
FILES = 8


@functools.cache  # imports run once per process: a second call would find nothing new
def _node_cases() -> list[tuple[str, onnx.ModelProto]]:
    import onnx.backend.test.case.node as pkg

    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if not m.ispkg)
    sample = [m for m in names[::8] if m not in SLOW_TO_IMPORT]
    seen: set[str] = set()
    cases: list[tuple[str, onnx.ModelProto]] = []
    for group in (sample, CONTROL_FLOW):
        before = len(pkg._NodeTestCases)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for m in group:  # importing a case module runs its exports, which append to _NodeTestCases
                importlib.import_module(f"{pkg.__name__}.{m}")
        new = [c for c in pkg._NodeTestCases[before:] if c.name not in seen]
        if group is sample:
            new = new[:: max(1, len(new) // NODE_CASES)][:NODE_CASES]
        seen.update(c.name for c in new)
        cases += [(c.name, c.model) for c in new]
    return cases


def _files() -> list[Path]:
    root = Path(onnx.__file__).parent / "backend" / "test" / "data"
    files = sorted(p for d in ("node", "simple", "pytorch-converted", "pytorch-operator", "light")
                   for p in (root / d).rglob("*.onnx"))
    return files[:: max(1, len(files) // FILES)][:FILES]


@pytest.fixture()
def workdir(tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_node_case_sample_plans_or_refuses_never_crashes(tmp_path, workdir):
    cases = _node_cases()
    assert len(cases) >= 80
    assert {"test_if", "test_loop11", "test_scan9_sum"} <= {name for name, _ in cases}
    tally = Tally()
    for name, model in cases:
        p = tmp_path / f"{name}.onnx"
        p.write_bytes(model.SerializeToString())
        tally.add(name, run_plan_cli(p, timeout_s=60, watch=workdir))
    assert tally.crashes == [], tally.summary("node cases")
    assert tally.planned >= 0.9 * tally.total, tally.summary("node cases")


def test_file_sample_plans_or_refuses_never_crashes(workdir):
    files = _files()
    assert len(files) == FILES
    tally = Tally()
    for p in files:
        tally.add(str(p), run_plan_cli(p, timeout_s=60, watch=workdir))
    assert tally.crashes == [], tally.summary("files")


def test_the_classifier_counts_our_bugs_as_crashes(tmp_path, workdir, monkeypatch):
    """An unexpected exception inside planning must be a crash (a bug), never mistaken for a refusal."""
    p = tmp_path / "m.onnx"
    name, model = _node_cases()[0]
    p.write_bytes(model.SerializeToString())

    def broken(*a, **k):
        raise ZeroDivisionError("a bug of ours")

    monkeypatch.setattr("planner.api.search", broken)
    o = run_plan_cli(p, watch=workdir)
    assert o.kind == CRASHED and "ZeroDivisionError" in o.message and "Traceback" in o.detail
    monkeypatch.undo()
    monkeypatch.chdir(workdir)
    (workdir / "stray.txt").write_text("")  # present before the run: not the run's doing
    assert run_plan_cli(p, watch=workdir).kind == PLANNED
    p.write_bytes(b"not a model")
    assert run_plan_cli(p, watch=workdir).kind == REFUSED


def test_a_hang_is_a_crash_even_under_a_broad_except(tmp_path, workdir, monkeypatch):
    """The time limit must reach through code under test that catches Exception and carries on."""
    p = tmp_path / "m.onnx"
    p.write_bytes(_node_cases()[0][1].SerializeToString())

    def spin(*a, **k):
        while True:
            try:
                time.sleep(0.01)
            except Exception:  # what a best-effort helper does; it must not eat the timeout
                pass

    monkeypatch.setattr("planner.api.search", spin)
    o = run_plan_cli(p, timeout_s=0.5, watch=workdir)
    assert o.kind == CRASHED and o.message.startswith("timeout")
