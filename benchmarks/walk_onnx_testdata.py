"""Plan every model in onnx's own test data through the `plan` CLI and count planned / refused / tracebacks.

Two sets, counted separately:
  files   every *.onnx under onnx/backend/test/data/ (node, simple, pytorch-converted, pytorch-operator, light;
          whichever of these the installed wheel ships)
  nodes   every case onnx.backend.test.case.node.collect_testcases(None) builds in memory (~1,900), each saved
          to a temporary file and planned from there, exactly as a user would

    python benchmarks/walk_onnx_testdata.py                      # both sets, --target a10g
    python benchmarks/walk_onnx_testdata.py --only nodes --show-tracebacks

A traceback (any exception that is not a PlannerError, the CLI's "internal error", or a case past --timeout)
is a bug, and so is a file left in the working folder (the walk runs from an empty temporary one). Exit
status 1 when there is at least one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import onnx

from planner.atomic import write_atomic

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # harness/ lives at the repository root

from harness.outcome import Tally, run_plan_cli

SUBDIRS = ("node", "simple", "pytorch-converted", "pytorch-operator", "light", "real")


def data_files(root: Path | None = None) -> list[Path]:
    root = root or Path(onnx.__file__).parent / "backend" / "test" / "data"
    return sorted(p for d in SUBDIRS for p in (root / d).rglob("*.onnx"))


def node_cases() -> list[tuple[str, onnx.ModelProto]]:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference implementations warn about their own overflows
        return [(c.name, c.model) for c in collect_testcases(None)]


def walk_files(paths: list[Path], args: list[str], timeout: float, progress: bool) -> Tally:
    tally = Tally()
    for i, p in enumerate(paths):
        tally.add(str(p), run_plan_cli(p, args, timeout, watch=os.getcwd()))
        if progress and (i + 1) % 25 == 0:
            print(f"  files {i + 1}/{len(paths)}", file=sys.stderr)
    return tally


def walk_models(cases: list[tuple[str, onnx.ModelProto]], args: list[str], timeout: float,
                progress: bool) -> Tally:
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="walk_onnx_") as tmp:
        for i, (name, model) in enumerate(cases):
            path = write_atomic(Path(tmp) / f"{name}.onnx", model.SerializeToString())
            tally.add(name, run_plan_cli(path, args, timeout, watch=os.getcwd()))
            path.unlink()
            if progress and (i + 1) % 100 == 0:
                print(f"  nodes {i + 1}/{len(cases)}", file=sys.stderr)
    return tally


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="a10g")
    ap.add_argument("--only", choices=["files", "nodes"])
    ap.add_argument("--limit", type=int, help="plan only the first N of each set")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per model before it counts as a hang")
    ap.add_argument("--show-tracebacks", action="store_true")
    ap.add_argument("--progress", action="store_true")
    a = ap.parse_args()
    cli_args = ["--target", a.target, "--json"]
    tallies = []
    if a.only in (None, "files"):
        t0 = time.perf_counter()
        files = data_files()[: a.limit]
        tallies.append(("files", walk_files(files, cli_args, a.timeout, a.progress), time.perf_counter() - t0))
    if a.only in (None, "nodes"):
        t0 = time.perf_counter()
        cases = node_cases()[: a.limit]
        tallies.append(("node test cases", walk_models(cases, cli_args, a.timeout, a.progress),
                        time.perf_counter() - t0))
    print(f"onnx {onnx.__version__}, plan --target {a.target}")
    for title, tally, secs in tallies:
        print(tally.summary(title) + f"\n  ({secs:.1f} s)")
        if a.show_tracebacks:
            for name, o in tally.crashes:
                print(f"--- {name}\n{o.detail}")
    return 1 if any(t.crashes for _, t, _ in tallies) else 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="walk_cwd_") as cwd:
        os.chdir(cwd)  # nothing may appear here; run_plan_cli watches it
        sys.exit(main())
