"""Predicted (with a calibration, and with part of it removed) against measured, for models built on the spot.

The shared half of benchmarks/control_flow.py and benchmarks/quantized_cnn.py: each says which calibration
entries to drop (what the planner did before it measured them) and which models to build.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from planner.calibration.host import predict_ort
from planner.calibration.store import default_path
from planner.model.loader import load_model
from planner.ort.measure import measure


def arguments(doc: str | None, runs: int) -> tuple[Path, int]:
    """(calibration file, runs per model) from the command line: --calibration (default: the user cache), --runs."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibration", type=Path, default=None, help="calibration file (default: the user cache)")
    ap.add_argument("--runs", type=int, default=runs)
    args = ap.parse_args()
    return args.calibration or default_path(), args.runs


def without(src: Path, dst: Path, drop: Callable[[dict], None]) -> Path:
    """A copy of the calibration file `src` at `dst` with `drop(entry)` applied to every entry."""
    doc = json.loads(src.read_text())
    for entry in doc["calibrations"].values():
        drop(entry)
    dst.write_text(json.dumps(doc))
    return dst


def report(cases: Sequence[tuple[str, Path, dict[str, int]]], calibration: Path, before: Path, runs: int,
           title: str = "model") -> None:
    """One line per (label, model, dims): measured at one thread, predicted now and without, errors."""
    width = max(len(title), *(len(label) for label, _, _ in cases))
    print(f"{title:{width}} {'measured':>11} {'predicted':>11} {'error':>7}   {'without':>11} {'error':>7}")
    for label, path, dims in cases:
        loaded = load_model(path)
        now = predict_ort(loaded, 1, dims, None, calibration).prediction.latency_s
        old = predict_ort(loaded, 1, dims, None, before).prediction.latency_s
        measured = measure(path, dims, threads=1, runs=runs).latency_s
        print(f"{label:{width}} {measured * 1e3:8.4f} ms {now * 1e3:8.4f} ms {now / measured - 1:+7.1%}   "
              f"{old * 1e3:8.4f} ms {old / measured - 1:+7.1%}")
