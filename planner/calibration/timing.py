"""Running a microbenchmark: end to end, or profiled per node, and the samples its times make.

A node's kernel time is its profiled duration less the profiler bias; a chain's per-node time is its end-to-end
time less the per-run overhead, over its length."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import onnx

from planner.calibration.benches import CHAIN_LENGTH, Bench
from planner.calibration.samples import FEW_ROWS, FP32_ROWS, INT8_ROWS, Sample
from planner.costs import OpClass, node_cost
from planner.model.analyze import Analyzer
from planner.model.build import build_graph
from planner.model.loader import load_model
from planner.model.recurrent import shape_of
from planner.ort.clock import cpu_shares, effective_seconds, timed_run
from planner.ort.executed import infer_optimized
from planner.ort.profile import load_profile, quantile_of
from planner.ort.session import make_session, session_options
from planner.predict.families import (
    FED,
    INT8_EPILOGUE,
    compute_dtype,
    contiguous_runs,
    kernel_family,
    kernel_steps,
)
from planner.targets.target import DTYPE_TO_PEAK

# Which quantile of a microbenchmark's runs is its time: below the median, because on a machine others use,
# noise only ever adds time; not the minimum, which no steady run reaches. On an idle machine all agree.
QUANTILE = 0.25


def _timed_runs(session, feeds, runs: int, budget_s: float) -> list[tuple[float, float]]:
    """(wall, thread CPU) seconds per run, until `runs` or `budget_s` (at least 3 runs)."""

    times = []
    start = time.perf_counter()
    for _ in range(runs):
        times.append(timed_run(session, feeds))
        if time.perf_counter() - start > budget_s and len(times) >= 3:
            break
    return times


def e2e_seconds(bench: Bench, threads: int, runs: int, budget_s: float, session=None) -> float:
    """End-to-end time of `bench` (the QUANTILE of its runs), no profiler (planner.ort.measure.effective_seconds);
    in `session` if given (one built for it before: building one over 256 MiB of weights takes seconds)."""

    s = session if session is not None else make_session(bench.model, session_options(threads))
    for _ in range(3):
        s.run(None, bench.feeds)
    times = [effective_seconds(w, c, threads) for w, c in _timed_runs(s, bench.feeds, runs, budget_s)]
    return quantile_of(times, QUANTILE)


@dataclass
class Profiled:
    node_s: dict[str, float]  # median profiled duration per node of the executed graph
    analysis: object  # planner.model.analyze.Analysis of the executed graph
    e2e_s: float | None = None  # the same model end to end without the profiler (QUANTILE of its runs)
    n_io: int = 0  # graph inputs + outputs: part of the per-run overhead


def profiled(bench: Bench, threads: int, runs: int, budget_s: float, workdir: Path, e2e: bool = False
             ) -> Profiled:
    """Run `bench` under the profiler and cost the graph onnxruntime executed (saved by the same session);
    with `e2e`, also time it end to end without the profiler (see samples_of)."""

    src = workdir / "bench.onnx"
    src.write_bytes(bench.model)
    opt = workdir / "bench.opt.onnx"
    so = session_options(threads, optimized_path=str(opt), profile_prefix=str(workdir / "prof"),
                         external_file="bench.opt.data")
    s = make_session(str(src), so)
    warm = 2
    for _ in range(warm):
        s.run(None, bench.feeds)
    timed = _timed_runs(s, bench.feeds, runs, budget_s)
    profile = load_profile(s.end_profiling())
    node_us = profile.node_times_us(skip_runs=warm, scale=cpu_shares(timed, threads, warm), quantile=QUANTILE)
    original = Analyzer(load_model(src)).analyze()
    inferred, _ = infer_optimized(onnx.load(str(opt), load_external_data=False), original)
    graph = build_graph(inferred, fold_constants=False)
    whole = e2e_seconds(bench, threads, runs, budget_s) if e2e else None
    return Profiled({k: v * 1e-6 for k, v in node_us.items()}, graph, whole,
                    len(graph.inputs) + len(graph.outputs))


@dataclass(frozen=True)
class Overheads:
    """What a run costs beyond its kernels' work (overheads_from), in seconds."""
    launch_s: float
    run_s: float
    per_io_s: float  # each graph input or output beyond the chains' one and one
    profiler_bias_s: float


def node_seconds(p: Profiled, o: Overheads) -> dict[str, float]:
    """Each working node's time beyond its launch.

    onnxruntime's profiler records whole microseconds, which is most of a small kernel's time, and its own
    bookkeeping (the bias) on top. The end-to-end time has neither problem: less the per-run overhead and one
    launch per executed node (both measured by the chains, the same terms a prediction adds), it is what the
    working nodes took together, and the profile only apportions it among them. Without an end-to-end time,
    or when noise leaves nothing to apportion, the profiled durations less the bias."""

    working = {n.name for n in p.analysis.nodes if n.name in p.node_s and node_cost(n).op_class != OpClass.VIEW}
    profiled_s = {k: max(p.node_s[k] - o.profiler_bias_s, 0.05e-6) for k in working}
    if p.e2e_s is None or not profiled_s:
        return profiled_s
    net = p.e2e_s - run_overhead(o.run_s, o.per_io_s, p.n_io) - o.launch_s * len(p.analysis.nodes)
    total = sum(profiled_s.values())
    if net <= 0.25 * total:
        return profiled_s
    return {k: v * net / total for k, v in profiled_s.items()}


def samples_of(p: Profiled, overheads: Overheads, label: str) -> list[Sample]:
    """One sample per working node, its time anchored end to end (node_seconds)."""

    times = node_seconds(p, overheads)
    out = []
    for node in p.analysis.nodes:
        if node.name not in times:
            continue
        nc = node_cost(node)  # node_seconds already left views out
        if not nc.known:
            continue
        peak = DTYPE_TO_PEAK.get(compute_dtype(node), "fp32") if nc.op_class == OpClass.MATRIX else "vector"
        t = times[node.name]
        steps = kernel_steps(node)
        c = nc.cost
        w = min(c.weight_bytes, c.bytes_read)
        flops, nbytes = c.flops // steps, (c.bytes_read - w) // steps + w + c.bytes_written // steps
        rnn = shape_of(node) if steps > 1 else None
        out.append(Sample(kernel_family(node, nc.op_class), nc.op_class.value, peak, flops, nbytes, t, label,
                          steps=steps, weight_bytes=w, shape=tuple(rnn.as_list()) if rnn else (),
                          runs=contiguous_runs(node)))
    return out


def per_node_seconds(e2e_s: float, length: int, n_io: int, o: Overheads) -> float:
    """One node of a chain of `length` alike: the chain's end to end less the run overhead (for `n_io` graph
    inputs and outputs), per node, less one launch."""

    return max((e2e_s - run_overhead(o.run_s, o.per_io_s, n_io)) / length - o.launch_s, 1e-9)


def weight_chain_sample(bench: Bench, k: int, length: int, transposed: bool, e2e_s: float, o: Overheads,
                        rows: int = 1, int8: bool = False) -> Sample:
    """One node of weight_chain: [r, k] x [k, k] is 2rk² FLOPs, reads 4rk + 4k² bytes (of them 4k² weights) and
    writes 4rk. One row: source "weights" (the weight-reading curve); up to FEW_ROWS: "rows" (fit_row_chains);
    more: FP32_ROWS (fit.fit_row_weight_chains). `int8`: a DynamicQuantizeMatMul, k² bytes of weights and 4rk more
    FLOPs (A's range and quantization), family "gemm:dq" at the int8 peak; more than one row: source INT8_ROWS
    (fit.fit_row_weight_chains)."""
    if int8:
        return Sample("gemm" + INT8_EPILOGUE["DynamicQuantizeMatMul"], "matrix", "int8",
                      2 * rows * k * k + 4 * rows * k, 8 * rows * k + k * k, per_node_seconds(e2e_s, length, 2, o),
                      bench.label, "weights" if rows == 1 else INT8_ROWS, weight_bytes=k * k,
                      working_set=length * k * k)
    w = 4 * k * k
    return Sample("gemm_bias" if transposed else "gemm", "matrix", "fp32", 2 * rows * k * k, 8 * rows * k + w,
                  per_node_seconds(e2e_s, length, 2, o), bench.label,
                  "weights" if rows == 1 else "rows" if rows <= FEW_ROWS else FP32_ROWS,
                  weight_bytes=w, working_set=length * w)


def activation_chain_sample(bench: Bench, h: int, m: int, k: int, e2e_s: float, o: Overheads,
                            length: int = CHAIN_LENGTH) -> Sample:
    """One node of activation_chain: 2hmk² FLOPs, reads 4hmk + 4hk² bytes, writes 4hmk (three graph inputs and
    outputs). Its B is an activation: family "gemm:fed" (families.FED)."""
    return Sample("gemm" + FED, "matrix", "fp32", 2 * h * m * k * k, 4 * (2 * h * m * k + h * k * k),
                  per_node_seconds(e2e_s, length, 3, o), bench.label, "series")


def mixed_sample(blocks: int, e2e_s: float) -> Sample:
    """A mixed graph's end-to-end time, for planner.calibration.fit.mixed_residual (not a node's)."""
    return Sample("mixed", "vector", "vector", 0, 0, e2e_s, f"mixed x{blocks}", "mixed", steps=blocks)


BASE_IO = 2  # the calibration's chains have one input and one output: run_overhead_s includes both


def run_overhead(run_s: float, per_io_s: float, n_io: int) -> float:
    """What one Run call costs beyond the kernels, for a graph with `n_io` inputs and outputs in all."""
    return max(run_s + per_io_s * (n_io - BASE_IO), 0.0)
