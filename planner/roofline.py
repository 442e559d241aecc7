"""The roofline: one small pure function from (work, target) to time and bottleneck.

    t = max(FLOPs / (peak[dtype] x compute efficiency), bytes / (bandwidth x memory efficiency)) + launch

Matrix work (GEMM, conv, attention) runs at the target's matrix peak for its precision; elementwise and
reductions run on the vector units; data movement has no arithmetic. The bound is whichever term is larger,
and the arithmetic intensity (FLOPs per byte) says how far from the ridge point a kernel sits.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.costs import OpClass, OpCost
from planner.target import Target

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


def kernel_time(cost: OpCost, op_class: OpClass, dtype: str, target: Target) -> KernelTime:
    if op_class == OpClass.VIEW:
        return KernelTime(0.0, 0.0, 0.0, MEMORY, 0.0, "none")
    if op_class == OpClass.MATRIX:
        peak, used = target.matrix_peak(dtype)
    else:
        peak, used = target.vector_flops_per_s, "vector"
    compute_s = cost.flops / (peak * target.compute_efficiency) if cost.flops else 0.0
    memory_s = cost.bytes / (target.mem_bw_bytes_per_s * target.memory_efficiency) if cost.bytes else 0.0
    launch = target.launch_overhead_s
    bound = COMPUTE if compute_s > memory_s else MEMORY
    intensity = cost.flops / cost.bytes if cost.bytes else float("inf") if cost.flops else 0.0
    return KernelTime(max(compute_s, memory_s) + launch, compute_s, memory_s, bound, intensity, used,
                      launch > max(compute_s, memory_s))


def ridge_point(target: Target, dtype: str = "float32") -> float:
    """FLOPs per byte above which a matrix kernel of `dtype` is compute-bound on `target`."""
    peak, _ = target.matrix_peak(dtype)
    return (peak * target.compute_efficiency) / (target.mem_bw_bytes_per_s * target.memory_efficiency)
