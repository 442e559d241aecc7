"""How much device memory a plan needs: weights + peak of live activations + runtime workspace.

The activation peak comes from a liveness walk over the execution order: a tensor lives from the step that
writes it to the last step that reads it. Views (Reshape, Squeeze, ...) alias their input instead of
allocating, and tensors that stay inside a fused kernel never exist in memory at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.costs import NodeCost, OpClass
from planner.ir import Graph


@dataclass(frozen=True)
class MemoryEstimate:
    weight_bytes: int
    activation_bytes: int  # peak of live activations (graph inputs and outputs included)
    workspace_bytes: int
    kv_cache_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return self.weight_bytes + self.activation_bytes + self.workspace_bytes + self.kv_cache_bytes


def peak_activation_bytes(graph: Graph, costs: list[NodeCost], fused_away: set[str] = frozenset()) -> int:
    return max(live_bytes_per_step(graph, costs, fused_away), default=0)


def live_bytes_per_step(graph: Graph, costs: list[NodeCost], fused_away: set[str] = frozenset()) -> list[int]:
    """Bytes of live activations before, at and after each step of the execution order (the peak's profile)."""
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
    for name in graph.outputs:
        death[find(name)] = steps
    weights = set(graph.weights)
    delta = [0] * (steps + 3)
    for name, b in birth.items():
        t = graph.tensors.get(name)
        if t is None or name in weights or name in fused_away or t.is_weight:
            continue
        d = max(death.get(name, b), b)
        delta[b + 1] += t.nbytes
        delta[d + 2] -= t.nbytes
    live, out = 0, []
    for x in delta:
        live += x
        out.append(live)
    return out


def estimate_memory(graph: Graph, costs: list[NodeCost], fused_away: set[str], workspace_bytes: int,
                    kv_cache_bytes: int = 0) -> MemoryEstimate:
    return MemoryEstimate(graph.weight_bytes, peak_activation_bytes(graph, costs, fused_away), int(workspace_bytes),
                          kv_cache_bytes)
