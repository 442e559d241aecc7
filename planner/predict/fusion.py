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
from planner.model.ir import Graph, NodeInfo
from planner.model.recurrent import GATES, RecurrentShape, shape_of

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
    family: str = ""  # which calibrated rate times it (kernel_family of the anchor)
    steps: int = 1  # sequential steps it runs (an RNN's time steps; kernel_steps of the anchor)
    recurrent: RecurrentShape | None = None  # an RNN layer's sizes (planner.model.recurrent.shape_of the anchor)

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


_GEMM_LIKE = {"MatMul", "Gemm", "FusedMatMul", "FusedGemm", "TransposeMatMul", "FusedMatMulActivation",
              "GemmFastGelu", "MatMulInteger", "QLinearMatMul", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
              "QGemm", "MatMulInteger16", "Einsum"}
_CONV_LIKE = {"Conv", "FusedConv", "NhwcConv", "NhwcFusedConv", "QLinearConv", "ConvInteger", "ConvTranspose"}
_RNN_LIKE = frozenset(GATES)  # LSTM, GRU, RNN and the quantized LSTM
_DOMAIN_TAG = {"": "", "com.microsoft": "ms.", "com.microsoft.nchwc": "nchwc."}
_ROW_WISE = {"Softmax", "LogSoftmax", "LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization",
             "SkipSimplifiedLayerNormalization", "RMSNormalization", "ReduceMean", "ReduceSum", "ReduceMax"}
SHORT_ROWS = 128  # a row-wise op over rows shorter than this is its own family ("Softmax:short")
LONG_RUN = 64  # a Transpose whose output keeps runs of this many input elements in order is "Transpose:long"


def contiguous_run(node: NodeInfo) -> int:
    """How many consecutive input elements a Transpose moves together: the product of the trailing dims its
    permutation leaves in place (ShuffleNet's channel shuffle [1, g, c, h, w] -> [1, c, g, h, w] moves h·w at a
    time; attention's [b, s, h, d] -> [b, h, s, d] moves d). Measured here, a Transpose of 784-element runs
    streams 3x faster than one of 32-element runs. 1 when the shape or permutation is unknown."""
    x = node.in_shape(0)
    if not x:
        return 1
    perm = list(node.attr("perm") or range(len(x) - 1, -1, -1))
    if sorted(perm) != list(range(len(x))):  # not a permutation of this rank: the model is wrong, not us
        return 1
    run, i = 1, len(x) - 1
    while i >= 0 and perm[i] == i:
        run *= x[i]
        i -= 1
    return run


def kernel_family(node: NodeInfo, op_class: OpClass) -> str:
    """The kind of kernel a node runs, as calibrations name them.

    Matrix ops group by algorithm: "gemm" (MatMul-like), "gemm_bias" (Gemm), "conv", "conv_dw" (depthwise: one
    input channel per group), "conv_dw_1x1" (a depthwise 1x1: a per-channel scale, which onnxruntime's blocked
    layout makes of a BatchNormalization; timed by its bytes, see BYTES_TIMED), "conv_grouped_1x1" (other
    groups, a 1x1 stride-1 kernel: one GEMM per group straight off the input), "conv_grouped" (other groups:
    im2col per group first; measured here, 3x3 with 4 channels a group runs 30-40 GFLOP/s, 1x1 at the same
    intensity 140-200), "lstm", "gru", "rnn",
    prefixed "nchwc." for onnxruntime's blocked-layout kernels ("nchwc.conv_nchw": a blocked conv reading a
    plain NCHW input, as first layers do), a dense one whose output is one channel block suffixed ":1block"
    (see ONE_BLOCK); every other op is its own family, its op type with the domain
    tagged ("Softmax", "ms.BiasGelu", "nchwc.MaxPool"); row-wise ops (softmax, normalisations, reductions) over
    rows shorter than SHORT_ROWS are a family of their own ("Softmax:short"), their cost being mostly per row;
    a Transpose that moves runs of LONG_RUN or more elements is "Transpose:long" (contiguous_run).
    """
    tag = _DOMAIN_TAG.get(node.domain, node.domain + ".")
    if op_class == OpClass.MATRIX:
        if node.op_type in ("Gemm", "FusedGemm", "QGemm"):
            return "gemm_bias"  # y = A·B + C: the bias initialises the output, B is usually transposed
        if node.op_type in _GEMM_LIKE:
            return "gemm"
        if node.op_type in _RNN_LIKE:
            return "gru" if node.op_type == "GRU" else "rnn" if node.op_type == "RNN" else "lstm"
        if node.op_type in _CONV_LIKE:
            w = node.in_shape(3 if node.op_type in ("QLinearConv",) else 1)
            group = node.attr("group", 1) or 1
            depthwise = group > 1 and w is not None and len(w) > 1 and w[1] == 1
            grouped = group > 1 and not depthwise
            if tag == "ms.":  # FusedConv runs the plain Conv kernel (im2col + GEMM per group), then its activation
                tag = ""
            if depthwise:
                return tag + ("conv_dw_1x1" if _pointwise(node, w) else "conv_dw")
            if grouped:
                return tag + ("conv_grouped_1x1" if _pointwise(node, w) else "conv_grouped")
            x = node.in_shape(0)
            first_layer = tag == "nchwc." and x is not None and len(x) > 1 and x[1] % 8  # plain NCHW input
            family = "nchwc.conv_nchw" if first_layer else tag + "conv"
            if tag == "nchwc." and w is not None and 0 < w[0] <= _nchwc_block():
                family += ONE_BLOCK
            return family
    if node.op_type == "Transpose" and contiguous_run(node) >= LONG_RUN:
        return f"{tag}Transpose:long"  # whole rows move: a copy of long runs, not a gather of single elements
    if node.op_type in _ROW_WISE:
        x = node.in_shape(0)
        if x and x[-1] < SHORT_ROWS:
            return f"{tag}{node.op_type}:short"  # per-row overheads dominate short rows
    return tag + node.op_type


ONE_BLOCK = ":1block"
"""MLAS's blocked convolution computes up to four output channel blocks per pass over its input; with one
block of outputs it does a quarter of the multiply-adds per input value it loads. Profiled here (AVX-512,
blocks of 16), 16 output channels ran at 142-163 GFLOP/s whatever the input channels (3 to 128), kernel (1x1,
3x3) or image (32^2 to 128^2), against 197-245 for 32 and 211-245 for 64 and more: a family of its own."""


BYTES_TIMED = frozenset({"conv_dw_1x1", "nchwc.conv_dw_1x1"})  # matrix families timed by bytes, not FLOPs
"""A 1x1 depthwise convolution does one multiply-add per element it reads: its intensity is the same at every
size, so a rate curve over intensity cannot tell a cached one from one in DRAM, and a FLOP rate borrowed from
the 3x3 depthwise kernel has it 4-7x too fast (DenseNet-121's 124 such kernels, from its BatchNormalizations:
predicted 1.7 ms, profiled 4.5 ms). Its calibration is bytes per second against working set, like a vector op."""


def _nchwc_block() -> int:
    from planner.ort.executed import nchwc_block_size  # here, not at the top: ort_graph imports the analysis

    return nchwc_block_size()


def bytes_timed(family: str, op_class: str) -> bool:
    """Whether a kernel's calibration is bytes/s over working set (every non-matrix op, and BYTES_TIMED) rather
    than a FLOP rate over intensity: calibration_store.fit and roofline.kernel_time both ask."""
    return op_class != OpClass.MATRIX or family in BYTES_TIMED


def _pointwise(node: NodeInfo, w: tuple | None) -> bool:
    """A 1x1 kernel at stride 1 and no padding: every output pixel reads exactly its own input pixel."""
    kernel = node.attr("kernel_shape") or (list(w[2:]) if w is not None and len(w) > 2 else None)
    if not kernel or any(k != 1 for k in kernel):
        return False
    return all(s == 1 for s in (node.attr("strides") or [1])) and not any(node.attr("pads") or [0])


def kernel_steps(node: NodeInfo) -> int:
    """Sequential steps inside one kernel: an RNN runs its sequence one time step after another."""
    if node.op_type not in _RNN_LIKE:
        return 1
    x = node.in_shape(0)
    if x is None or len(x) != 3:
        return 1
    return max(1, x[1] if node.attr("layout", 0) == 1 else x[0])


def graph_costs(graph: Graph) -> list[NodeCost]:
    return [node_cost(n) for n in graph.nodes]


def build_kernels(graph: Graph, costs: list[NodeCost], fuse_epilogue: bool, fuse_elementwise: bool,
                  dispatch_views: bool = False) -> list[Kernel]:
    """`dispatch_views`: metadata-only nodes are launched too (onnxruntime runs a Reshape node), as kernels that
    move no bytes; otherwise they are no kernel at all."""
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
            if dispatch_views:
                groups.append([i])
                internal.append([])
                anchor_pos.append(i)
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
            family=kernel_family(anchor, costs[members[0]].op_class), steps=kernel_steps(anchor),
            recurrent=shape_of(anchor),
        ))
    return kernels
