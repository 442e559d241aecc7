"""The roofline: one formula from (work, target) to time and bottleneck.

    t = max(compute_s, memory_s - serial_s) + serial_s + fixed_s

    compute_s  FLOPs / the rate the kernel's arithmetic reaches    spec sheet: peak[dtype] x compute efficiency
    memory_s   bytes / the bandwidth they move at                  spec sheet: bandwidth x memory efficiency
    serial_s   the part of memory_s that cannot hide under the arithmetic (spec sheet: none)
    fixed_s    the launch, and the kernel family's own cost         spec sheet: launch overhead

The target's `rates` (planner.targets.rates) supply the terms: the spec sheet's, or on a calibrated host what
was measured (planner.calibration.rates). Matrix work (GEMM, conv, attention) runs at the target's matrix peak
for its precision; elementwise and reductions on the vector units; data movement has no arithmetic. The bound
is whichever term is larger, and the arithmetic intensity (FLOPs per byte) says how far from the ridge point a
kernel sits.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.costs import OpClass, OpCost
from planner.model.recurrent import RecurrentShape
from planner.targets.rates import Terms, Work
from planner.targets.target import Target

COMPUTE, MEMORY = "compute", "memory"


@dataclass(frozen=True)
class KernelTime:
    seconds: float
    compute_s: float
    memory_s: float
    bound: str  # COMPUTE or MEMORY: the larger of the two roofline terms
    intensity: float  # FLOPs per byte moved
    peak_used: str  # the peak key that timed the arithmetic ("fp16", "int8", "vector", ...)
    launch_dominated: bool = False  # the fixed launch cost exceeds both terms: a tiny kernel


def roofline(terms: Terms, intensity: float, peak_used: str) -> KernelTime:
    """The formula. Arithmetic that the measured memory term already holds (a GEMV timed whole) is not added."""
    arithmetic = 0.0 if terms.arithmetic_hidden else terms.compute_s
    busy = max(arithmetic, terms.memory_s - terms.serial_s) + terms.serial_s
    bound = COMPUTE if arithmetic > (terms.serial_s or terms.memory_s) else MEMORY
    return KernelTime(busy + terms.fixed_s, terms.compute_s, terms.memory_s, bound, intensity, peak_used,
                      terms.fixed_s > busy)


def kernel_time(cost: OpCost, op_class: OpClass, dtype: str, target: Target, family: str = "",
                resident_bytes: float = 0.0, steps: int = 1, recurrent: RecurrentShape | None = None,
                grid: tuple[int, int, int] | None = None, runs: int = 0,
                reads: tuple[tuple[int, int], ...] = ()) -> KernelTime:
    """`family` ("gemm", "nchwc.conv", "Softmax", ...; planner.predict.families.kernel_family) lets calibrated
    rates pick the rate measured for that kind of kernel. `resident_bytes` is what the kernel's weights share
    the memory hierarchy with (the model's weights, all read once per inference).

    `steps` > 1: the kernel runs that many dependent steps (an RNN's time steps), each reading all of its
    weights and 1/steps of the rest; one launch for all of them. A layer whose sizes are known (`recurrent`)
    takes its whole time from the rates where they know it (a calibrated host fitted such layers).

    `runs`: the contiguous runs a data kernel copies (families.contiguous_runs), which a calibration may time.

    `reads`: each activation the kernel reads, with the bytes touched since it was last used (planner.predict.
    reuse): a calibrated host reads one that has left the cache its bench kept it in at the speed of where it is."""
    if op_class == OpClass.VIEW:
        launch = target.launch_overhead_s if target.dispatch_views else 0.0
        return KernelTime(launch, 0.0, 0.0, MEMORY, 0.0, "none", launch > 0)
    peak, used = target.matrix_peak(dtype) if op_class == OpClass.MATRIX else (target.vector_flops_per_s, "vector")
    if steps > 1:
        return _stepped(cost, op_class, family, peak, used, target, resident_bytes, steps, recurrent)
    work = Work(cost, op_class, family, used, peak, _intensity(cost), resident_bytes, grid=grid, runs=runs,
                reads=reads)
    return roofline(target.rates.terms(work, target), work.intensity, used)


def _intensity(cost: OpCost) -> float:
    return cost.flops / cost.bytes if cost.bytes else float("inf") if cost.flops else 0.0


def _stepped(cost: OpCost, op_class: OpClass, family: str, peak: float, used: str, target: Target,
             resident_bytes: float, steps: int, recurrent: RecurrentShape | None) -> KernelTime:
    """`steps` runs of one step's work under one launch, or the layer's time where the rates know it whole."""
    w = min(cost.weight_bytes, cost.bytes_read)
    step = OpCost(cost.flops // steps, (cost.bytes_read - w) // steps + w, cost.bytes_written // steps, w)
    work = Work(step, op_class, family, used, peak, _intensity(step), resident_bytes, steps)
    one = roofline(target.rates.terms(work, target), work.intensity, used)
    launch = target.launch_overhead_s
    layer = target.rates.layer_seconds(work, recurrent, steps) if recurrent else None
    if layer is not None:
        return KernelTime(layer + launch, steps * one.compute_s, steps * one.memory_s, one.bound, one.intensity,
                          one.peak_used, launch > layer)
    body = one.seconds - launch
    return KernelTime(steps * body + launch, steps * one.compute_s, steps * one.memory_s, one.bound,
                      one.intensity, one.peak_used, launch > steps * body)


def ridge_point(target: Target, dtype: str = "float32") -> float:
    """FLOPs per byte above which a matrix kernel of `dtype` is compute-bound on `target`."""
    peak, _ = target.matrix_peak(dtype)
    return (peak * target.compute_efficiency) / (target.mem_bw_bytes_per_s * target.memory_efficiency)
