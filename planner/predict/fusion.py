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
from planner.model.ir import Graph
from planner.model.recurrent import RecurrentShape, shape_of
from planner.predict.families import compute_dtype, contiguous_runs, gemm_grid, kernel_family, kernel_steps


@dataclass(frozen=True)
class Kernel:
    name: str  # the anchor node's name
    nodes: tuple[int, ...]  # indices into graph.nodes
    op_types: tuple[str, ...]
    op_class: OpClass
    dtype: str  # the precision its arithmetic runs at
    cost: OpCost  # at the kernel boundary: fused intermediates removed
    unknown: bool  # some member has no cost formula
    family: str = ""  # which calibrated rate times it (kernel_family of the anchor)
    steps: int = 1  # sequential steps it runs (an RNN's time steps; kernel_steps of the anchor)
    recurrent: RecurrentShape | None = None  # an RNN layer's sizes (planner.model.recurrent.shape_of the anchor)
    grid: tuple[int, int, int] | None = None  # a matrix kernel's output as a GEMM (families.gemm_grid)
    runs: int = 0  # contiguous runs a data kernel copies (families.contiguous_runs), 0: not timed by runs

    @property
    def label(self) -> str:
        return "+".join(self.op_types)


"""MLAS's blocked convolution computes up to four output channel blocks per pass over its input; with one
block of outputs it does a quarter of the multiply-adds per input value it loads. Profiled here (AVX-512,
blocks of 16), 16 output channels ran at 142-163 GFLOP/s whatever the input channels (3 to 128), kernel (1x1,
3x3) or image (32^2 to 128^2), against 197-245 for 32 and 211-245 for 64 and more: a family of its own."""


"""A 1x1 depthwise convolution does one multiply-add per element it reads: its intensity is the same at every
size, so a rate curve over intensity cannot tell a cached one from one in DRAM, and a FLOP rate borrowed from
the 3x3 depthwise kernel has it 4-7x too fast (DenseNet-121's 124 such kernels, from its BatchNormalizations:
predicted 1.7 ms, profiled 4.5 ms). Its calibration is bytes per second against working set, like a vector op."""


def graph_costs(graph: Graph) -> list[NodeCost]:
    return [node_cost(n) for n in graph.nodes]


def build_kernels(graph: Graph, costs: list[NodeCost], fuse_epilogue: bool, fuse_elementwise: bool,
                  dispatch_views: bool = False) -> list[Kernel]:
    """`dispatch_views`: metadata-only nodes are launched too (onnxruntime runs a Reshape node), as kernels that
    move no bytes; otherwise they are no kernel at all."""
    views = set() if dispatch_views else {i for i, c in enumerate(costs) if c.op_class == OpClass.VIEW}
    links = _Links(graph, views)
    groups = _groups(graph, costs, links, fuse_epilogue, fuse_elementwise, dispatch_views)
    return [_kernel(graph, costs, members, *links.inside(members)) for members in groups]


def _groups(graph: Graph, costs: list[NodeCost], links: _Links, fuse_epilogue: bool, fuse_elementwise: bool,
            dispatch_views: bool) -> list[list[int]]:
    """Node indices per kernel, in launch order."""
    consumers, outputs, producer = links.consumers, links.outputs, links.producer

    groups: list[list[int]] = []
    tail: dict[str, int] = {}  # tensor -> group whose last member wrote it
    anchor_pos: list[int] = []

    def epilogue(i: int) -> bool:
        """Can run inside its producer's kernel: an elementwise op, and on a runtime that fuses elementwise chains
        (TensorRT, XLA) also a layout change or a (de)quantization, which it folds into the producer's store."""
        return costs[i].epilogue or (fuse_elementwise and graph.nodes[i].op_type in _FOLDED_WHEN_FUSING)

    def can_absorb(g: int) -> bool:
        first = costs[groups[g][0]]
        if first.op_class == OpClass.MATRIX:
            return fuse_epilogue
        head, *rest = groups[g]
        # a fusing runtime also runs elementwise work after a normalisation (LayerNorm + residual, + quantize)
        return fuse_elementwise and (epilogue(head) or graph.nodes[head].op_type in _NORM_HEADS) \
            and all(epilogue(m) for m in rest)

    def join(g: int, i: int, via: str) -> bool:
        """Node i runs inside kernel g, which it reads through `via`; its outputs are now g's to extend."""
        groups[g].append(i)
        del tail[via]
        for o in graph.nodes[i].outputs:
            if o is not None:
                tail[o.name] = g
        return True

    def attention(g: int) -> bool:
        """A group that a fusing runtime runs as one attention kernel: it starts with Q x K^T (a MatMul of two
        activations) and has not yet taken its P x V."""
        first = graph.nodes[groups[g][0]]
        return (fuse_elementwise and first.op_type == "MatMul" and _activations(first)
                and sum(graph.nodes[m].op_type == "MatMul" for m in groups[g]) == 1)

    for i, n in enumerate(graph.nodes):
        c = costs[i]
        if c.op_class == OpClass.VIEW:
            if dispatch_views:
                groups.append([i])
                anchor_pos.append(i)
            elif fuse_elementwise and n.inputs and n.inputs[0] is not None and n.inputs[0].name in tail \
                    and len(consumers.get(n.inputs[0].name, [])) == 1 and n.outputs and n.outputs[0] is not None:
                # a reshape between a GEMM and its epilogue moves no data: a fusing runtime carries on through it
                tail[n.outputs[0].name] = tail.pop(n.inputs[0].name)
            continue
        joined = False
        if fuse_elementwise and n.op_type in _ATTENTION_INNER and n.inputs and n.inputs[0] is not None:
            # flash attention (TensorRT's fMHA, the LLM engines' kernels): scores and probabilities never
            # leave the kernel; Softmax and Q x K^T's epilogue join it, then P x V closes it
            t = n.inputs[0]
            g = tail.get(t.name)
            if g is not None and attention(g) and len(consumers.get(t.name, [])) == 1 and t.name not in outputs \
                    and (n.op_type != "MatMul" or _activations(n)):
                joined = join(g, i, t.name)
        if not joined and epilogue(i) and (fuse_epilogue or fuse_elementwise):
            for t in n.inputs:
                if t is None or t.name not in tail:
                    continue
                g = tail[t.name]
                out = n.outputs[0] if n.outputs else None
                readers = consumers.get(t.name, [])
                # one reader, or (a runtime that fuses elementwise chains) only elementwise readers: x * f(x), as
                # in GELU, reads x twice inside one kernel
                shared = len(readers) > 1 and fuse_elementwise and all(epilogue(r) for r in readers)
                if ((len(readers) != 1 and not shared) or t.name in outputs or not can_absorb(g)
                        or out is None or out.numel is None or t.numel is None or out.numel != t.numel):
                    continue
                others = [x.name for x in n.inputs if x is not None and x.name != t.name]
                if any(producer.get(o, -1) > anchor_pos[g] and producer.get(o) not in groups[g] for o in others):
                    continue
                joined = join(g, i, t.name)
                break
        if not joined:
            groups.append([i])
            anchor_pos.append(i)
            for o in n.outputs:
                if o is not None:
                    tail[o.name] = len(groups) - 1
    return groups


_NORM_HEADS = frozenset({"LayerNormalization", "SimplifiedLayerNormalization", "SkipLayerNormalization",
                         "SkipSimplifiedLayerNormalization", "RMSNormalization", "Softmax"})
_FOLDED_WHEN_FUSING = frozenset({"Transpose", "Cast", "QuantizeLinear", "DequantizeLinear"})
_ATTENTION_INNER = ("Cast", "Softmax", "MatMul")  # fp16 models cast the scores to fp32 around the softmax


def _activations(n) -> bool:
    """Both operands of a MatMul are activations (attention's Q x K^T or P x V), not a weight."""
    ins = [t for t in n.inputs[:2] if t is not None]
    return len(ins) == 2 and not any(t.is_weight for t in ins)


class _Links:
    """Who reads and who writes each tensor, for deciding what stays inside a kernel."""

    def __init__(self, graph: Graph, views: set[int]) -> None:
        self.graph, self.views, self.outputs = graph, views, set(graph.outputs)
        self.consumers = graph.consumers()
        for i, names in graph.implicit_inputs.items():
            for name in names:
                self.consumers.setdefault(name, []).append(i)
        self.producer = {o.name: i for i, n in enumerate(graph.nodes) for o in n.outputs if o is not None}

    def inside(self, members: list[int]) -> tuple[set[str], set[str]]:
        """(tensors the members write that never reach memory, the tensors the members read that are those or
        views of those). A tensor stays inside when it is not a graph output and every reader is a member,
        looking through reshapes (views) that no kernel launches."""
        graph, views, inside = self.graph, self.views, set(members)

        def private(name: str) -> bool:
            readers = self.consumers.get(name, [])
            if not readers or name in self.outputs:
                return False
            return all(r in inside or (r in views and all(private(o.name) for o in graph.nodes[r].outputs
                                                           if o is not None)) for r in readers)

        def root(name: str) -> str:
            while self.producer.get(name) in views:
                src = graph.nodes[self.producer[name]].inputs[0]
                if src is None:
                    break
                name = src.name
            return name

        written = {o.name for m in members for o in graph.nodes[m].outputs if o is not None and private(o.name)}
        if not written:
            return written, set()
        read = {t.name for m in members for t in graph.nodes[m].inputs if t is not None and root(t.name) in written}
        return written, read


def _kernel(graph: Graph, costs: list[NodeCost], members: list[int], written: set[str], read: set[str]) -> Kernel:
    """One kernel: its members' costs added, less the bytes of the tensors that stay inside it (each member that
    reads one was charged for it: GELU reads x twice; none of those reads happen)."""
    total = OpCost()
    for m in members:
        total = total + costs[m].cost
    saved_w = sum(graph.tensors[t].nbytes for t in written)
    saved_r = sum(graph.tensors[t.name].nbytes for m in members for t in graph.nodes[m].inputs
                  if t is not None and t.name in read)
    total = OpCost(total.flops, max(0, total.bytes_read - saved_r), max(0, total.bytes_written - saved_w),
                   total.weight_bytes)
    anchor = graph.nodes[members[0]]
    return Kernel(
        name=anchor.name, nodes=tuple(members), op_types=tuple(graph.nodes[m].op_type for m in members),
        op_class=costs[members[0]].op_class, dtype=compute_dtype(anchor), cost=total,
        unknown=any(not costs[m].known for m in members),
        family=kernel_family(anchor, costs[members[0]].op_class), steps=kernel_steps(anchor),
        recurrent=shape_of(anchor), grid=gemm_grid(anchor) if costs[members[0]].op_class == OpClass.MATRIX else None,
        runs=contiguous_runs(anchor),
    )
