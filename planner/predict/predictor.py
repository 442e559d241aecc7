"""predict(analysis, target): latency, memory, throughput and cost of one configuration on one target.

Node costs are computed once per dim binding and shared by every target; kernels (what fuses) and times
(the roofline) are per target.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

from planner.costs import NodeCost, OpClass
from planner.model.analyze import Analysis
from planner.predict.bodies import control_flow_memory, control_flow_times
from planner.predict.cold import streamed_since_kind
from planner.predict.fusion import Kernel, build_kernels, graph_costs
from planner.predict.memory import MemoryEstimate, arena_growth_bytes, estimate_memory, runtime_copies
from planner.predict.reuse import input_reuse
from planner.predict.roofline import COMPUTE, MEMORY, KernelTime, kernel_time
from planner.predict.support import runtime_kernels
from planner.targets.target import Target

SECONDS_PER_HOUR = 3600.0

_PRECISION_OF = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64", "int8": "int8",
                 "uint8": "int8", "int4": "int4", "uint4": "int4"}


@dataclass(frozen=True)
class KernelPrediction:
    kernel: Kernel
    time: KernelTime


@dataclass(frozen=True)
class Prediction:
    target: Target
    batch: int
    precision: str
    kernels: tuple[KernelPrediction, ...]
    memory: MemoryEstimate
    latency_s: float
    fits: bool
    notes: tuple[str, ...] = field(default_factory=tuple)
    unsupported: tuple[str, ...] = ()  # why the target's runtime cannot run this model (planner.predict.support)

    @property
    def throughput_per_s(self) -> float:
        return self.batch / self.latency_s if self.latency_s > 0 else float("inf")

    @property
    def cost_per_million_usd(self) -> float | None:
        """Dollars per million inferences at full utilisation: price per hour / inferences per hour."""
        price = self.target.price_usd_per_hour
        if price is None or self.throughput_per_s in (0, float("inf")):
            return None
        return price / (self.throughput_per_s * SECONDS_PER_HOUR) * 1e6

    @property
    def bound(self) -> str:
        """Which roofline term accounts for more of the predicted time."""
        t = Counter()
        for k in self.kernels:
            t[k.time.bound] += k.time.seconds
        return COMPUTE if t[COMPUTE] > t[MEMORY] else MEMORY

    @property
    def flops(self) -> int:
        return sum(k.kernel.cost.flops for k in self.kernels)

    @property
    def bytes_moved(self) -> int:
        return sum(k.kernel.cost.bytes for k in self.kernels)


def stored_precision(analysis: Analysis) -> str:
    """The precision the model's weights are stored at, by bytes (what a plan 'as stored' runs)."""
    g = analysis.graph
    if any(n.op_type == "MatMulNBits" and n.attr("bits", 4) == 4 for n in g.nodes):
        return "int4"
    by_dtype: Counter = Counter()
    for w in g.weights:
        t = g.tensors[w]
        by_dtype[_PRECISION_OF.get(t.dtype, "other")] += t.nbytes
    by_dtype.pop("other", None)
    return by_dtype.most_common(1)[0][0] if by_dtype else "fp32"


class Predictor:
    """Shares the target-independent work between targets.

    Node costs depend on the binding only; kernels and the activation peak depend on the binding and the
    runtime's fusion switches; only the roofline times are per target.
    """

    def __init__(self) -> None:
        self._costs: dict[int, list[NodeCost]] = {}
        self._kernels: dict[tuple[int, bool, bool, bool], tuple[list[Kernel], MemoryEstimate]] = {}
        self._arena: dict[tuple[int, bool, bool, bool], int] = {}
        self._precision: dict[int, str] = {}
        self._keep: dict[int, Analysis] = {}

    def costs(self, analysis: Analysis) -> list[NodeCost]:
        key = id(analysis)
        if key not in self._costs:
            self._keep[key] = analysis  # an id is only unique while its object lives: keep it alive
            self._costs[key] = graph_costs(analysis.graph)
        return self._costs[key]

    def kernels(self, analysis: Analysis, fuse_epilogue: bool, fuse_elementwise: bool, dispatch_views: bool = False
                ) -> tuple[list[Kernel], MemoryEstimate]:
        """Kernels for a runtime's fusion switches, with the memory they need before any workspace."""
        key = (id(analysis), fuse_epilogue, fuse_elementwise, dispatch_views)
        if key not in self._kernels:
            graph, costs = analysis.graph, self.costs(analysis)
            kernels = build_kernels(graph, costs, fuse_epilogue, fuse_elementwise, dispatch_views)
            self._kernels[key] = (kernels, estimate_memory(graph, costs, _fused_away(graph, kernels), 0))
        return self._kernels[key]

    def arena_bytes(self, analysis: Analysis, fuse_epilogue: bool, fuse_elementwise: bool,
                    dispatch_views: bool = False) -> int:
        """What onnxruntime's CPU arena keeps beyond the live peak for these kernels (planner.predict.arena)."""
        key = (id(analysis), fuse_epilogue, fuse_elementwise, dispatch_views)
        if key not in self._arena:
            kernels, _ = self.kernels(analysis, fuse_epilogue, fuse_elementwise, dispatch_views)
            self._arena[key] = arena_growth_bytes(analysis.graph, self.costs(analysis),
                                                  _fused_away(analysis.graph, kernels))
        return self._arena[key]

    def predict(self, analysis: Analysis, target: Target, precision: str | None = None) -> Prediction:
        kernels, mem = self.kernels(analysis, target.fuse_epilogue, target.fuse_elementwise, target.dispatch_views)
        kernels, runs_as, unsupported = runtime_kernels(kernels, analysis.graph, target)  # what really runs
        arena = self.arena_bytes(analysis, target.fuse_epilogue, target.fuse_elementwise, target.dispatch_views) \
            if target.activation_arena else 0
        mem = replace(mem, workspace_bytes=int(target.workspace_bytes),
                      runtime_copy_bytes=runtime_copies(kernels, target.weight_residency), arena_bytes=arena)
        resident = analysis.graph.weight_bytes + analysis.graph.dequantized_weight_bytes  # weights in play
        reads = input_reuse(analysis.graph, self.costs(analysis), kernels) if target.rates.reads_matter \
            else [()] * len(kernels)
        streamed = streamed_since_kind(kernels, target.core_cache_bytes or 0.0)  # rates without a curve charge 0
        timed = tuple(KernelPrediction(k, _cold(kernel_time(k.cost, k.op_class, k.dtype, target, k.family, resident,
                                                            k.steps, recurrent=k.recurrent, grid=k.grid, runs=k.runs,
                                                            reads=r), target.rates.cold_kind_s(f)))
                      for k, r, f in zip(kernels, reads, streamed, strict=True))
        timed = control_flow_times(timed, analysis, target, Predictor)  # If/Loop/Scan: their bodies' kernels
        mem = control_flow_memory(mem, analysis, target, Predictor)  # ... and their weights and activations
        # a host that dispatches kernel by kernel (a framework) sets the pace once the GPU's kernels are shorter
        host = target.host_per_kernel_s * sum(1 for k in timed if k.kernel.op_class != OpClass.VIEW)
        latency = max(sum(k.time.seconds for k in timed), host) + target.run_overhead_s
        if precision is None:
            precision = self._precision.setdefault(id(analysis), stored_precision(analysis))
        return Prediction(
            target=target, batch=analysis.binding.batch, precision=precision,
            kernels=timed, memory=mem, latency_s=latency, fits=mem.total_bytes <= target.mem_capacity_bytes,
            notes=runs_as, unsupported=unsupported,
        )


def _cold(time: KernelTime, cold_s: float) -> KernelTime:
    """A kernel that runs (a view onnxruntime does not dispatch takes nothing) and finds its kind's code evicted
    by the weights read since it last ran pays for fetching it again, before any of its work (planner.predict.cold)."""
    return replace(time, seconds=time.seconds + cold_s) if cold_s and time.seconds else time


def _fused_away(graph, kernels: list[Kernel]) -> set[str]:
    """Tensors that stay inside a fused kernel: every output of a kernel's nodes but the last's."""
    return {t.name for k in kernels if len(k.nodes) > 1 for m in k.nodes[:-1] for t in graph.nodes[m].outputs
            if t is not None}


def predict(analysis: Analysis, target: Target) -> Prediction:
    return Predictor().predict(analysis, target)
