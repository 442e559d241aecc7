"""Fit microbenchmark samples (planner.calibration.run) into the curves and costs a Calibration holds.

The fit, per quantity (a "sample" is one measured node: FLOPs, bytes and its time beyond a tiny node's):
    fixed cost of family f     per-node time of a chain of tiny f nodes beyond a Relu's, less the work the
                               curves below give those tiny nodes; families never chained get the median of
                               their op class
    streaming curve            bytes / time of the Add stream samples, one point per working set, then the
                               running maximum from the largest working set down (smaller never streams slower)
    weight-reading curve       from the GEMV chains (MatMul and transposed-B Gemm, each node's weights its own):
                               weight bytes / (time per node - the GEMV fixed cost) against the chain's
                               weights in all, the median at each working set, then falling like streaming.
                               The GEMV fixed cost ("weight_stream" in kernel_fixed_s): where two chains of
                               one working set have nodes of two sizes, the intercept of time against weight
                               bytes; the median of those intercepts
    matrix family f, peak p    FLOP/s = flops / (time - fixed - weight bytes / weight-reading bandwidth at the
                               sample's size) per sample, as a function of intensity; samples within 15% of
                               each other's intensity merge into their median (different kernels: the fastest
                               is no more typical than the slowest; the two calibration passes already kept
                               each kernel's quickest), then made non-decreasing in intensity (least squares);
                               GEMVs (rates.weight_stream) only extend the curve below the others, with
                               their fastest. Recurrent families (lstm, gru) per time step, after a per-step
                               fixed cost fitted as the intercept of step time against step FLOPs (the
                               fallback for a layer of unknown sizes)
    recurrent layers f         planner.model.recurrent.fit: seven costs (per call, per step, per weight, per
                               multiply-add of the step and of the input GEMMs, per gate value, per batch
                               row) by relative least squares over the measured layers, none negative
    cold kind curve            per point of planner.calibration.cold (bytes of weights between two runs of a
                               kind of small node: seconds that kind pays), the median at each, then rising
                               (more bytes between never leave a kind warmer)
    graph node overhead        per node of the mixed graphs (4 and 24 blocks of small nodes of many kinds), the
                               slope of measured - predicted by the curves above; added to every launch
    other family f             bytes/s = bytes / (time - fixed), as a function of working set, likewise merged
                               and made non-increasing; so too the matrix families timed by their bytes
                               (planner.calibration.rates.BYTES_TIMED: a 1x1 depthwise convolution)
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from planner.calibration.benches import SUBGRAPH_BENCHES, Bench, mixed_graph
from planner.calibration.host import as_executed
from planner.calibration.overheads import fit_line
from planner.calibration.rates import (
    DRAM_TIMED,
    GEMV_FIXED,
    IN_DRAM,
    INT8_GEMV_FIXED,
    SUBGRAPH_FIXED,
    apply,
    bytes_timed,
    interpolate_loglog,
    weight_stream,
)
from planner.calibration.recurrent import fit as fit_recurrent
from planner.calibration.samples import FP32_ROWS, INT8_ROWS, Measurements, Sample
from planner.calibration.store import RECURRENT, Calibration, CalibrationFileError, Curve
from planner.calibration.timing import run_overhead
from planner.model.analyze import Analyzer
from planner.model.loader import LoadedModel
from planner.model.recurrent import RecurrentShape
from planner.ort.executed import ort_analysis
from planner.predict.families import EPILOGUE_SUFFIXES, FED, RUN_TIMED, epilogue_counts
from planner.predict.predictor import Predictor
from planner.targets.host import detect_host, host_fingerprint


def _merge(points: Iterable[tuple[float, float]], tolerance: float = 1.15, pick=max) -> Curve:
    """Ascending points; points whose x lie within `tolerance` of a group's first merge into `pick` of their y
    (max: the fastest, for repeats of one measurement where noise only adds time; statistics.median: for
    different kernels that happen to share an x, where the fastest is no more typical than the slowest)."""
    kept = sorted((x, y) for x, y in points if x > 0 and y > 0)
    return tuple((x, pick([y for _, y in members])) for x, members in _grouped(kept, lambda p: p[0], tolerance))


def _grouped(items: Iterable, x, tolerance: float = 1.15) -> list[tuple[float, list]]:
    """(first x, members) for `items` ascending in x(item), each group holding the items whose x lies within
    `tolerance` of its first's."""
    groups: list[tuple[float, list]] = []
    for item in sorted(items, key=x):
        if groups and x(item) <= groups[-1][0] * tolerance:
            groups[-1][1].append(item)
        else:
            groups.append((x(item), [item]))
    return groups


def _isotonic(curve: Curve) -> Curve:
    """The closest non-decreasing curve in absolute error (pool-adjacent-violators, each pool at its median): a
    kernel with more FLOPs per byte is not slower per FLOP in cache, but one shape's lucky run must not lift every
    shape after it. A mean would let it: an int8 GEMM of 4 rows whose weight read is most of its time came out at
    944 G op/s net of that read, and pooled by the mean with nine compute-bound benches at 429-526 it set the
    whole curve at 518, where those benches ran at 452-455 (Zen 4 EPYC); their median is 457."""
    blocks: list[list] = []  # [median, ys, xs]
    for x, y in curve:
        blocks.append([y, [y], [x]])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            b = blocks.pop()
            a = blocks[-1]
            a[1] += b[1]
            a[2] += b[2]
            a[0] = statistics.median(a[1])
    return tuple((x, level) for level, _, xs in blocks for x in xs)


def _falling(curve: Curve) -> Curve:
    """The running maximum from the largest working set down: a smaller working set is never slower to stream
    (a small kernel's fixed costs belong to kernel_fixed_s, not to its bandwidth)."""
    out, best = [], 0.0
    for x, y in reversed(curve):
        best = max(best, y)
        out.append((x, best))
    return tuple(reversed(out))


def fit_weight_chains(samples: list) -> tuple[float, Curve]:
    """(GEMV fixed cost, weight-reading curve) from weight-chain samples (see the module docstring).

    A small GEMV costs more than its bytes: in chains of 512 KiB of weights in all, nodes of 16 KiB ran at
    71 GB/s and nodes of 64 KiB at 128 GB/s, which a fixed 0.13 us per node and 170 GB/s both explain."""

    groups = _grouped(samples, lambda s: s.working_set or s.bytes)
    intercepts = []
    for _, members in groups:
        if len({s.weight_bytes for s in members}) > 1:
            c0, _ = fit_line([s.weight_bytes for s in members], [s.seconds for s in members])
            intercepts.append(c0)
    fixed = statistics.median(intercepts) if intercepts else 0.0
    if samples:
        fixed = min(max(fixed, 0.0), 0.5 * min(s.seconds for s in samples))
    points = [(ws, statistics.median(s.weight_bytes / max(s.seconds - fixed, 0.5 * s.seconds) for s in members))
              for ws, members in groups]
    return fixed, _falling(tuple(points))


def fit_row_weight_chains(samples: list, in_cache: Curve) -> Curve:
    """(working set, bytes/s) at which a GEMM of several rows (int8 or float, by the chains given) reads its
    packed weights: each chain's time a node beyond the same chain's in its smallest working set (the anchor,
    weights in cache), added to the anchor's weight read at the in-cache weight-reading speed the rate fit
    already took out of the benches, so that the curve meets those benches where the weights fit the caches.
    Where chains of two shapes meet at one working set the slower speed is kept: on a Xeon with AMX 32-row GEMMs
    hid a read from L3 that 128-row ones paid in full (suite.FP32_ROW_CHAINS). Empty without chains or a weight
    curve."""
    if not samples or not in_cache:
        return ()
    points = []
    by_shape: dict[tuple[int, int], list] = defaultdict(list)
    for s in samples:
        by_shape[(s.weight_bytes, s.flops)].append(s)
    for group in by_shape.values():
        anchor = min(group, key=lambda s: s.working_set)
        read = anchor.weight_bytes / interpolate_loglog(in_cache, anchor.working_set)
        for s in group:
            extra = s.seconds - anchor.seconds
            points.append((float(s.working_set), s.weight_bytes / max(read + extra, 0.25 * read)))
    return _falling(_merge(points, pick=min))


def fit_row_chains(rows: list, weights: list) -> Curve:
    """(rows, time per node / the one-row chain's) for the few-row chains, each against the GEMV chain of the same
    weights and working set; (1, 1.0) first, then made non-decreasing (more rows never take less time).
    Empty without a matching one-row chain."""
    single = {(s.weight_bytes, s.working_set): s.seconds for s in weights if s.family == "gemm"}
    points = {1: 1.0}
    for s in rows:
        base = single.get((s.weight_bytes, s.working_set))
        if base:
            r = round(s.flops / (2 * s.weight_bytes / 4))
            points[r] = max(points.get(r, 0.0), s.seconds / base)
    if len(points) < 2:
        return ()
    out, best = [], 0.0
    for r in sorted(points):
        best = max(best, points[r])
        out.append((float(r), best))
    return tuple(out)


@dataclass(frozen=True)
class _Sources:
    """A calibration's samples by how they were timed (planner.calibration.samples.Sample.source)."""

    chains: list  # per node of a chain of tiny nodes of one family: that family's fixed cost
    weights: list  # per node of a chain of GEMVs with weights of their own: weight reads, nothing else
    rows: list  # per node of a chain of few-row GEMMs over weights in DRAM: fit_row_chains
    int8_rows: list  # per node of a chain of several-row int8 GEMMs: fit_row_weight_chains
    fp32_rows: list  # per node of a chain of several-row float GEMMs: fit_row_weight_chains
    mixed: list  # whole mixed graphs: checked against the fit at the end (the graph node overhead)
    subgraph: list  # If and Loop benches end to end: checked against the fit last (a subgraph run's cost)
    cold: list  # small nodes run after weights went by, against the same run warm: the cold kind curve
    profiled: list  # single nodes, profiled (and activation chains)
    stream: list  # of those, the Add streams: the bandwidth curve

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> _Sources:
        profiled = [s for s in samples
                    if s.source not in ("chain", "weights", "rows", INT8_ROWS, FP32_ROWS, "mixed", "subgraph", "cold")]
        return cls([s for s in samples if s.source == "chain"], [s for s in samples if s.source == "weights"],
                   [s for s in samples if s.source == "rows"], [s for s in samples if s.source == INT8_ROWS],
                   [s for s in samples if s.source == FP32_ROWS],
                   [s for s in samples if s.source == "mixed"], [s for s in samples if s.source == "subgraph"],
                   [s for s in samples if s.source == "cold"], profiled,
                   [s for s in profiled if s.label.startswith("Add stream")])


def fit(m: Measurements) -> Calibration:
    """Curves from a calibration's measurements (see the module docstring), step by step."""
    src = _Sources.of(m.samples)
    bandwidth = _falling(_merge((s.bytes, s.bytes / s.seconds) for s in src.stream if s.bytes))
    if not bandwidth:
        raise CalibrationFileError("calibration measured no streaming kernel; cannot fit a bandwidth curve")
    floats = [s for s in src.weights if s.peak_key != "int8"]
    gemv_fixed, weight_bw = fit_weight_chains(floats)
    int8_fixed, int8_weight_bw = fit_weight_chains([s for s in src.weights if s.peak_key == "int8"])
    fixed = _fixed_costs(src, bandwidth)
    if weight_bw:
        fixed[GEMV_FIXED] = gemv_fixed
    if int8_weight_bw:
        fixed[INT8_GEMV_FIXED] = int8_fixed
    net = _Net(fixed, weight_bw)
    rate_curves, throughput_curves = _rate_curves(src, net)
    epilogues = fit_epilogues(src.profiled, net, rate_curves)
    run_costs = fit_run_costs(src.profiled, net, bandwidth)
    rate_curves = {k: v for k, v in rate_curves.items() if k.rpartition(".")[0] not in epilogues}  # the core's
    cal = Calibration(
        fingerprint=host_fingerprint(), threads=m.threads, launch_overhead_s=m.launch_overhead_s,
        run_overhead_s=m.run_overhead_s, run_overhead_per_io_s=m.run_overhead_per_io_s,
        profiler_bias_s=m.profiler_bias_s, bandwidth_curve=bandwidth, weight_bandwidth_curve=weight_bw,
        weight_rows_curve=fit_row_chains(src.rows, floats), epilogue_s=epilogues,
        int8_weight_bandwidth_curve=int8_weight_bw,
        int8_rows_weight_curve=fit_row_weight_chains(src.int8_rows, weight_bw),
        fp32_rows_weight_curve=fit_row_weight_chains(src.fp32_rows, weight_bw),
        cold_kind_curve=fit_cold(src.cold),
        rate_curves=rate_curves, recurrent_costs=_recurrent_costs(src.profiled),
        throughput_curves={k: v for k, v in throughput_curves.items() if k not in run_costs}, run_s=run_costs,
        kernel_fixed_s=dict(sorted(fixed.items())), workspace_bytes=m.workspace_bytes,
        weight_residency=dict(m.weight_residency), probe_s=m.probe_s, probe_memory_s=m.probe_memory_s,
        noise={k: round(float(v), 4) for k, v in dataclasses.asdict(m.noise).items()},
        created=_dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(), onnxruntime=_ort_version(),
        quick=m.quick, seconds=round(m.seconds, 2),
        samples=tuple((s.family, s.op_class, s.peak_key, s.flops, s.bytes, s.seconds, s.label, s.source, s.steps,
                       s.weight_bytes, s.working_set, list(s.shape), s.runs) for s in m.samples),
        notes=tuple(m.notes),
    )
    if len(src.mixed) >= 2:
        cal = dataclasses.replace(cal, graph_node_overhead_s=mixed_residual(cal, src.mixed))
    runs = subgraph_residuals(cal, src.subgraph)
    if runs:
        cal = dataclasses.replace(cal, kernel_fixed_s=dict(sorted({**cal.kernel_fixed_s, **runs}.items())))
    return cal


def fit_cold(samples: Sequence[Sample]) -> Curve:
    """(bytes between, seconds) from planner.calibration.cold's samples: the median at each byte count, rising
    from the fewest bytes on; points the noise left at nothing are dropped (a curve's points are positive)."""
    by: dict[int, list[float]] = defaultdict(list)
    for s in samples:
        by[s.bytes].append(s.seconds)
    out: list[tuple[float, float]] = []
    for nbytes in sorted(by):
        seconds = max(statistics.median(by[nbytes]), out[-1][1] if out else 0.0)
        if nbytes > 0 and seconds > 0:
            out.append((float(nbytes), seconds))
    return tuple(out)


def _ort_version() -> str:
    try:
        import onnxruntime
    except ImportError:  # pragma: no cover - calibrate needs it anyway
        return ""
    return onnxruntime.__version__


def _fixed_costs(src: _Sources, bandwidth: Curve) -> dict[str, float]:
    """Per family, a tiny node's time beyond what the profiled samples' curves give it; per op class, the
    median of its families (for families never chained); per recurrent family, per time step."""
    profiled = src.profiled

    def prelim_seconds(s: Sample) -> float:
        """What the profiled samples say a node like this chain's tiny one takes, fixed cost aside."""
        if s.op_class == "matrix":
            pts = [(x.intensity, x.flops / x.seconds) for x in profiled if x.family == s.family and x.flops]
            return s.flops / interpolate_loglog(_merge(pts), s.intensity) if pts and s.flops else 0.0
        pts = [(x.bytes, x.bytes / x.seconds) for x in profiled if x.family == s.family and x.bytes]
        curve = _merge(pts) or bandwidth
        return s.bytes / interpolate_loglog(curve, s.bytes) if s.bytes else 0.0

    raw = {s.family: s.seconds for s in src.chains}
    fixed = {fam: max(0.0, t - prelim_seconds(next(s for s in src.chains if s.family == fam)))
             for fam, t in raw.items()}
    for fam in fixed:  # a fixed cost cannot be most of the quickest node of that family ever measured
        seen = [s.seconds for s in profiled if s.family == fam]
        if seen:
            fixed[fam] = min(fixed[fam], 0.5 * min(seen))
    by_class: dict[str, list[float]] = defaultdict(list)
    for s in src.chains:
        by_class[s.op_class].append(fixed[s.family])
    for op_class, values in by_class.items():
        fixed.setdefault(op_class, statistics.median(values))
    fixed.setdefault("data", fixed.get("vector", 0.0))
    for fam in sorted({s.family for s in profiled if s.steps > 1}):  # recurrent: per time step
        rnn = [s for s in profiled if s.family == fam and s.flops]
        if len(rnn) < 2:
            continue
        step = [s.seconds / s.steps for s in rnn]
        c0, _ = fit_line([s.flops for s in rnn], step)  # t = fixed + flops / rate: the intercept
        fixed[fam] = min(max(c0, 0.0), 0.5 * min(step))
    return fixed


@dataclass(frozen=True)
class _Net:
    """A sample's seconds net of what the rates add back separately: its family's fixed cost, and a single-step
    matrix kernel's weight read from where the microbenchmark keeps them (the calibrated rates add them back at
    the model's working set)."""

    fixed: dict[str, float]
    weight_bw: Curve

    def fixed_of(self, s: Sample) -> float:
        return self.fixed.get(s.family, self.fixed.get(s.op_class, 0.0))

    def seconds(self, s: Sample) -> float:
        """Seconds of one step beyond the fixed cost (an RNN's flops, bytes and fixed cost are per step)."""
        if s.steps > 1:
            per_step = s.seconds / s.steps
            return max(per_step - self.fixed_of(s), 0.1 * per_step)
        return max(s.seconds - self.fixed_of(s) - self.weight_read(s), 0.1 * s.seconds)

    def weight_read(self, s: Sample) -> float:
        """The sample's weight read where the rates add weight reads to the arithmetic, else 0."""
        w = s.weight_bytes
        if s.op_class != "matrix" or not w or not self.weight_bw or s.steps > 1 or weight_stream(s.flops, s.bytes, w):
            return 0.0
        return w / interpolate_loglog(self.weight_bw, s.bytes)

    def weight_bound(self, s: Sample) -> bool:
        """Reading the weights is most of this kernel's time: it says nothing of the arithmetic rate."""
        return self.weight_read(s) > 2 / 3 * max(s.seconds - self.fixed_of(s), 1e-12)


def _rate_curves(src: _Sources, net: _Net) -> tuple[dict[str, Curve], dict[str, Curve]]:
    """(FLOP-rate curves over intensity per "<family>.<peak>", bytes/s curves over working set per family)."""
    rate_points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    stream_points: dict[str, list[tuple[float, float]]] = defaultdict(list)  # weight streams (GEMVs)
    thru_points: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for s in src.profiled:
        by_bytes = bytes_timed(s.family, s.op_class)
        if s.family in DRAM_TIMED and IN_DRAM in s.label:  # a point of its bytes/s, not of its FLOP rate
            if s.bytes:
                thru_points[s.family].append((s.bytes, s.bytes / net.seconds(s)))
            continue
        if not by_bytes and s.flops and s.bytes:
            if net.weight_bound(s):
                continue
            point = (s.intensity, s.flops / net.seconds(s))
            streams = s.steps == 1 and weight_stream(s.flops, s.bytes, s.weight_bytes)
            keys = [f"{s.family}.{s.peak_key}"]
            if s.family == "gemm":  # the fallback for matrix kernels of a family never measured
                keys.append(f"matrix.{s.peak_key}")
            for key in keys:
                (stream_points if streams else rate_points)[key].append(point)
        elif by_bytes and s.bytes and s not in src.stream:
            thru_points[s.family].append((s.bytes, s.bytes / net.seconds(s)))
    vector_rates = [s.flops / net.seconds(s) for s in src.profiled
                    if s.op_class == "vector" and s.flops and s not in src.stream]
    # GEMVs of one intensity differ by where their weights live, which the rates time separately: their
    # arithmetic is the fastest of them (weights in cache). Different kernels sharing an intensity: the median.
    # Past the GEMVs, the curve is the other kernels' alone, made non-decreasing; a GEMV point below their
    # intensities only extends it, and never above their fastest rate.
    rate_curves = {k: _isotonic(_merge(v, pick=statistics.median)) for k, v in rate_points.items()}
    for key, points in stream_points.items():
        curve = rate_curves.get(key, ())
        below = [(x, min(y, max(r for _, r in curve) if curve else y)) for x, y in _merge(points)
                 if not curve or x < curve[0][0] / 1.15]
        rate_curves[key] = _isotonic(tuple(below)) + curve
    if vector_rates:  # an unmeasured elementwise op: the median measured one's arithmetic rate
        rate_curves["vector.vector"] = ((1.0, statistics.median(vector_rates)),)
    return rate_curves, {k: _falling(_merge(v)) for k, v in thru_points.items()}


_GEMM_LABEL = re.compile(r"(?:(\d+)x)?(\d+)x(\d+)x(\d+)$")
_CONV_LABEL = re.compile(r"ConvInteger \d+->(\d+) \S+ k\d+(?: g(\d+))?$")


def bench_grid(label: str) -> tuple[int, int, int] | None:
    """An int8 bench's output as families.gemm_grid gives it, from its label (planner.calibration.suite names the
    GEMMs "... [H x] M x K x N" and the convolutions "ConvInteger C->M S k3 [gG]"; their pixels are not needed)."""
    conv = _CONV_LABEL.match(label)
    if conv:
        groups = int(conv[2] or 1)
        return 0, int(conv[1]) // groups, groups
    m = _GEMM_LABEL.search(label)
    return (int(m[2]), int(m[4]), int(m[1] or 1)) if m else None


def _core_curve(family: str, rate_curves: dict[str, Curve]) -> Curve | None:
    """The curve of the GEMM an epilogue family wraps: its name without the epilogue suffixes."""
    if family.endswith(FED):
        return None  # a curve of its own (families.epilogue_counts)
    core = family
    while any(core.endswith(x) for x in EPILOGUE_SUFFIXES):
        core = core.rpartition(":")[0]
    return rate_curves.get(f"{core}.int8") if core != family else None


def fit_epilogues(profiled: Sequence[Sample], net: _Net, rate_curves: dict[str, Curve]
                  ) -> dict[str, tuple[float, ...]]:
    """Per int8 family with an epilogue ("gemm:q", "gemm:u8u8:dq", "conv:im2col"; families.INT8_EPILOGUE and
    IM2COL), seconds per output element, per element it stages and per matrix (families.epilogue_counts; a count
    that is the same in every bench is left out) beyond the GEMM it wraps, that GEMM timed by its own family's
    curve at the sample's intensity, as the rates time it: least squares over the family's benches in relative
    terms, none negative. On a Zen 4 EPYC at M = N = 512 QLinearMatMul's time beyond MatMulInteger's stayed
    45-49 us from K = 32 to 1024 (0.18 ns an output; benchmarks/int8_kernel_shapes.py), where one curve over
    intensity took K = 32 at 403 G op/s against the 115-172 it ran at: its rate depends on K, which intensity
    does not see."""
    out: dict[str, tuple[float, ...]] = {}
    families = {s.family for s in profiled if s.op_class == "matrix" and s.peak_key == "int8"}
    for fam in sorted(families):
        base = _core_curve(fam, rate_curves)
        # a bench timed by its weights' read (a GEMV; a few rows over 1 MiB, whose read its net time has had taken
        # out) shows no epilogue: on a Xeon with AMX QLinearMatMul 4 x 1024 x 1024 kept 1.7 us of 16.5 and alone
        # drove the fit below zero, where the narrow shapes ran 0.33-0.58 ns an output beyond their GEMM
        rows = [(s, bench_grid(s.label)) for s in profiled if s.family == fam and s.flops
                and not weight_stream(s.flops, s.bytes, s.weight_bytes) and not net.weight_bound(s)]
        rows = [(s, grid) for s, grid in rows if grid]
        if not base or len(rows) < 3:
            continue
        a = np.array([epilogue_counts(fam, s.flops, grid) for s, grid in rows], float)
        extra = np.array([net.seconds(s) - s.flops / interpolate_loglog(base, s.intensity) for s, _ in rows])
        weight = 1 / np.array([net.seconds(s) for s, _ in rows])
        used = [c for c in range(a.shape[1]) if np.ptp(a[:, c]) > 0]  # a count that never varies says nothing
        coef = np.zeros(a.shape[1])
        while used:
            got, *_ = np.linalg.lstsq(a[:, used] * weight[:, None], extra * weight, rcond=None)
            if (got >= 0).all():
                coef[used] = got
                break
            used = [c for c, g in zip(used, got, strict=True) if g > 0]  # drop the negative terms, fit again
        out[fam] = tuple(float(c) for c in coef)
    return out


def fit_run_costs(profiled: Sequence[Sample], net: _Net, bandwidth: Curve) -> dict[str, float]:
    """Per RUN_TIMED family (families.RUN_TIMED), seconds per contiguous run it copies beyond its bytes at the
    streaming bandwidth of its working set, as the rates time it: least squares through zero in relative terms,
    over benches whose runs differ (rows of 7 to 112 at like working sets) and that took longer than their bytes
    alone, never negative."""
    out: dict[str, float] = {}
    for fam in sorted(RUN_TIMED):
        rows = [s for s in profiled if s.family == fam and s.runs > 0 and s.bytes]
        beyond = {id(s): net.seconds(s) - s.bytes / interpolate_loglog(bandwidth, s.bytes) for s in rows}
        # a sample the streaming term alone over-explains (a gather of a few long rows inside L1) tells of the
        # bandwidth curve, not of runs, which can only add time: it would drag the fit below zero
        rows = [s for s in rows if beyond[id(s)] > 0]
        if len(rows) < 2 or len({s.runs for s in rows}) < 2:
            continue
        runs = np.array([s.runs for s in rows], float)
        extra = np.array([beyond[id(s)] for s in rows])
        weight = 1 / np.array([net.seconds(s) for s in rows])
        a, b = runs * weight, extra * weight
        out[fam] = max(float(a @ b / (a @ a)), 0.0)
    return out


def _recurrent_costs(profiled: list[Sample]) -> dict[str, dict[str, float]]:
    """planner.calibration.recurrent's costs per "<family>.<peak>", from the layers measured whole."""
    layers: dict[str, list[tuple[RecurrentShape, int, float]]] = defaultdict(list)
    for s in profiled:
        if s.family in RECURRENT and s.steps > 1 and len(s.shape) == 5:
            layers[f"{s.family}.{s.peak_key}"].append((RecurrentShape(*s.shape), s.steps, s.seconds))
    return {k: c for k, c in ((k, fit_recurrent(v)) for k, v in layers.items()) if c}


def mixed_residual(cal: Calibration, samples: list) -> float:
    """Per node, what the mixed graphs (benches.mixed_graph) took beyond their prediction under `cal`:
    the slope of (measured - predicted) over their node counts, so the per-run cost cancels. Each family's
    chain measures a node among nodes of its kind; among other kinds each costs more (measured here, one row:
    24 blocks, 408 nodes, predicted 20% under their 117 us, 4 blocks 14% under; 70 ns a node)."""
    predicted = mixed_predictions(cal, [s.steps for s in samples])
    slope = _residual_slope([(n, s.seconds - p) for s, (n, p) in zip(samples, predicted, strict=True)])
    return min(max(slope, 0.0), 1e-6) if slope is not None else 0.0


def _residual_slope(points: list[tuple[float, float]]) -> float | None:
    """The slope of (count, measured - predicted) between the smallest and the largest count: what each unit
    adds beyond the prediction, with the per-run cost cancelled. None when the counts do not differ."""
    (n0, r0), (n1, r1) = min(points), max(points)
    return (r1 - r0) / (n1 - n0) if n1 > n0 else None


def subgraph_residuals(cal: Calibration, samples: list) -> dict[str, float]:
    """Per subgraph kind (If, Loop), what one run of a body costs beyond its nodes as `cal` predicts them: the
    slope of (measured - predicted) over the benches' run counts, so the per-run cost cancels; never below 0.
    Keyed as the rates read it (rates.SUBGRAPH_FIXED + "." + the op)."""
    out = {}
    for op in sorted({s.family for s in samples}):
        slope = _residual_slope([(s.steps, s.seconds - bench_prediction(cal, SUBGRAPH_BENCHES[op](s.steps))[1])
                                 for s in samples if s.family == op])
        if slope is not None:
            out[f"{SUBGRAPH_FIXED}.{op}"] = max(slope, 0.0)
    return out


def bench_prediction(cal: Calibration, bench: Bench) -> tuple[int, float]:
    """(nodes onnxruntime runs, predicted seconds) of a bench, as `plan predict` would time it under `cal`
    (planner.ort.executed: the optimized graph, every node dispatched)."""
    loaded = LoadedModel(model=onnx.load_from_string(bench.model), path=Path("bench.onnx"),
                         sha256=f"planner-bench-{bench.label}")
    analysis = ort_analysis(loaded, analyzer=Analyzer(loaded))
    g = analysis.graph
    run = run_overhead(cal.run_overhead_s, cal.run_overhead_per_io_s, len(g.inputs) + len(g.outputs))
    return len(g.nodes), Predictor().predict(analysis, as_executed(apply(detect_host(), cal), run)).latency_s


def mixed_predictions(cal: Calibration, blocks: Iterable[int]) -> list[tuple[int, float]]:
    """(nodes onnxruntime runs, predicted seconds) of mixed_graph(b) for each b under `cal`."""
    return [bench_prediction(cal, mixed_graph(b)) for b in blocks]
