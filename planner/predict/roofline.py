"""The roofline: one small pure function from (work, target) to time and bottleneck.

    t = max(FLOPs / (peak[dtype] x compute efficiency), bytes / (bandwidth x memory efficiency)) + launch

A calibrated target (host) replaces the denominators by measured data it carries: the FLOP rate its kernels
of that family reach at that arithmetic intensity, the bandwidth at that working set (a kernel whose bytes
fit in L2 streams faster than one that goes to DRAM), a measured op's own bytes/s, and a fixed cost per
kernel of that family. The formula is the same.

Matrix work (GEMM, conv, attention) runs at the target's matrix peak for its precision; elementwise and
reductions run on the vector units; data movement has no arithmetic. The bound is whichever term is larger,
and the arithmetic intensity (FLOPs per byte) says how far from the ridge point a kernel sits.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.costs import OpClass, OpCost
from planner.model.recurrent import RecurrentShape
from planner.model.recurrent import seconds as recurrent_seconds
from planner.predict.fusion import bytes_timed
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


def kernel_time(cost: OpCost, op_class: OpClass, dtype: str, target: Target, family: str = "",
                resident_bytes: float = 0.0, steps: int = 1, serial_weights: bool | None = None,
                recurrent: RecurrentShape | None = None) -> KernelTime:
    """`family` ("gemm", "nchwc.conv", "Softmax", ...; planner.predict.fusion.kernel_family) picks a calibrated rate
    where the target has one; rate and bandwidth are the plain peak x efficiency otherwise.

    `resident_bytes` is what the kernel's weights share the memory hierarchy with (the model's weights, all
    read once per inference): weights stream at the bandwidth of that working set, the rest of the bytes at
    that of the kernel's own. With a flat bandwidth (every uncalibrated target) this is bytes / bandwidth.

    `serial_weights` (default: the target's serial_weight_reads, set by a host calibration): a single-step
    matrix kernel's weight reads (unless it is a weight stream, see weight_stream) add to its time instead of
    hiding under its arithmetic. On a CPU a GEMM or convolution streams its packed weights block by block
    between bursts of FMAs, so reading them from DRAM is not overlapped: measured on ResNet-50, the late 3x3
    and 1x1 convolutions (4-9 MiB of weights each) run 25-30% over their in-cache rate, which is their
    weights at DRAM speed; the early ones (under 1 MiB) match it. The calibration fits the arithmetic rate
    net of the microbenchmark's own (cached) weight read.

    A weight stream (a GEMV) on a target that timed GEMV chains (kernel_fixed_s["weight_stream"]) takes that
    fixed cost plus its bytes at the measured weight-reading speed, which has the arithmetic in it.

    `steps` > 1: the kernel runs that many dependent steps (an RNN's time steps), each reading all of its
    weights and 1/steps of the rest, each with the family's fixed cost; one launch for all of them. An RNN
    layer whose sizes are known (`recurrent`), on a target with recurrent costs fitted for its family (a host
    calibration), takes those instead: the launch plus planner.model.recurrent.seconds, which knows that onnxruntime
    projects the whole input sequence in one GEMM and pays a per-call cost that steps do not share."""
    if steps > 1:
        w = min(cost.weight_bytes, cost.bytes_read)
        step = OpCost(cost.flops // steps, (cost.bytes_read - w) // steps + w, cost.bytes_written // steps, w)
        one = kernel_time(step, op_class, dtype, target, family, resident_bytes, serial_weights=False)
        launch = target.launch_overhead_s
        body = one.seconds - launch
        costs = target.recurrent_costs.get(f"{family}.{one.peak_used}") if recurrent else None
        if costs:
            t = recurrent_seconds(costs, recurrent, steps)
            return KernelTime(t + launch, steps * one.compute_s, steps * one.memory_s, one.bound, one.intensity,
                              one.peak_used, launch > t)
        return KernelTime(steps * body + launch, steps * one.compute_s, steps * one.memory_s, one.bound,
                          one.intensity, one.peak_used, launch > steps * body)
    if op_class == OpClass.VIEW:
        launch = target.launch_overhead_s if target.dispatch_views else 0.0
        return KernelTime(launch, 0.0, 0.0, MEMORY, 0.0, "none", launch > 0)
    if op_class == OpClass.MATRIX:
        peak, used = target.matrix_peak(dtype)
    else:
        peak, used = target.vector_flops_per_s, "vector"
    intensity = cost.flops / cost.bytes if cost.bytes else float("inf") if cost.flops else 0.0
    weights = min(cost.weight_bytes, cost.bytes)
    memory_s = (cost.bytes - weights) / target.achieved_bytes_per_s(cost.bytes) if cost.bytes else 0.0
    if weights:
        memory_s += weights / target.weight_bytes_per_s(max(cost.bytes, resident_bytes))
    own = target.family_bytes_per_s(family, cost.bytes) if cost.bytes and bytes_timed(family, op_class) else None
    if own is None:
        rate = target.achieved_flops_per_s(op_class.value, family, used, peak, intensity)
        compute_s = cost.flops / rate if cost.flops else 0.0
    elif op_class == OpClass.DATA:  # a measured data-movement op: its own speed is the memory term
        compute_s, memory_s = 0.0, max(memory_s, cost.bytes / own)
    else:  # a measured vector op (or BYTES_TIMED matrix op): the time beyond plain streaming is its arithmetic
        compute_s = cost.bytes / own
    launch = target.fixed_cost_s(family, op_class.value)
    if op_class == OpClass.MATRIX and weights and GEMV_FIXED in target.kernel_fixed_s and weight_stream(
            cost.flops, cost.bytes, weights):
        # calibrated GEMV: the weight chains timed whole nodes, arithmetic included, as weights / bandwidth
        launch += target.kernel_fixed_s[GEMV_FIXED]
        return KernelTime(memory_s + launch, compute_s, memory_s, MEMORY, intensity, used, launch > memory_s)
    bound = COMPUTE if compute_s > memory_s else MEMORY
    if serial_weights is None:
        serial_weights = target.serial_weight_reads
    if serial_weights and op_class == OpClass.MATRIX and weights and not weight_stream(cost.flops, cost.bytes, weights):
        weight_s = weights / target.weight_bytes_per_s(max(cost.bytes, resident_bytes))
        rest = max(compute_s, memory_s - weight_s)
        bound = COMPUTE if compute_s > weight_s else MEMORY
        return KernelTime(rest + weight_s + launch, compute_s, memory_s, bound, intensity, used,
                          launch > rest + weight_s)
    return KernelTime(max(compute_s, memory_s) + launch, compute_s, memory_s, bound, intensity, used,
                      launch > max(compute_s, memory_s))


GEMV_INTENSITY = 4.0  # FLOPs per byte: a GEMM with fewer rows than about this many is a weight stream
GEMV_FIXED = "weight_stream"  # kernel_fixed_s key: a weight stream's cost per call beyond its family's (calibrated)


def weight_stream(flops: float, nbytes: float, weight_bytes: float) -> bool:
    """A kernel whose work is reading its weights (a GEMV, a GEMM of a few rows): its arithmetic happens as the
    weights stream past, so the plain roofline (the larger term) times it, not weights + arithmetic."""
    return weight_bytes >= nbytes / 2 and flops < GEMV_INTENSITY * nbytes


def ridge_point(target: Target, dtype: str = "float32") -> float:
    """FLOPs per byte above which a matrix kernel of `dtype` is compute-bound on `target`."""
    peak, _ = target.matrix_peak(dtype)
    return (peak * target.compute_efficiency) / (target.mem_bw_bytes_per_s * target.memory_efficiency)
