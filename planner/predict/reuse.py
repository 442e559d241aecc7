"""How far back a kernel's inputs were last touched: the bytes of memory used in between.

A microbenchmark runs one kernel again and again on the same buffers, so its inputs sit wherever its own working
set puts them: in the L2 for a small one. In a model, an input was written (or last read) some kernels earlier,
and everything touched since, other activations and the weights of the GEMMs in between, may have pushed it out
to the L3 or to DRAM: a residual added after an attention block, K and V read after the scores, a decoder's past
key/values and the graph's inputs, read once per run after a whole run's weights went by. Under LRU a byte is
still cached when the distinct bytes touched since its last use (its stack distance, itself included) fit in the
cache, so the distance is the working set to read the input at (planner.calibration.rates takes it to the
calibration's streaming curve).

Granularity is the kernel: the tensors a kernel reads and writes count as touched when it runs, a kernel's
direct producer is distance 0 away (its output was written last), and a tensor a view (Reshape, Squeeze, ...)
renames is the same memory. The run repeats, so a tensor not touched earlier in this run (a graph input) was
last touched in the previous one: the kernel sequence is walked twice and the second walk's distances kept.
Distinct bytes between two touches come from a Fenwick tree over each tensor's latest touch: O(touches log n).
"""

from __future__ import annotations

from collections.abc import Sequence

from planner.costs import NodeCost, OpClass
from planner.model.ir import Graph
from planner.predict.fusion import Kernel

Reads = tuple[tuple[int, int], ...]  # (bytes, stack distance in bytes) per activation a kernel reads


class _Fenwick:
    def __init__(self, n: int) -> None:
        self.tree = [0] * (n + 1)

    def add(self, i: int, v: int) -> None:
        i += 1
        while i < len(self.tree):
            self.tree[i] += v
            i += i & -i

    def prefix(self, i: int) -> int:
        """Sum of positions 0..i-1."""
        s = 0
        while i > 0:
            s += self.tree[i]
            i -= i & -i
        return s


def _aliases(graph: Graph, costs: Sequence[NodeCost]) -> dict[str, str]:
    """Tensor -> the tensor whose memory it is (a view's output is its input renamed)."""
    root: dict[str, str] = {}
    for i, n in enumerate(graph.nodes):
        if costs[i].op_class == OpClass.VIEW and n.inputs and n.inputs[0] is not None:
            src = root.get(n.inputs[0].name, n.inputs[0].name)
            for o in n.outputs:
                if o is not None:
                    root[o.name] = src
    return root


def _touches(graph: Graph, kernel: Kernel, root: dict[str, str]) -> tuple[set[str], set[str]]:
    """(activations it reads, every tensor it reads or writes) at the kernel's boundary, by memory."""
    members = [graph.nodes[m] for m in kernel.nodes]
    produced = {o.name for n in members for o in n.outputs if o is not None}
    inner = {o.name for n in members[:-1] for o in n.outputs if o is not None}
    reads, touched = set(), set()
    for n in members:
        for t in n.inputs:
            if t is None or t.name in produced:
                continue
            name = root.get(t.name, t.name)
            touched.add(name)
            if not t.is_weight:
                reads.add(name)
    touched |= {root.get(t, t) for t in produced - inner}
    return reads, touched


def input_reuse(graph: Graph, costs: Sequence[NodeCost], kernels: Sequence[Kernel]) -> list[Reads]:
    """Per kernel: each activation it reads, with its bytes and its stack distance (the distinct bytes touched
    since its last touch, itself included; the bytes of the whole run where nothing else touched it)."""
    root = _aliases(graph, costs)
    size = {name: t.nbytes for name, t in graph.tensors.items()}
    per_kernel = [_touches(graph, k, root) if k.op_class != OpClass.VIEW else (set(), set()) for k in kernels]
    n = len(kernels)
    tree, latest = _Fenwick(2 * n), {}
    out: list[Reads] = [()] * n
    for pos in range(2 * n):
        i = pos % n
        reads, touched = per_kernel[i]
        if pos >= n:
            found = []
            for name in sorted(reads):  # each was touched in the first walk, by this kernel if none other
                between = tree.prefix(pos) - tree.prefix(latest[name] + 1)
                own = size.get(name, 0)
                if own:
                    found.append((own, between + own))
            out[i] = tuple(found)
        for name in touched:
            last = latest.get(name)
            if last is not None:
                tree.add(last, -size.get(name, 0))
            latest[name] = pos
            tree.add(pos, size.get(name, 0))
    return out
