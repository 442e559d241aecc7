"""A decoder phase (prefill or decode) as kernel groups whose cost is affine in the batch, timed per target.

At fixed sequence and context lengths every kernel of a decoder costs `base + batch x slope`: weights are read
once per run (base), activations, attention and the KV cache scale with the requests in the batch (slope).
So two analyses (batch 1 and 2) give every batch exactly, and the layers, which repeat, collapse into a few
dozen groups of identical kernels (a 70B model has 80 x ~60 kernels but ~70 groups). The check that makes
this exact rather than hoped for: the kernels (which nodes fuse) must be the same at both batches and every
slope and base non-negative; otherwise the phase is analysed at each batch directly.

    time(kernel) = max(FLOPs / (peak x eff), bytes / (bandwidth x eff)) + launch     (planner.predict.roofline)

Launch: prefill launches kernel by kernel (the target's launch_overhead_s). Decode on a CUDA/ROCm runtime
replays the step as a captured graph, which is how decoder serving runs (onnxruntime's enable_cuda_graph,
onnxruntime-genai, vLLM, TensorRT-LLM): GRAPH_LAUNCH_S per step plus GRAPH_PER_KERNEL_S per kernel instead of a
launch each; the eager figure is reported beside it.

Tensor parallelism over N devices (Megatron layout): projections are split by columns or rows, attention by
heads and the MLP by its intermediate size, so every matrix kernel and every kernel on per-head or
per-intermediate tensors costs 1/N per device; kernels on the residual stream ([batch, seq, hidden] and the
[batch, seq, 1] norm statistics) run replicated on each device. Each layer adds two all-reduces of
batch x seq x hidden activations (after o_proj and after down_proj), and the vocab-split logits one
all-gather, over the target's interconnect, timed by planner.llm.collectives (a bandwidth term and a latency
term that grows with the devices; ring or tree by size), not overlapped with compute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from planner.costs import OpClass, OpCost
from planner.errors import PlannerError
from planner.llm.collectives import allgather_seconds, allreduce_seconds
from planner.model.analyze import Analysis, Analyzer
from planner.model.ir import DTYPE_BITS
from planner.predict.fusion import Kernel
from planner.predict.memory import live_bytes_per_step
from planner.predict.predictor import Predictor
from planner.predict.roofline import COMPUTE, MEMORY, KernelTime, kernel_time
from planner.targets.runtime import GRAPH_LAUNCH_S, GRAPH_PER_KERNEL_S
from planner.targets.target import Target

ALLREDUCES_PER_LAYER = 2


def _line(lo: tuple[int, ...], hi: tuple[int, ...], b_lo: int, b_hi: int
          ) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(base, slope) per component with value(b) = base + b x slope through both anchors; None if a slope is not
    integral or negative."""
    span = b_hi - b_lo
    bases, slopes = [], []
    for x, y in zip(lo, hi, strict=True):
        slope, rem = divmod(y - x, span)
        if rem or slope < 0:
            return None
        bases.append(x - b_lo * slope)
        slopes.append(slope)
    return tuple(bases), tuple(slopes)


def _affine(lo: OpCost, hi: OpCost, b_lo: int, b_hi: int) -> tuple[OpCost, OpCost] | None:
    """(base, slope) with cost(b) = base + b x slope through both anchors; None if not integral or if the cost
    falls with the batch. (A base may be negative: a capped gather; cost(b >= 1) >= cost(1) >= 0 regardless.)"""
    fit = _line((lo.flops, lo.bytes_read, lo.bytes_written, lo.weight_bytes),
                (hi.flops, hi.bytes_read, hi.bytes_written, hi.weight_bytes), b_lo, b_hi)
    return None if fit is None else (OpCost(*fit[0]), OpCost(*fit[1]))


@dataclass(frozen=True)
class KernelGroup:
    """Kernels of identical cost at every batch (the same kernel in each layer)."""

    label: str
    op_class: OpClass
    dtype: str
    unknown: bool
    sharded: bool  # split N ways under tensor parallelism (else replicated on every device)
    base: OpCost
    slope: OpCost
    names: tuple[str, ...]
    weight_cap: int = 0  # bytes of the weights the kernel reads: a gather never reads more of its table
    family: str = ""  # the kernel family (planner.predict.families): a weight-only kernel's carries its bits
    grid_base: tuple[int, int, int] | None = None  # its GEMM output grid: base + batch x slope per component
    grid_slope: tuple[int, int, int] = (0, 0, 0)

    @property
    def count(self) -> int:
        return len(self.names)

    def grid(self, batch: int) -> tuple[int, int, int] | None:
        if self.grid_base is None:
            return None
        rows, cols, mats = (b + batch * s for b, s in zip(self.grid_base, self.grid_slope, strict=True))
        return rows, cols, mats

    def cost(self, batch: int, devices: int = 1) -> OpCost:
        b, s = self.base, self.slope
        c = OpCost(b.flops + batch * s.flops, b.bytes_read + batch * s.bytes_read,
                   b.bytes_written + batch * s.bytes_written, b.weight_bytes + batch * s.weight_bytes)
        if self.weight_cap and c.weight_bytes > self.weight_cap:  # Gather: min(rows gathered, the table)
            excess = c.weight_bytes - self.weight_cap
            c = OpCost(c.flops, c.bytes_read - excess, c.bytes_written, self.weight_cap)
        if devices == 1 or not self.sharded:
            return c
        return OpCost(-(-c.flops // devices), -(-c.bytes_read // devices), -(-c.bytes_written // devices),
                      -(-c.weight_bytes // devices))


@dataclass(frozen=True)
class GroupTime:
    group: KernelGroup
    time: KernelTime
    seconds: float  # per kernel, with the launch this phase uses


@dataclass(frozen=True)
class PhaseTime:
    seconds: float
    roofline_s: float  # sum of max(compute, memory): what the kernels take without any launch cost
    compute_s: float
    memory_s: float
    launch_s: float
    eager_launch_s: float  # the launch cost had every kernel been launched on its own
    comm_s: float
    host_s: float  # the host's dispatch time for the step (a framework's per-kernel cost); seconds >= host_s
    flops: int  # per device
    bytes: int  # per device
    bound: str
    groups: tuple[GroupTime, ...]

    @property
    def eager_seconds(self) -> float:
        return self.seconds - self.launch_s + self.eager_launch_s


@dataclass
class Phase:
    """One phase of one decoder for one set of fusion switches."""

    name: str
    dims: dict[str, int]
    layers: int
    kernels: int  # kernels per run (views excluded)
    affine: bool  # False: analysed at each batch (the affine check failed)
    residual_bytes: int  # [1, seq, hidden] activation: one request's all-reduce message
    logits_bytes: int  # one request's logits: the all-gather message
    hidden_size: int | None
    order: tuple[str, ...]  # kernel names in execution order (views excluded)
    _analyzer: Analyzer
    _predictor: Predictor
    _switches: tuple[bool, bool]
    _excluded: frozenset[str]
    _groups: dict[int, list[KernelGroup]] = field(default_factory=dict)
    _activations: dict[int, int] = field(default_factory=dict)
    _anchors: tuple[Analysis, Analysis] | None = None
    _profile: tuple[np.ndarray, np.ndarray] | None = None

    # ---- costs --------------------------------------------------------------------------------------------

    def groups(self, batch: int) -> list[KernelGroup]:
        if self.affine:
            return self._groups[0]
        if batch not in self._groups:
            a = self._analyzer.analyze(self.dims, batch=batch)
            kernels, _ = self._predictor.kernels(a, *self._switches)
            self._groups[batch] = _group(a, kernels, kernels, 0, batch, self.hidden_size)
        return self._groups[batch]

    def activation_bytes(self, batch: int) -> int:
        """Peak of live activations at `batch`, the KV cache excluded (it is counted once, at full length).

        Each step's live total is a sum of tensors affine in the batch, so it is affine itself: the profiles at
        batch 1 and 2 give every batch as max over steps of (base + batch x slope)."""
        if batch not in self._activations:
            if self._profile is None and self._anchors is not None:
                p1, p2 = (np.asarray(self._live(a), dtype=np.int64) for a in self._anchors)
                self._profile = (2 * p1 - p2, p2 - p1)
            if self._profile is not None and (self._profile[1] >= 0).all() and (self._profile[0] >= 0).all():
                base, slope = self._profile
                self._activations[batch] = int((base + batch * slope).max(initial=0))
            else:
                a = self._analyzer.analyze(self.dims, batch=batch)
                self._activations[batch] = max(self._live(a), default=0)
        return self._activations[batch]

    def _live(self, a: Analysis) -> list[int]:
        kernels, _ = self._predictor.kernels(a, *self._switches)
        return live_bytes_per_step(a.graph, self._predictor.costs(a), _fused_away(a.graph, kernels) | self._excluded)

    # ---- time ---------------------------------------------------------------------------------------------

    def time(self, batch: int, target: Target, devices: int = 1, graph_launch: bool = False) -> PhaseTime:
        per_kernel = GRAPH_PER_KERNEL_S if graph_launch else target.launch_overhead_s
        timed: list[GroupTime] = []
        roof = comp = mem = launch = eager = 0.0
        kernels = 0
        by_bound = {COMPUTE: 0.0, MEMORY: 0.0}
        flops = nbytes = 0
        for g in self.groups(batch):
            if g.op_class == OpClass.VIEW:
                continue
            c = g.cost(batch, devices)
            kt = kernel_time(c, g.op_class, g.dtype, target, g.family, grid=g.grid(batch))
            r = max(kt.compute_s, kt.memory_s)
            timed.append(GroupTime(g, kt, r + per_kernel))
            kernels += g.count
            roof += r * g.count
            comp += kt.compute_s * g.count
            mem += kt.memory_s * g.count
            launch += per_kernel * g.count
            eager += target.launch_overhead_s * g.count
            by_bound[kt.bound] += (r + per_kernel) * g.count
            flops += c.flops * g.count
            nbytes += c.bytes * g.count
        if graph_launch:
            launch += GRAPH_LAUNCH_S
        comm = self.comm_seconds(batch, target, devices)
        # A host that dispatches kernel by kernel (and each collective) runs ahead of the GPU while the GPU is
        # the slower; once the GPU's kernels are shorter than the dispatch, the host sets the pace
        host = 0.0 if graph_launch else target.host_per_kernel_s * (
            kernels + (ALLREDUCES_PER_LAYER * self.layers + 1 if devices > 1 else 0))
        bound = COMPUTE if by_bound[COMPUTE] > by_bound[MEMORY] else MEMORY
        return PhaseTime(max(roof + launch + comm, host), roof, comp, mem, launch, eager, comm, host, flops,
                         nbytes, bound, tuple(timed))

    def comm_seconds(self, batch: int, target: Target, devices: int) -> float:
        if devices == 1:
            return 0.0
        bw = target.interconnect_bytes_per_s
        if not bw:
            raise PlannerError(f"{target.name}: no interconnect bandwidth for tensor parallelism")
        hop = target.hop_latency_s
        allreduce = allreduce_seconds(batch * self.residual_bytes, devices, bw, hop)
        allgather = allgather_seconds(batch * self.logits_bytes, devices, bw, hop)
        return ALLREDUCES_PER_LAYER * self.layers * allreduce + allgather


def _fused_away(graph, kernels: list[Kernel]) -> set[str]:
    out: set[str] = set()
    for k in kernels:
        if len(k.nodes) > 1:
            out |= {t.name for m in k.nodes[:-1] for t in graph.nodes[m].outputs if t is not None}
    return out


def residual_stream(a: Analysis) -> tuple[tuple[int, ...] | None, str]:
    """Shape and dtype of the hidden states: the embedding Gather's output (the Gather that reads input_ids)."""
    for n in a.graph.nodes:
        if n.op_type in ("Gather", "GatherBlockQuantized") and any(
                t is not None and t.name in ("input_ids", "inputs_embeds") for t in n.inputs):
            y = n.outputs[0] if n.outputs else None
            if y is not None and y.shape:
                return y.shape, y.dtype
    for n in a.graph.nodes:  # GPT-2 exports reshape input_ids first: the first embedding-table gather
        data = n.inputs[0] if n.op_type == "Gather" and n.inputs else None
        y = n.outputs[0] if n.outputs else None
        if data is not None and data.is_weight and data.shape and len(data.shape) == 2 and y is not None \
                and y.shape and y.shape[-1] == data.shape[1]:
            return y.shape, y.dtype
    t = a.graph.tensors.get("inputs_embeds")
    return (t.shape, t.dtype) if t is not None and t.shape else (None, "float32")


def _sharded(a: Analysis, k: Kernel, hidden: int | None) -> bool:
    """Replicated under TP: non-matrix kernels on the residual stream [batch, seq, hidden] or its [.., 1] stats."""
    if k.op_class == OpClass.MATRIX:
        return True
    last = a.graph.nodes[k.nodes[-1]]
    y = last.outputs[0] if last.outputs else None
    if y is None or y.shape is None or hidden is None:
        return True
    return not (len(y.shape) == 3 and y.shape[-1] in (hidden, 1))


def _group(a: Analysis, lo: list[Kernel], hi: list[Kernel], b_lo: int, b_hi: int,
           hidden: int | None) -> list[KernelGroup] | None:
    """Kernel groups from the same kernels at two batches (b_lo == 0 with lo == hi: costs at b_hi, no slope)."""
    groups: dict[tuple, list[str]] = {}
    for k_lo, k_hi in zip(lo, hi, strict=True):
        if b_lo == 0:  # direct: the cost at b_hi is the base, no slope
            base, slope = k_hi.cost, OpCost()
        else:
            fit = _affine(k_lo.cost, k_hi.cost, b_lo, b_hi)
            if fit is None:
                return None
            base, slope = fit
        cap = sum({t.name: t.nbytes for m in k_lo.nodes for t in a.graph.nodes[m].inputs
                   if t is not None and t.is_weight}.values()) if slope.weight_bytes else 0
        grid = _grid_fit(k_lo.grid, k_hi.grid, b_lo, b_hi)
        key = (k_lo.label, k_lo.op_class, k_lo.dtype, k_lo.unknown, _sharded(a, k_lo, hidden), base, slope, cap,
               k_lo.family, grid)
        groups.setdefault(key, []).append(k_lo.name)
    return [KernelGroup(label, oc, dt, unk, sh, base, slope, tuple(names), cap, family,
                        *(grid if grid else (None, (0, 0, 0))))
            for (label, oc, dt, unk, sh, base, slope, cap, family, grid), names in groups.items()]


def _grid_fit(lo: tuple[int, int, int] | None, hi: tuple[int, int, int] | None, b_lo: int, b_hi: int
              ) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(base, slope) of a GEMM grid through the two anchors (b_lo == 0: the grid at b_hi, no slope); None when
    either is unknown or a component does not grow by whole steps."""
    if lo is None or hi is None:
        return None
    return (hi, (0, 0, 0)) if b_lo == 0 else _line(lo, hi, b_lo, b_hi)


def build_phase(analyzer: Analyzer, predictor: Predictor, name: str, dims: dict[str, int], layers: int,
                switches: tuple[bool, bool], excluded: frozenset[str]) -> Phase:
    """Analyse the phase at batch 1 and 2 and fit each kernel's cost; `excluded`: the KV tensors."""
    a1 = analyzer.analyze(dims, batch=1 if analyzer.batch_sweepable else None)
    shape, dtype = residual_stream(a1)
    hidden = shape[-1] if shape else None
    residual = math.prod(shape) * DTYPE_BITS.get(dtype, 32) // 8 if shape else 0
    logits_t = a1.graph.tensors.get("logits") or next(
        (a1.graph.tensors[o] for o in a1.graph.outputs if o in a1.graph.tensors), None)
    logits = logits_t.nbytes if logits_t is not None else 0
    k1, _ = predictor.kernels(a1, *switches)
    kernels = sum(1 for k in k1 if k.op_class != OpClass.VIEW)
    order = tuple(k.name for k in k1 if k.op_class != OpClass.VIEW)
    phase = Phase(name, dict(dims), layers, kernels, True, residual, logits, hidden, order, analyzer, predictor,
                  switches, excluded)
    if not analyzer.batch_sweepable:
        phase.affine = False
        return phase
    a2 = analyzer.analyze(dims, batch=2)
    k2, _ = predictor.kernels(a2, *switches)
    groups = None
    if [k.nodes for k in k1] == [k.nodes for k in k2]:
        groups = _group(a1, k1, k2, 1, 2, hidden)
    if groups is None:
        phase.affine = False
        return phase
    phase._groups[0] = groups
    phase._anchors = (a1, a2)
    return phase
