"""The rates a calibration measured, and the host target they time: every calibrated special case of the roofline.

`CalibratedRates` answers planner.targets.rates.Rates from what `plan calibrate` measured:

    compute     a matrix kernel's FLOP rate by family and arithmetic intensity (rate_curves, "gemm.fp32" or
                "<op class>.<peak>"); a vector or data kernel, and a matrix family in BYTES_TIMED, by its own
                bytes/s over working set (throughput_curves), its arithmetic included
    memory      bytes at the streaming bandwidth of the kernel's working set (bandwidth_curve: a kernel whose
                bytes fit in L2 streams faster than one that goes to DRAM), weights at the weight-reading
                bandwidth of the model's whole weight set (weight_bandwidth_curve); a DRAM_TIMED family no
                faster than its own bytes/s at that working set (throughput_curves)
    fixed       the launch plus the family's (else its op class's) fixed cost per kernel (kernel_fixed_s), and
                a RUN_TIMED data family's cost per contiguous run it copies (run_s; families.RUN_TIMED)
    serial      a single-step matrix kernel's weight reads add to its arithmetic instead of hiding under it
                (a CPU streams packed weights between bursts of FMAs: ResNet-50's late convolutions, 4-9 MiB
                of weights each, ran 25-30% over their in-cache rate), unless it is a weight stream
    GEMVs       a weight stream on a host that timed GEMV chains takes their fixed cost ("weight_stream") plus
                its bytes at the measured weight-reading speed, which has the arithmetic in it; a one-row int8
                GEMM likewise by its own chains (int8_weight_bandwidth_curve, "weight_stream.int8"), where
                they were timed: out of cache onnxruntime's u8 kernel reads weights at 12-16 GB/s on a Zen 4
                EPYC where fp32 GEMVs read 24-34
    several rows
                a GEMM of several rows reads its packed weights, beside its arithmetic, at the speed its own
                chains measured (int8_rows_weight_curve, fp32_rows_weight_curve): out of L2 onnxruntime's u8
                kernel reads them at 10-18 GB/s on a Zen 4 EPYC, in L3 as in DRAM, and MLAS's float kernel at
                about 27 GB/s once 16 MiB or more of weights are in play, where GEMV chains read L3 at 60-76
    few rows    an fp32 GEMM of 2 to 16 rows (a decoder's step at a small batch) over weights, on a host that timed
                few-row chains over weights in DRAM: its weight read times what those chains took against one
                row's (weight_rows_curve: at 8 rows 1.3x on an AVX-512 EPYC, the arithmetic not hidden), or its
                arithmetic at the in-cache rate where that is longer
    converted weights
                a weight dequantized or cast on every run (WEIGHT_CONVERTERS) takes its bench's time plus the
                weight's read at the weight curve's speed for the weights in play, beyond the in-cache one
    RNN layers  a recurrent layer whose sizes are known takes planner.calibration.recurrent's fitted costs
    far inputs  an activation a kernel reads from beyond its own working set (planner.predict.reuse: the bytes
                touched since it was last used) at the streaming speed of that distance, beyond the bench's
    subgraphs   each run of an If / Loop body costs what an If chain or a Loop of tiny Adds measured beyond
                their nodes' predicted time (fit.subgraph_residuals); a Scan iteration as a Loop's
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from planner.calibration.recurrent import seconds as recurrent_seconds
from planner.calibration.store import Calibration, Curve
from planner.calibration.threads import kernel_threads
from planner.costs import OpClass
from planner.model.recurrent import RecurrentShape
from planner.predict.families import ALIASED, epilogue_counts
from planner.targets.rates import Terms, Work
from planner.targets.target import Target

GEMV_INTENSITY = 4.0  # FLOPs per byte: a GEMM with fewer rows than about this many is a weight stream
GEMV_FIXED = "weight_stream"  # kernel_fixed_s key: a weight stream's cost per call beyond its family's
INT8_GEMV_FIXED = "weight_stream.int8"  # the same for a one-row int8 GEMM timed by its own weight chains
OWN_GEMV_RATE = frozenset({"int8"})
"""Precisions whose few-row GEMMs are not weight streams: onnxruntime's int8 GEMM quantizes and packs A and runs
its u8 kernel over whole row panels (MatMulInteger 1x512x512 took 15.6 us, 1x1024x1024 31 us on an AVX2 EPYC
with the weights in cache: 34 and 68 G op/s, arithmetic-bound); its rate curve, measured on such shapes, times
them, and the weight read is the roofline's other term."""
WEIGHT_CONVERTERS = frozenset({"DequantizeLinear", "ms.DequantizeLinear", "Cast"})
"""Vector families that turn a weight into floats on every run (a QDQ model's DequantizeLinear, an fp16 model's
Cast): timed by their bytes in cache, plus the weight's read from where the model's weights in play leave it.
On a Zen 4 EPYC a QDQ decoder step's weight DequantizeLinear nodes ran 10-35% over their bench."""
SUBGRAPH_FIXED = "subgraph"  # kernel_fixed_s "subgraph.If" / ".Loop": one body run beyond its nodes' predicted time

BYTES_TIMED = frozenset({"conv_dw_1x1", "nchwc.conv_dw_1x1"})  # matrix families timed by bytes, not FLOPs
"""A 1x1 depthwise convolution does one multiply-add per element it reads: its intensity is the same at every
size, so a rate curve over intensity cannot tell a cached one from one in DRAM, and a FLOP rate borrowed from
the 3x3 depthwise kernel has it several times too fast. Its calibration is bytes per second against working
set, like a vector op."""


# matrix families with a bytes/s floor over working set too
DRAM_TIMED = frozenset({"nchwc.conv_dw", "nchwc.conv_dw:strided"})
"""onnxruntime's blocked depthwise convolution runs at its FLOP rate while its input and output sit in cache,
and far below plain streaming once they do not: on a Zen 4 EPYC (1 thread) [b, 144, 56, 56] 3x3 took 0.55, 0.40,
0.81, 0.92 ns an output at batch 1, 2, 4, 8, and [b, 96, 112, 112] at stride 2 0.33, 1.15, 1.40, 1.63 (working
sets 3.4-46 MiB; 10-15 GB/s where Add streams 38-76). The benches labelled IN_DRAM (7-46 MiB) are no points
of its FLOP rate but of a bytes/s curve over working set, whose time is a floor under the memory term from the
smallest working set they measured up: a batch-8 MobileNet's or a detection-sized map's depthwise layers pay
it, a batch-1 ImageNet one's do not. (In cache its bytes/s says nothing: the kernel is arithmetic there, and
a stride-2 one moves four times the bytes per output of a stride-1 one at the same speed.)"""
IN_DRAM = "in DRAM"  # in a bench's label (planner.calibration.suite): not a point of its family's FLOP rate


def bytes_timed(family: str, op_class: str) -> bool:
    """Whether a kernel's calibration is bytes/s over working set (every non-matrix op, and BYTES_TIMED) rather
    than a FLOP rate over intensity: the fit and the rates both ask."""
    return op_class != OpClass.MATRIX or family in BYTES_TIMED


def weight_stream(flops: float, nbytes: float, weight_bytes: float) -> bool:
    """A kernel whose work is reading its weights (a GEMV, a GEMM of a few rows): its arithmetic happens as the
    weights stream past, so the plain roofline (the larger term) times it, not weights + arithmetic."""
    return weight_bytes >= nbytes / 2 and flops < GEMV_INTENSITY * nbytes


def _interpolate(points: Curve, x: float) -> float:
    """Linear between the points, flat beyond them."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    if x <= xs[0]:
        return ys[0]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return ys[-1]


def _ancestors(family: str) -> list[str]:
    """"gemm:u8u8:q:fed", "gemm:u8u8:q", "gemm:u8u8": a refined family that a calibration never measured (one
    written before it was split off) is timed as the kernel it refines."""
    parts = family.split(":")
    return [":".join(parts[:n]) for n in range(len(parts), 0, -1)]


def _nearest(by_family: Mapping, family: str):
    """The entry of `family`, else of the nearest family it refines (_ancestors), else None."""
    return next((by_family[f] for f in _ancestors(family) if f in by_family), None)


def interpolate_loglog(points: Curve, x: float) -> float:
    """Piecewise-linear in log-log between ascending (x, y) points, flat beyond the first and last."""
    if x <= points[0][0] or len(points) == 1:
        return points[0][1]
    if x >= points[-1][0]:
        return points[-1][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x <= x1:
            f = (math.log(x) - math.log(x0)) / (math.log(x1) - math.log(x0))
            return math.exp(math.log(y0) + f * (math.log(y1) - math.log(y0)))
    return points[-1][1]


@dataclass(frozen=True)
class CalibratedRates:
    bandwidth_curve: Curve = ()  # streaming: (working-set bytes, achieved bytes/s)
    weight_bandwidth_curve: Curve = ()  # reading weights (chains of GEMVs): same axes
    weight_rows_curve: Curve = ()  # few-row GEMMs over weights in DRAM: (rows, time / one row's)
    int8_weight_bandwidth_curve: Curve = ()  # one-row int8 GEMMs (chains of them): (working set, weight bytes/s)
    int8_rows_weight_curve: Curve = ()  # several-row int8 GEMMs' serial weight reads: same axes
    fp32_rows_weight_curve: Curve = ()  # several-row float GEMMs' serial weight reads: same axes
    cold_kind_curve: Curve = ()  # (weight bytes since a kind last ran, s it pays): planner.calibration.cold
    rate_curves: Mapping[str, Curve] = field(default_factory=dict)  # "<family>.<peak>": (FLOPs/byte, FLOP/s)
    throughput_curves: Mapping[str, Curve] = field(default_factory=dict)  # family: (working set, bytes/s)
    kernel_fixed_s: Mapping[str, float] = field(default_factory=dict)  # family or op class: s per kernel
    epilogue_s: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # s per output, staged, matrix
    run_s: Mapping[str, float] = field(default_factory=dict)  # data family: s per contiguous run it copies
    recurrent_costs: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # "gru.fp32": costs
    serial_weight_reads: bool = False
    threads: int = 1
    single: CalibratedRates | None = None  # this machine's 1-thread rates: a kernel too small to split runs so

    @classmethod
    def of(cls, cal: Calibration, single: Calibration | None = None) -> CalibratedRates:
        """`single`: the same machine's 1-thread calibration, for the kernels an N-thread run does not split
        (planner.calibration.threads)."""
        return cls(bandwidth_curve=tuple(cal.bandwidth_curve), weight_bandwidth_curve=tuple(cal.weight_bandwidth_curve),
                   weight_rows_curve=tuple(cal.weight_rows_curve),
                   int8_weight_bandwidth_curve=tuple(cal.int8_weight_bandwidth_curve),
                   int8_rows_weight_curve=tuple(cal.int8_rows_weight_curve),
                   fp32_rows_weight_curve=tuple(cal.fp32_rows_weight_curve),
                   cold_kind_curve=tuple(cal.cold_kind_curve), rate_curves=dict(cal.rate_curves),
                   throughput_curves=dict(cal.throughput_curves),
                   kernel_fixed_s=dict(cal.kernel_fixed_s), epilogue_s=dict(cal.epilogue_s), run_s=dict(cal.run_s),
                   recurrent_costs={k: dict(v) for k, v in cal.recurrent_costs.items()},
                   serial_weight_reads=bool(cal.weight_bandwidth_curve), threads=cal.threads,
                   single=cls.of(single) if single is not None and cal.threads > 1 and single.threads == 1 else None)

    def flops_per_s(self, op_class: str, family: str, peak_key: str, peak: float, intensity: float,
                    target: Target) -> float:
        """The FLOP rate a kernel of this family reaches at this intensity: the most specific curve there is,
        else peak x compute efficiency."""
        for key in (*(f"{f}.{peak_key}" for f in _ancestors(family)), family, f"{op_class}.{peak_key}", op_class):
            curve = self.rate_curves.get(key) if key and not key.startswith(".") else None
            if curve:
                return interpolate_loglog(curve, intensity)
        return peak * target.compute_efficiency

    def bytes_per_s(self, working_set_bytes: float, target: Target) -> float:
        """Streaming bandwidth for a kernel touching `working_set_bytes` (caches make small sets faster)."""
        if not self.bandwidth_curve:
            return target.mem_bw_bytes_per_s * target.memory_efficiency
        return interpolate_loglog(self.bandwidth_curve, working_set_bytes)

    def weight_bytes_per_s(self, working_set_bytes: float, target: Target) -> float:
        """How fast weights are read when the weights in play total `working_set_bytes` (calibrated with GEMVs:
        reads only, no write stream), else the streaming bandwidth."""
        if not self.weight_bandwidth_curve:
            return self.bytes_per_s(working_set_bytes, target)
        return interpolate_loglog(self.weight_bandwidth_curve, working_set_bytes)

    def family_bytes_per_s(self, family: str, working_set_bytes: float, target: Target) -> float | None:
        """A measured family's own bytes/s at this working set, None when it was not measured. Past the largest
        working set measured, the family cannot stream faster than plain streaming does there."""
        curve = _nearest(self.throughput_curves, family)
        if not curve:
            return None
        own = interpolate_loglog(curve, working_set_bytes)
        if working_set_bytes > curve[-1][0] and self.bandwidth_curve:
            own = min(own, self.bytes_per_s(working_set_bytes, target))
        return own

    def fixed_s(self, family: str, op_class: str, target: Target) -> float:
        """Per kernel: the launch plus the family's (else the family it refines, else its op class's) measured
        fixed cost."""
        own = _nearest(self.kernel_fixed_s, family)
        return target.launch_overhead_s + (own if own is not None else self.kernel_fixed_s.get(op_class, 0.0))

    @property
    def reads_matter(self) -> bool:
        return bool(self.bandwidth_curve)

    def terms(self, work: Work, target: Target) -> Terms:
        if self.single is not None and work.steps == 1 and kernel_threads(work.cost, work.op_class, self.threads) == 1:
            return self.single.terms(work, target)  # onnxruntime runs it on one thread
        terms = self._terms(work, target)
        late = self.late_reads_s(work, target)
        if not late:
            return terms
        return dataclasses.replace(terms, memory_s=terms.memory_s + late, serial_s=terms.serial_s + late)

    def late_reads_s(self, work: Work, target: Target) -> float:
        """The time a kernel's activations take to come back from where the model left them (planner.predict.reuse)
        beyond what its bench paid, where they sat inside the bench's own working set: each input's bytes at the
        streaming speed of its stack distance, less the same bytes at the speed of the kernel's working set.
        Serial: the kernel waits for them (a bench's inputs were as near as they get)."""
        if not self.bandwidth_curve or work.steps != 1 or not work.reads:
            return 0.0
        own = self.bytes_per_s(work.cost.bytes, target)  # the curve falls: nearer than that costs nothing more
        return sum(max(0.0, nbytes / self.bytes_per_s(distance, target) - nbytes / own)
                   for nbytes, distance in work.reads)

    def _terms(self, work: Work, target: Target) -> Terms:
        cost, op_class, family = work.cost, work.op_class, work.family
        weights = min(cost.weight_bytes, cost.bytes)
        weights_in_play = max(cost.bytes, work.resident_bytes)
        # a one-row int8 GEMM where its own chains were timed: their weight speed, arithmetic and epilogue in it
        int8_stream = bool(self.int8_weight_bandwidth_curve and op_class == OpClass.MATRIX and weights
                           and work.steps == 1 and work.peak_key in OWN_GEMV_RATE
                           and weight_stream(cost.flops, cost.bytes, weights))
        memory_s = (cost.bytes - weights) / self.bytes_per_s(cost.bytes, target) if cost.bytes else 0.0
        if weights:
            memory_s += weights / (interpolate_loglog(self.int8_weight_bandwidth_curve, weights_in_play)
                                   if int8_stream else self.weight_bytes_per_s(weights_in_play, target))
        curve = self.throughput_curves.get(family) if family in DRAM_TIMED else None
        if curve and cost.bytes >= curve[0][0]:  # as large as the smallest working set measured in DRAM
            memory_s = max(memory_s, cost.bytes / self.family_bytes_per_s(family, cost.bytes, target))
        own = self.family_bytes_per_s(family, cost.bytes, target) if cost.bytes and bytes_timed(family, op_class) \
            else None
        if own is None:
            rate = self.flops_per_s(op_class.value, family, work.peak_key, work.peak_flops_per_s, work.intensity,
                                    target)
            compute_s = cost.flops / rate if cost.flops else 0.0
            compute_s += self._epilogue_s(family, cost.flops, work.grid)
        elif op_class == OpClass.DATA:  # a measured data-movement op: its own speed is the memory term
            compute_s, memory_s = 0.0, max(memory_s, cost.bytes / own)
        else:  # a measured vector op (or BYTES_TIMED matrix op): the time beyond plain streaming is its arithmetic
            compute_s = cost.bytes / own
        fixed = self.fixed_s(family, op_class.value, target) + work.runs * self.run_s.get(family, 0.0)
        if own is not None and weights and family in WEIGHT_CONVERTERS and op_class == OpClass.VECTOR:
            # a weight dequantized or cast on every run: its bench kept the weight in cache, the model reads it
            # from wherever the weights in play leave it
            late = weights / self.weight_bytes_per_s(weights_in_play, target) \
                - weights / self.weight_bytes_per_s(cost.bytes, target)
            return Terms(compute_s, memory_s, fixed, serial_s=max(late, 0.0))
        rows = cost.flops / (2 * weights / 4) if weights and work.peak_key == "fp32" else 0.0
        plain = family.removesuffix(ALIASED)
        if (self.weight_rows_curve and op_class == OpClass.MATRIX and plain in ("gemm", "gemm_bias")
                and 1.5 <= rows <= self.weight_rows_curve[-1][0]):
            # a few rows over streamed weights: the measured chains' time against one row's (ROW_CHAINS), or the
            # arithmetic at its cache-resident rate where the weights come quicker than that
            stream = memory_s * _interpolate(self.weight_rows_curve, rows)
            return Terms(compute_s, stream, fixed + self.kernel_fixed_s.get(GEMV_FIXED, 0.0))
        streams = int8_stream or (op_class == OpClass.MATRIX and weights and work.peak_key not in OWN_GEMV_RATE
                                  and weight_stream(cost.flops, cost.bytes, weights))
        chains = INT8_GEMV_FIXED if int8_stream else GEMV_FIXED
        if streams and chains in self.kernel_fixed_s:  # the weight chains timed whole nodes
            return Terms(compute_s, memory_s, fixed + self.kernel_fixed_s[chains], arithmetic_hidden=True)
        if self.serial_weight_reads and work.steps == 1 and op_class == OpClass.MATRIX and weights and not streams:
            # GEMMs (not convolutions, whose packed weights the chains did not time) at their own chains' speed
            own = self._rows_weight_curve(work.peak_key, family)
            serial = weights / (interpolate_loglog(own, weights_in_play) if own
                                else self.weight_bytes_per_s(weights_in_play, target))
            return Terms(compute_s, memory_s, fixed, serial_s=serial)
        return Terms(compute_s, memory_s, fixed)

    def _rows_weight_curve(self, peak_key: str, family: str) -> Curve:
        """The chains that timed a several-row GEMM's weight reads for this precision, () for anything else."""
        if not family.startswith("gemm"):
            return ()
        if peak_key in OWN_GEMV_RATE:
            return self.int8_rows_weight_curve
        return self.fp32_rows_weight_curve if peak_key == "fp32" else ()

    def _epilogue_s(self, family: str, flops: float, grid: tuple[int, int, int] | None) -> float:
        """An int8 kernel's work around its GEMM (planner.calibration.fit.fit_epilogues), per output, per element it
        stages and per matrix (families.epilogue_counts)."""
        costs = self.epilogue_s.get(family)
        if not costs or not grid:
            return 0.0
        return sum(c * n for c, n in zip(costs, epilogue_counts(family, flops, grid), strict=False))

    def subgraph_run_s(self, op_type: str, target: Target) -> float:
        kind = "Loop" if op_type == "Scan" else op_type
        return self.kernel_fixed_s.get(f"{SUBGRAPH_FIXED}.{kind}", 0.0)

    def cold_kind_s(self, streamed_bytes: float) -> float:
        """The measured cost of a cold kind: linear in the log of the bytes between the points measured, in
        proportion to the bytes below the first (nothing between, nothing to pay), flat beyond the last."""
        points = self.cold_kind_curve
        if not points or streamed_bytes <= 0:
            return 0.0
        if streamed_bytes <= points[0][0]:
            return points[0][1] * streamed_bytes / points[0][0]
        for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
            if streamed_bytes <= x1:
                return y0 + (y1 - y0) * math.log(streamed_bytes / x0) / math.log(x1 / x0)
        return points[-1][1]

    def layer_seconds(self, work: Work, shape: RecurrentShape, steps: int) -> float | None:
        costs = self.recurrent_costs.get(f"{work.family}.{work.peak_key}")
        return recurrent_seconds(costs, shape, steps) if costs else None


def apply(target: Target, cal: Calibration, single: Calibration | None = None) -> Target:
    """`target` timed by this calibration: curves, fixed costs and overheads replace the nominal numbers.
    `single`, for a calibration at more than one thread: the 1-thread one, which times the kernels onnxruntime
    does not split (planner.calibration.threads).

    The nominal peaks stay as the ceilings they are, except where a measured rate exceeds one (turbo clocks
    above the clock the OS reports): then the peak is raised to what was measured, and says so.
    """
    sources, caveats = dict(target.sources), dict(target.caveats)
    stamp = f"plan calibrate {cal.created} ({cal.threads} thread{'s' if cal.threads != 1 else ''}"
    stamp += ", quick)" if cal.quick else ")"
    matrix = dict(target.matrix_flops_per_s)
    for key, curve in cal.rate_curves.items():
        family, _, peak_key = key.rpartition(".")
        best = max(y for _, y in curve)
        if family in ("gemm", "matrix") and peak_key in matrix and best > matrix[peak_key]:
            matrix[peak_key] = best
            sources[f"matrix.{peak_key}"] = f"raised to the fastest measured {key} rate ({stamp})"
            caveats.pop(f"matrix.{peak_key}", None)
    gemm = cal.rate_curves.get("gemm.fp32") or cal.rate_curves.get("matrix.fp32")
    compute_eff = min(1.0, max(y for _, y in gemm) / matrix["fp32"]) if gemm and "fp32" in matrix else \
        target.compute_efficiency
    dram = cal.bandwidth_curve[-1][1]
    for k in ("efficiency.compute", "efficiency.memory", "efficiency.launch_overhead", "memory.bandwidth"):
        caveats.pop(k, None)
    sources["memory.bandwidth"] = f"streaming Add at {cal.bandwidth_curve[-1][0] / 2**20:.0f} MiB ({stamp})"
    sources["efficiency.compute"] = f"fastest measured fp32 GEMM / peak ({stamp})"
    extra_ns = cal.graph_node_overhead_s * 1e9
    sources["efficiency.launch_overhead"] = f"chains of tiny nodes, + {extra_ns:.0f} ns in mixed graphs ({stamp})"
    sources["calibration"] = stamp
    workspace = target.workspace_bytes
    if cal.workspace_bytes:
        workspace = float(cal.workspace_bytes)
        sources["efficiency.workspace"] = f"resident memory of a session running a 16-float model ({stamp})"
        caveats.pop("efficiency.workspace", None)
    return dataclasses.replace(
        target, matrix_flops_per_s=matrix, mem_bw_bytes_per_s=dram, memory_efficiency=1.0,
        compute_efficiency=compute_eff, launch_overhead_s=cal.launch_overhead_s + cal.graph_node_overhead_s,
        run_overhead_s=cal.run_overhead_s, rates=CalibratedRates.of(cal, single),
        weight_residency=dict(cal.weight_residency), dispatch_views=True, activation_arena=True,
        workspace_bytes=workspace,
        sources=sources, caveats=caveats,
        full_name=f"{target.full_name}, calibrated for {cal.threads} thread{'s' if cal.threads != 1 else ''}",
    )
