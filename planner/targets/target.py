"""A hardware target as validated data: peaks, memory, efficiencies, price and the runtime it serves with.

Units live in field names. Peaks are dense (never 2:4-sparse). Built from hwtargets/*.toml by
planner.targets.catalog (the loader); this module holds only the type so that the roofline can depend on it alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

# Precisions a matrix peak may be given for. Integer peaks are in OP/s, counted like FLOP/s.
MATRIX_DTYPES = ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "int8", "int4")

# Maps tensor dtypes (planner.model.ir names) to the peak key that computes them.
DTYPE_TO_PEAK = {
    "float64": "fp64", "float32": "fp32", "float16": "fp16", "bfloat16": "bf16",
    "float8e4m3fn": "fp8", "float8e4m3fnuz": "fp8", "float8e5m2": "fp8", "float8e5m2fnuz": "fp8",
    "int8": "int8", "uint8": "int8", "int4": "int4", "uint4": "int4",
}


@dataclass(frozen=True)
class Target:
    name: str  # the short name users type: "a10g", "h100-sxm", "host"
    full_name: str
    kind: str  # "gpu", "cpu" or "accelerator"
    matrix_flops_per_s: Mapping[str, float]  # dense peak per precision on matrix units (MATRIX_DTYPES keys)
    vector_flops_per_s: float  # fp32 rate of the SIMD / CUDA cores, for elementwise and reductions
    mem_bw_bytes_per_s: float
    mem_capacity_bytes: float
    compute_efficiency: float  # achievable fraction of the matrix peak (0, 1]
    memory_efficiency: float  # achievable fraction of the bandwidth (0, 1]
    launch_overhead_s: float  # fixed cost per kernel
    workspace_bytes: float  # runtime's own memory (context, allocator arenas, GEMM workspace)
    price_usd_per_hour: float | None  # None: no price known, cost is not reported
    price_instance: str = ""
    runtime: str = "onnxruntime-cpu"
    fuse_epilogue: bool = True  # bias / activation / residual folded into the producing Conv, MatMul, Gemm
    fuse_elementwise: bool = False  # chains of elementwise ops run as one kernel
    fp32_matmul_peak: str = "fp32"  # which peak an fp32 GEMM runs at ("tf32" where the runtime allows it)
    cache_bytes: float | None = None  # last-level cache
    interconnect: str = ""
    interconnect_bytes_per_s: float | None = None  # per device, one direction, for tensor parallelism
    max_devices: int = 1  # devices per node available to tensor parallelism
    sources: Mapping[str, str] = field(default_factory=dict)  # field -> where the number comes from
    caveats: Mapping[str, str] = field(default_factory=dict)  # field -> "derived ..." / "unconfirmed ..."
    path: str = ""  # the file it was read from
    # Measured refinements (host, after `plan calibrate`; see planner.calibration.store). Empty: the peaks and
    # efficiencies above are all there is, and kernel_time is the plain roofline.
    bandwidth_curve: tuple[tuple[float, float], ...] = ()  # streaming: (working-set bytes, achieved bytes/s)
    weight_bandwidth_curve: tuple[tuple[float, float], ...] = ()  # reading weights (a GEMV): same axes
    # recurrent families ("lstm.fp32"): the costs of planner.model.recurrent.TERMS, fitted to measured layers
    recurrent_costs: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # resident bytes per weight byte by kind ("gemm", "conv"; planner.predict.memory.residency_kind), where measured
    weight_residency: Mapping[str, float] = field(default_factory=dict)
    rate_curves: Mapping[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)  # matrix families,
    #   "<family>.<peak key>" ("gemm.fp32") or "<op class>.<peak key>": (FLOPs per byte, achieved FLOP/s)
    throughput_curves: Mapping[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)  # any other
    #   family ("Softmax", "nchwc.MaxPool"): (working-set bytes, achieved bytes/s), its arithmetic included
    kernel_fixed_s: Mapping[str, float] = field(default_factory=dict)  # family (or op class) -> fixed cost per
    #   kernel on top of launch_overhead_s
    run_overhead_s: float = 0.0  # fixed cost per inference on top of the kernels (the runtime's Run call)
    dispatch_views: bool = False  # the runtime launches every node, even metadata-only ones (Reshape, Shape)
    serial_weight_reads: bool = False  # a matrix kernel's weight reads add to its arithmetic (measured on host)

    def matrix_peak(self, dtype: str) -> tuple[float, str]:
        """Peak for a GEMM/conv whose operands are `dtype`, and the precision that really runs.

        A precision the hardware lacks falls back to the next wider one it has (int4 -> int8 -> fp16 -> fp32),
        which is what a runtime does when it dequantizes; the returned key says which peak was used.
        """
        key = DTYPE_TO_PEAK.get(dtype, "fp32")
        if key == "fp32":
            key = self.fp32_matmul_peak
        chain = {"int4": "int8", "int8": "fp16", "fp8": "fp16", "bf16": "fp16", "fp16": "fp32",
                 "tf32": "fp32", "fp64": "fp32"}
        while key not in self.matrix_flops_per_s and key in chain:
            key = chain[key]
        if key not in self.matrix_flops_per_s:
            return self.vector_flops_per_s, "vector"
        return self.matrix_flops_per_s[key], key

    def achieved_flops_per_s(self, op_class: str, family: str, peak_key: str, peak: float, intensity: float
                             ) -> float:
        """The FLOP rate a kernel of this family reaches at this arithmetic intensity.

        A calibrated curve when there is one (most specific key first), else peak x compute efficiency.
        """
        for key in (f"{family}.{peak_key}", family, f"{op_class}.{peak_key}", op_class):
            curve = self.rate_curves.get(key) if key and not key.startswith(".") else None
            if curve:
                return interpolate_loglog(curve, intensity)
        return peak * self.compute_efficiency

    def achieved_bytes_per_s(self, working_set_bytes: float) -> float:
        """Streaming bandwidth for a kernel touching `working_set_bytes` (caches make small sets faster):
        the calibrated curve, else bandwidth x memory efficiency."""
        if not self.bandwidth_curve:
            return self.mem_bw_bytes_per_s * self.memory_efficiency
        return interpolate_loglog(self.bandwidth_curve, working_set_bytes)

    def weight_bytes_per_s(self, working_set_bytes: float) -> float:
        """How fast weights are read when the weights in play total `working_set_bytes` (calibrated with GEMVs:
        reads only, no write stream), else the streaming bandwidth."""
        if not self.weight_bandwidth_curve:
            return self.achieved_bytes_per_s(working_set_bytes)
        return interpolate_loglog(self.weight_bandwidth_curve, working_set_bytes)

    def family_bytes_per_s(self, family: str, working_set_bytes: float) -> float | None:
        """A calibrated family's own bytes/s at this working set, None when it was not measured.

        Past the largest working set measured, the family cannot stream faster than plain streaming does there.
        """
        curve = self.throughput_curves.get(family)
        if not curve:
            return None
        own = interpolate_loglog(curve, working_set_bytes)
        if working_set_bytes > curve[-1][0] and self.bandwidth_curve:
            own = min(own, self.achieved_bytes_per_s(working_set_bytes))
        return own

    def fixed_cost_s(self, family: str, op_class: str) -> float:
        """Per-kernel cost: launch overhead plus the family's (else its op class's) calibrated fixed cost."""
        return self.launch_overhead_s + self.kernel_fixed_s.get(family, self.kernel_fixed_s.get(op_class, 0.0))


def interpolate_loglog(points: tuple[tuple[float, float], ...], x: float) -> float:
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
