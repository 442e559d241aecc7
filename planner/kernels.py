"""Group nodes into the kernels a runtime would launch; bytes count only at a kernel's boundary.

What fuses is a property of the target's runtime, so it comes in as two switches read from the target file:

    epilogue fusion       Conv/MatMul/Gemm ──▶ Add(bias) ──▶ Relu         one kernel: y = relu(x·W + b)
    elementwise fusion    Sub ──▶ Mul ──▶ Add ──▶ Sigmoid                   one kernel (compilers: XLA, Neuron)

A node joins the kernel that produced its input only when that input has no other reader and is not a graph
output (otherwise it must be written to memory anyway), when it keeps the kernel's output size, and when its
other inputs are ready before the kernel starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.costs import NodeCost, OpClass, OpCost, node_cost
from planner.ir import Graph, NodeInfo

_INT8_MATRIX = {"QLinearConv", "QLinearMatMul", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
                "QGemm", "MatMulIntegerToFloat", "QAttention", "DynamicQuantizeLSTM"}


@dataclass(frozen=True)
class Kernel:
    name: str  # the anchor node's name
    nodes: tuple[int, ...]  # indices into graph.nodes
    op_types: tuple[str, ...]
    op_class: OpClass
    dtype: str  # the precision its arithmetic runs at
    cost: OpCost  # at the kernel boundary: fused intermediates removed
    unknown: bool  # some member has no cost formula

    @property
    def label(self) -> str:
        return "+".join(self.op_types)


def compute_dtype(node: NodeInfo) -> str:
    """The precision a node's arithmetic runs at, which picks the target's peak."""
    if node.op_type in _INT8_MATRIX:
        return "int8"
    for t in node.inputs:
        if t is not None and not t.is_weight:
            return t.dtype
    for t in node.inputs:
        if t is not None:
            return t.dtype
    return "float32"


def graph_costs(graph: Graph) -> list[NodeCost]:
    return [node_cost(n) for n in graph.nodes]


def build_kernels(graph: Graph, costs: list[NodeCost], fuse_epilogue: bool, fuse_elementwise: bool) -> list[Kernel]:
    consumers = graph.consumers()
    for i, names in graph.implicit_inputs.items():
        for name in names:
            consumers.setdefault(name, []).append(i)
    outputs = set(graph.outputs)
    producer: dict[str, int] = {t.name: i for i, n in enumerate(graph.nodes) for t in n.outputs if t is not None}

    groups: list[list[int]] = []
    internal: list[list[str]] = []  # tensors that never leave each group
    tail: dict[str, int] = {}  # tensor -> group whose last member wrote it
    anchor_pos: list[int] = []

    def can_absorb(g: int) -> bool:
        first = costs[groups[g][0]]
        if first.op_class == OpClass.MATRIX:
            return fuse_epilogue
        return fuse_elementwise and all(costs[m].epilogue for m in groups[g])

    for i, n in enumerate(graph.nodes):
        c = costs[i]
        if c.op_class == OpClass.VIEW:
            continue
        joined = False
        if c.epilogue and (fuse_epilogue or fuse_elementwise):
            for t in n.inputs:
                if t is None or t.name not in tail:
                    continue
                g = tail[t.name]
                out = n.outputs[0] if n.outputs else None
                if (len(consumers.get(t.name, [])) != 1 or t.name in outputs or not can_absorb(g)
                        or out is None or out.numel is None or t.numel is None or out.numel != t.numel):
                    continue
                others = [x.name for x in n.inputs if x is not None and x.name != t.name]
                if any(producer.get(o, -1) > anchor_pos[g] and producer.get(o) not in groups[g] for o in others):
                    continue
                groups[g].append(i)
                internal[g].append(t.name)
                del tail[t.name]
                for o in n.outputs:
                    if o is not None:
                        tail[o.name] = g
                joined = True
                break
        if not joined:
            groups.append([i])
            internal.append([])
            anchor_pos.append(i)
            for o in n.outputs:
                if o is not None:
                    tail[o.name] = len(groups) - 1

    kernels = []
    for members, hidden in zip(groups, internal, strict=False):
        total = OpCost()
        for m in members:
            total = total + costs[m].cost
        saved = sum(graph.tensors[t].nbytes for t in hidden)
        total = OpCost(total.flops, max(0, total.bytes_read - saved), max(0, total.bytes_written - saved),
                       total.weight_bytes)
        anchor = graph.nodes[members[0]]
        kernels.append(Kernel(
            name=anchor.name, nodes=tuple(members), op_types=tuple(graph.nodes[m].op_type for m in members),
            op_class=costs[members[0]].op_class, dtype=compute_dtype(anchor), cost=total,
            unknown=any(not costs[m].known for m in members),
        ))
    return kernels
