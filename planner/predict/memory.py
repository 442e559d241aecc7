"""How much device memory a plan needs: weights + peak of live activations + runtime workspace.

The activation peak comes from a liveness walk over the execution order: a tensor lives from the step that
writes it to the last step that reads it. Views (Reshape, Squeeze, ...) alias their input instead of
allocating, and tensors that stay inside a fused kernel never exist in memory at all.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from planner.costs import NodeCost, OpClass
from planner.model.ir import Graph
from planner.predict.arena import Lifetime, resident_bytes


@dataclass(frozen=True)
class MemoryEstimate:
    weight_bytes: int
    activation_bytes: int  # peak of live activations (graph inputs and outputs included)
    workspace_bytes: int
    kv_cache_bytes: int = 0
    runtime_copy_bytes: int = 0  # the runtime's own copies of weights (prepacked, reordered): runtime_copies
    arena_bytes: int = 0  # what the runtime's arena keeps beyond the live peak: arena_growth_bytes

    @property
    def total_bytes(self) -> int:
        return (self.weight_bytes + self.activation_bytes + self.workspace_bytes + self.kv_cache_bytes
                + self.runtime_copy_bytes + self.arena_bytes)


def residency_kind(family: str, op_class: OpClass) -> str | None:
    """Which measured weight residency (Target.weight_residency) a kernel's weights take: "conv" for every
    convolution family, "gemm" for the other matrix kernels, None for the rest (their weights are one copy)."""
    if "conv" in family:
        return "conv"
    return "gemm" if op_class == OpClass.MATRIX else None


ALWAYS_RETURNED = 32 << 20  # glibc's largest mmap threshold on 64-bit: a buffer this large is mmapped, and
# unmapped (returned to the OS) when freed


def runtime_copies(kernels: Iterable, residency: Mapping[str, float]) -> int:
    """Bytes the runtime keeps beyond one copy of each kernel's weights, by the resident bytes per weight byte
    measured for its kind (a host calibration: onnxruntime keeps the initializer and its prepacked or
    NCHWc-reordered form, 1.7x a MatMul's weights and 3.3x a convolution's on this machine).

    Except a kernel with ALWAYS_RETURNED bytes of weights or more: the buffer it no longer needs goes back to
    the OS when freed. Measured here (planner.ort.measure, one thread): MatMul weights of 4 MiB keep 1.85-1.96x,
    one of 16 MiB 1.00x (four of them 1.74x: glibc raises its threshold after the first is freed), of 32 and
    64 MiB 1.00x; so AlexNet's and VGG-19's fully connected layers (64-400 MiB) are one copy."""
    extra = 0.0
    for k in kernels:
        kind = residency_kind(k.family, k.op_class)
        if kind in residency and 0 < k.cost.weight_bytes < ALWAYS_RETURNED:
            extra += max(residency[kind] - 1.0, 0.0) * k.cost.weight_bytes
    return int(extra)


def peak_activation_bytes(graph: Graph, costs: list[NodeCost], fused_away: set[str] = frozenset()) -> int:
    return max(live_bytes_per_step(graph, costs, fused_away), default=0)


def live_bytes_per_step(graph: Graph, costs: list[NodeCost], fused_away: set[str] = frozenset()) -> list[int]:
    """Bytes of live activations before, at and after each step of the execution order (the peak's profile)."""
    return _live_profile(lifetimes(graph, costs, fused_away), len(graph.nodes))


def _live_profile(lives: Iterable[TensorLife], steps: int) -> list[int]:
    delta = [0] * (steps + 3)
    for t in lives:
        delta[t.birth + 1] += t.nbytes
        delta[t.death + 2] -= t.nbytes
    return list(itertools.accumulate(delta))


@dataclass(frozen=True)
class TensorLife:
    """An activation that takes memory of its own: its bytes, the step that writes it (-1: a graph input) and the
    last step that reads it (the number of steps: a graph output, kept to the end)."""

    name: str
    nbytes: int
    birth: int
    death: int
    graph_input: bool = False
    graph_output: bool = False


def lifetimes(graph: Graph, costs: list[NodeCost], fused_away: set[str] = frozenset()) -> list[TensorLife]:
    """Every activation that owns memory, with its lifetime: views alias their input's root, weights and tensors
    fused away own none."""
    root: dict[str, str] = {}

    def find(name: str) -> str:
        while name in root:
            name = root[name]
        return name

    for n, c in zip(graph.nodes, costs, strict=False):
        if c.op_class == OpClass.VIEW and n.inputs and n.inputs[0] is not None:
            for o in n.outputs:
                if o is not None:
                    root[o.name] = find(n.inputs[0].name)
    steps = len(graph.nodes)
    birth: dict[str, int] = {find(name): -1 for name in graph.inputs}
    death: dict[str, int] = {}
    for i, n in enumerate(graph.nodes):
        for o in n.outputs:
            if o is not None and find(o.name) == o.name:
                birth.setdefault(o.name, i)
        reads = [t.name for t in n.inputs if t is not None] + graph.implicit_inputs.get(i, [])
        for name in reads:
            r = find(name)
            death[r] = max(death.get(r, -1), i)
    outputs = {find(name) for name in graph.outputs}
    for name in outputs:
        death[name] = steps
    weights = set(graph.weights)
    out = []
    for name, b in birth.items():
        t = graph.tensors.get(name)
        if t is None or name in weights or name in fused_away or t.is_weight:
            continue
        out.append(TensorLife(name, t.nbytes, b, max(death.get(name, b), b), b < 0, name in outputs))
    return out


def arena_growth_bytes(graph: Graph, costs: list[NodeCost], fused_away: set[str] = frozenset()) -> int:
    """What onnxruntime's CPU arena keeps resident beyond the live peak (planner.predict.arena): the graph's
    inputs are the caller's and stay resident through the run, everything else is the arena's."""
    lives = lifetimes(graph, costs, fused_away)
    steps = len(graph.nodes)
    pattern = max(_live_profile((t for t in lives if not t.graph_input and not t.graph_output), steps))
    held = resident_bytes((Lifetime(t.nbytes, t.birth, t.death, t.graph_output) for t in lives
                           if not t.graph_input), pattern)
    inputs = sum(t.nbytes for t in lives if t.graph_input)
    return max(0, inputs + held - max(_live_profile(lives, steps)))


def estimate_memory(graph: Graph, costs: list[NodeCost], fused_away: set[str], workspace_bytes: int,
                    kv_cache_bytes: int = 0) -> MemoryEstimate:
    return MemoryEstimate(graph.weight_bytes, peak_activation_bytes(graph, costs, fused_away), int(workspace_bytes),
                          kv_cache_bytes)
