"""`host` as this machine's calibration times it, and predictions of the graph onnxruntime executes here.

`get_target` and `resolve_targets` are planner.targets.catalog's with one difference: `host` comes with this
machine's calibration applied where `plan calibrate` stored one (planner.calibration.store).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from planner.calibration.rates import apply
from planner.calibration.store import DEFAULT_THREADS, Calibration, find
from planner.calibration.timing import run_overhead
from planner.errors import PlannerError
from planner.model.analyze import Analysis, Analyzer
from planner.model.loader import LoadedModel
from planner.ort.executed import ort_analysis
from planner.predict.predictor import Prediction, Predictor
from planner.targets import catalog
from planner.targets.host import detect_host
from planner.targets.target import Target


@dataclass
class HostTarget:
    target: Target
    calibration: Calibration | None
    notes: list[str] = field(default_factory=list)


def calibrated_host(threads: int = DEFAULT_THREADS, path: str | os.PathLike | None = None) -> HostTarget:
    """`host` with this machine's calibration for `threads` applied where there is one."""
    base = replace(detect_host(), threads=threads)
    found = find(threads, path)
    if found.calibration is None:
        return HostTarget(base, None, [f"host is uncalibrated: {found.why}"])
    notes = [f"host calibrated {found.calibration.created} from {found.path}"]
    single = find(1, path).calibration if threads > 1 else None
    if threads > 1:
        notes.append("kernels onnxruntime runs on one thread (planner.calibration.threads) timed by the 1-thread "
                     "calibration" if single else "no 1-thread calibration here: kernels too small to split are "
                     f"timed at {threads} threads' rates, too fast (run: plan calibrate --threads 1)")
    return HostTarget(apply(base, found.calibration, single), found.calibration, notes)


def get_target(name: str, extra: Sequence[Target] = (), threads: int = DEFAULT_THREADS) -> Target:
    """A bundled (or `extra`) target by name; `host` at `threads` intra-op threads, calibrated for them where
    this machine has been."""
    return catalog.get_target(name, extra, lambda: calibrated_host(threads).target)


def resolve_targets(spec: str, target_files: Sequence[str] = (), threads: int = DEFAULT_THREADS) -> list[Target]:
    """catalog.resolve_targets with `host` at `threads` threads, calibrated for them where it has been."""
    return catalog.resolve_targets(spec, target_files, lambda: calibrated_host(threads).target)


@dataclass
class OrtPrediction:
    prediction: Prediction
    analysis: Analysis
    target: Target
    calibration: Calibration | None
    threads: int = 1
    notes: list[str] = field(default_factory=list)


def ort_host_target(threads: int, n_io: int, calibration_path: str | os.PathLike | None = None
                    ) -> tuple[Target, Calibration | None, list[str]]:
    """`host` for a graph onnxruntime already optimized: every node is its own kernel (onnxruntime did the
    fusing), every node is dispatched, and a run costs the calibrated fixed part plus a part per input and
    output. Uncalibrated, the nominal peaks are scaled to `threads` of the machine's cores."""

    host = calibrated_host(threads, calibration_path)
    t, cal = host.target, host.calibration
    if cal is None:
        cores = max(1, int(os.cpu_count() or 1))
        share = min(threads, cores) / cores
        t = replace(t, matrix_flops_per_s={k: v * share for k, v in t.matrix_flops_per_s.items()},
                    vector_flops_per_s=t.vector_flops_per_s * share)
        run = 0.0
    else:
        run = run_overhead(cal.run_overhead_s, cal.run_overhead_per_io_s, n_io)
    return as_executed(t, run), cal, host.notes


def predict_ort(loaded: LoadedModel, threads: int = 1, dims: dict[str, int] | None = None,
                batch: int | None = None, calibration_path: str | os.PathLike | None = None,
                analyzer: Analyzer | None = None, values: dict[str, bool | int | float] | None = None
                ) -> OrtPrediction:
    """Predict `loaded` as onnxruntime runs it on this machine with `threads` intra-op threads.

    Nothing of the model runs: its optimized graph is costed, and the host calibration times the kernels.
    `values` binds one-element inputs (`--value`), which decide the If branches computed from them.
    """

    analysis = ort_analysis(loaded, dims, batch, analyzer or Analyzer(loaded, values=values))
    g = analysis.graph
    target, cal, notes = ort_host_target(threads, len(g.inputs) + len(g.outputs), calibration_path)
    prediction = Predictor().predict(analysis, target)
    return OrtPrediction(prediction, analysis, target, cal, threads, [*notes, *analysis.notes])


def predict_host(predictor, analyzer: Analyzer, analysis: Analysis, host: Target, dims: dict[str, int] | None,
                 batch: int | None, precision: str | None = None) -> Prediction:
    """`plan --target host`: the graph onnxruntime will execute (its fusions, layouts and every node dispatched),
    timed as `plan predict` and `plan validate` time it, rather than the model's own graph fused by rule. A
    model onnxruntime cannot optimize here is planned as stored (`analysis`), and says so."""

    try:
        ort = ort_analysis(analyzer.loaded, dims, batch, analyzer)
    except PlannerError as e:
        p = predictor.predict(analysis, host, precision)
        return replace(p, notes=p.notes + (f"host: planned as stored, not as onnxruntime runs it ({e})",))
    g = ort.graph
    target, _, _ = ort_host_target(host.threads, len(g.inputs) + len(g.outputs))
    p = predictor.predict(ort, replace(target, name=host.name), precision)
    threads = f"{host.threads} thread{'s' if host.threads != 1 else ''}"
    return replace(p, notes=p.notes + (f"host: onnxruntime's optimized graph (ORT_ENABLE_ALL, {threads})",))


def as_executed(t: Target, run_s: float) -> Target:
    """`t` timing a graph onnxruntime already optimized: every node its own kernel and dispatched, and a run
    costing `run_s` beyond them."""
    return replace(t, fuse_epilogue=False, fuse_elementwise=False, dispatch_views=True, run_overhead_s=run_s)
