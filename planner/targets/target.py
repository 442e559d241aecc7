"""A hardware target as validated data: peaks, memory, efficiencies, price and the runtime it serves with.

Units live in field names. Peaks are dense (never 2:4-sparse). Built from hwtargets/*.toml by
planner.targets.catalog (the loader); what the hardware reaches per kernel is its `rates` (planner.targets.rates).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from planner.targets.rates import SPEC, Rates

# Precisions a matrix peak may be given for. Integer peaks are in OP/s, counted like FLOP/s.
MATRIX_DTYPES = ("fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "int8", "int4")

# Which runs replay as a captured CUDA graph: none, the decode steps of a decoder, or every run
CUDA_GRAPHS = ("none", "decode", "all")

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
    core_cache_bytes: float | None = None  # a core's own cache (the L2), where known: what stays near between runs
    compute_units: int | None = None  # SMs / CUs: a GEMM's tiles run in waves of these (planner.targets.rates)
    interconnect: str = ""
    interconnect_bytes_per_s: float | None = None  # per device, one direction, for tensor parallelism
    max_devices: int = 1  # devices per node available to tensor parallelism
    hop_latency_s: float = 1e-6  # one step of a collective over NVLink: derived in planner.llm.collectives
    threads: int = 1  # intra-op threads of a CPU runtime: what `host` is calibrated and planned for (--threads)
    sources: Mapping[str, str] = field(default_factory=dict)  # field -> where the number comes from
    caveats: Mapping[str, str] = field(default_factory=dict)  # field -> "derived ..." / "unconfirmed ..."
    path: str = ""  # the file it was read from
    # What the hardware reaches, as the roofline asks for it: the spec sheet (peaks x efficiencies above) unless
    # `plan calibrate` measured this machine (planner.calibration.rates.CalibratedRates)
    rates: Rates = SPEC
    # resident bytes per weight byte by kind ("gemm", "conv"; planner.predict.memory.residency_kind), where measured
    weight_residency: Mapping[str, float] = field(default_factory=dict)
    run_overhead_s: float = 0.0  # fixed cost per inference on top of the kernels (the runtime's Run call)
    dispatch_views: bool = False  # the runtime launches every node, even metadata-only ones (Reshape, Shape)
    # activations come out of onnxruntime's CPU arena, which keeps more than their live peak resident
    # (planner.predict.arena)
    activation_arena: bool = False
    # The engine on a GPU target (planner.targets.runtime, hwtargets/runtimes/*.toml): its name, which runs
    # replay as a CUDA graph, the host's dispatch time per kernel (a run takes at least kernels x that), and the
    # vector FLOP-equivalents a weight-only kernel spends dequantizing one weight, by bits
    runtime_profile: str = ""
    cuda_graphs: str = "none"
    host_per_kernel_s: float = 0.0
    dequant_flops_per_weight: Mapping[int, float] = field(default_factory=dict)

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
