"""The microbenchmark models: tiny ONNX graphs built in memory (never a user's model), one Bench each.

Each is run the way `plan validate` runs a model (planner.ort.session.session_options) and its optimized graph
is costed with the same formulas a prediction uses, so a measured time and a predicted time talk about the same
FLOPs and bytes of the same nodes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


MS = "com.microsoft"


F = TensorProto.FLOAT


def make(nodes, inputs, outputs, inits=(), ms: bool = False) -> bytes:
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid(MS, 1)] if ms else [])
    g = helper.make_graph(nodes, "bench", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=opsets, ir_version=8).SerializeToString()


def vi(name: str, shape: Sequence[int], elem: int = F):
    return helper.make_tensor_value_info(name, elem, list(shape))


def rand(shape: Sequence[int], seed: int, dtype=np.float32) -> np.ndarray:
    """Seeded values; past a million elements a random block repeated (drawing 32 M normals takes seconds,
    and no kernel's speed depends on the values)."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    n = min(size, 1 << 20)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        block = rng.integers(max(info.min, -8), min(info.max, 8), size=n).astype(dtype)
    else:
        block = (rng.standard_normal(n) * 0.1).astype(dtype)
    return block.reshape(shape) if n == size else np.resize(block, shape)


def weight(name: str, shape: Sequence[int], seed: int = 1, dtype=np.float32):
    return numpy_helper.from_array(rand(shape, seed, dtype), name)


@dataclass
class Bench:
    label: str
    model: bytes
    feeds: dict[str, np.ndarray]


def chain(n: int, ios: int = 1, size: int = 16) -> Bench:
    """`ios` parallel chains of n/ios tiny Relu nodes, each with its own input and output."""
    nodes, ins, outs, feeds = [], [], [], {}
    per = max(1, n // ios)
    for c in range(ios):
        prev = f"x{c}"
        ins.append(vi(prev, [size]))
        feeds[prev] = np.ones(size, np.float32)
        for i in range(per):
            out = f"y{c}" if i == per - 1 else f"t{c}_{i}"
            nodes.append(helper.make_node("Relu", [prev], [out], name=f"relu{c}_{i}"))
            prev = out
        outs.append(vi(f"y{c}", [size]))
    return Bench(f"chain n={per * ios} io={ios}", make(nodes, ins, outs), feeds)


def single(label: str, op: str, inputs: Sequence[tuple[str, Sequence[int], int]], out_shape: Sequence[int] | None,
           inits=(), attrs: dict | None = None, domain: str = "", out_elem: int = F, copies: int = 1,
           order: Sequence[str] | None = None) -> Bench:
    """One node; `inputs` are (name, shape, elem type) fed at run time; `inits` are weights.

    `copies` > 1 puts that many nodes side by side on the same inputs, each with its own copy of the weights
    (perturbed, so no runtime merges them): as in a network, a node's weights are not the ones the
    previous node just read, so they come from wherever the others left them, not from L1.
    """
    feeds = {}
    vis = []
    for i, (name, shape, elem) in enumerate(inputs):
        vis.append(vi(name, shape, elem))
        dtype = helper.tensor_dtype_to_np_dtype(elem)
        feeds[name] = rand(shape, 10 + i, dtype) if elem != TensorProto.INT64 else np.zeros(shape, np.int64)
    nodes, outs, all_inits = [], [], []
    for c in range(copies):
        suffix = f"_{c}" if c else ""
        own = []
        for t in inits:
            arr = numpy_helper.to_array(t)
            if c and arr.dtype == np.float32 and arr.size > 1:
                arr = arr + np.float32(c * 1e-3)
            own.append(numpy_helper.from_array(arr, t.name + suffix))
        all_inits += own
        renamed = {t.name: o.name for t, o in zip(inits, own, strict=True)}
        ins = [renamed.get(x, x) for x in order] if order else [name for name, _, _ in inputs] + [t.name for t in own]
        out = f"out{c}"
        nodes.append(helper.make_node(op, ins, [out], name=f"bench{c}", domain=domain, **(attrs or {})))
        outs.append(helper.make_tensor_value_info(out, out_elem, None if out_shape is None else list(out_shape)))
    return Bench(label, make(nodes, vis, outs, all_inits, ms=domain == MS), feeds)


def chain_steps() -> dict[str, Callable[[int, str, str], tuple[list, list]]]:
    """Shape-preserving steps on a [16, 16] tensor, for chains of tiny nodes of one family."""
    def unary(op, domain="", **kw):
        return lambda i, p, o: ([helper.make_node(op, [p], [o], domain=domain, **kw)], [])

    def with_const(op, shape=(16, 16), domain="", **kw):
        return lambda i, p, o: ([helper.make_node(op, [p, f"c{i}"], [o], domain=domain, **kw)],
                                [weight(f"c{i}", shape, i)])

    def layer_norm(i, p, o):
        return ([helper.make_node("LayerNormalization", [p, f"g{i}", f"b{i}"], [o], axis=-1)],
                [weight(f"g{i}", [16], i), weight(f"b{i}", [16], i + 1)])

    def skip_ln(i, p, o):
        return ([helper.make_node("SkipLayerNormalization", [p, f"s{i}", f"g{i}", f"b{i}"], [o], domain=MS)],
                [weight(f"s{i}", [16, 16], i), weight(f"g{i}", [16], i), weight(f"b{i}", [16], i + 1)])

    def where(i, p, o):
        return ([helper.make_node("Where", [f"m{i}", p, f"c{i}"], [o])],
                [numpy_helper.from_array(np.arange(256).reshape(16, 16) % 3 > 0, f"m{i}"),
                 weight(f"c{i}", [16, 16], i)])

    def concat_slice(i, p, o):
        ints = [numpy_helper.from_array(np.array([v], np.int64), f"{k}{i}") for k, v in
                (("st", 0), ("en", 16), ("ax", 1))]
        return ([helper.make_node("Concat", [p, f"c{i}"], [f"cat{i}"], axis=1),
                 helper.make_node("Slice", [f"cat{i}", f"st{i}", f"en{i}", f"ax{i}"], [o])],
                [weight(f"c{i}", [16, 4], i), *ints])

    def gemm_bias(i, p, o):  # y = x·W + b, as classifiers and MLPs end: its own fixed cost, not the class median
        return ([helper.make_node("Gemm", [p, f"w{i}", f"b{i}"], [o])], [weight(f"w{i}", [16, 16], i),
                                                                        weight(f"b{i}", [16], i + 1)])

    def conv(group, channels=16):
        def step(i, p, o):
            return ([helper.make_node("Conv", [p, f"w{i}"], [o], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                      group=group)], [weight(f"w{i}", [channels, channels // group, 3, 3], i)])
        return step

    return {
        "Relu": unary("Relu"), "Sigmoid": unary("Sigmoid"), "Tanh": unary("Tanh"), "Erf": unary("Erf"),
        "Exp": unary("Exp"), "Sqrt": unary("Sqrt"), "Reciprocal": unary("Reciprocal"), "Neg": unary("Neg"),
        "Softmax": unary("Softmax", axis=-1), "Add": with_const("Add"), "Sub": with_const("Sub"),
        "Mul": with_const("Mul"), "Div": with_const("Div"), "Pow": with_const("Pow", ()),
        "LayerNormalization": layer_norm, "ms.SkipLayerNormalization": skip_ln, "Where": where,
        "ms.BiasGelu": with_const("BiasGelu", (16,), domain=MS), "ms.QuickGelu": unary("QuickGelu", domain=MS),
        "ms.FastGelu": with_const("FastGelu", (16,), domain=MS), "gemm": with_const("MatMul"),
        "gemm_bias": gemm_bias,
        "Concat+Slice": concat_slice, "nchwc.conv": conv(1, _CHAIN_CHANNELS["nchwc.conv"]),
        "nchwc.conv:1block": conv(1), "nchwc.conv_dw": conv(16),
    }


_CHAIN_CHANNELS = {"nchwc.conv": 32}  # two channel blocks with AVX-512: not families.ONE_BLOCK


def tiny_chain(name: str, n: int) -> Bench:
    """n nodes of one family on a [16, 16] tensor (a [1, 16, 8, 8] image for convolutions), chained."""
    step = chain_steps()[name]
    shape = [1, _CHAIN_CHANNELS.get(name, 16), 8, 8] if "conv" in name else [16, 16]
    nodes, inits, prev = [], [], "x"
    for i in range(n):
        out = "y" if i == n - 1 else f"t{i}"
        ns, its = step(i, prev, out)
        nodes += ns
        inits += its
        prev = out
    return Bench(f"tiny {name} x{n}", make(nodes, [vi("x", shape)], [vi("y", shape)], inits, ms=True),
                 {"x": rand(shape, 7)})


def if_chain(n: int, size: int = 16) -> Bench:
    """n tiny Adds in a row, each inside an If (then: the Add, else: a Sub), so that what an If call costs beyond
    its nodes can be told from what they are predicted to take."""
    nodes, prev = [], "x"
    for i in range(n):
        out = "y" if i == n - 1 else f"t{i}"
        then_g = helper.make_graph([helper.make_node("Add", [prev, prev], [f"a{i}"], name=f"add{i}")], f"then{i}",
                                   [], [vi(f"a{i}", [size, size])])
        else_g = helper.make_graph([helper.make_node("Sub", [prev, prev], [f"s{i}"], name=f"sub{i}")], f"else{i}",
                                   [], [vi(f"s{i}", [size, size])])
        nodes.append(helper.make_node("If", ["c"], [out], name=f"if{i}", then_branch=then_g, else_branch=else_g))
        prev = out
    return Bench(f"if-wrapped adds x{n}",
                 make(nodes, [vi("x", [size, size]), vi("c", [], TensorProto.BOOL)], [vi("y", [size, size])]),
                 {"x": rand([size, size], 7), "c": np.array(True)})


def loop_chain(trips: int, size: int = 16) -> Bench:
    """A Loop of `trips` iterations whose body is one tiny Add (and the condition passed through), so that what
    an iteration costs beyond its nodes can be told from what they are predicted to take."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["h", "h"], ["h_out"])],
        "body", [vi("i", [], TensorProto.INT64), vi("cond_in", [], TensorProto.BOOL), vi("h", [size, size])],
        [vi("cond_out", [], TensorProto.BOOL), vi("h_out", [size, size])])
    inits = [numpy_helper.from_array(np.array(trips, np.int64), "M"), numpy_helper.from_array(np.array(True), "c")]
    node = helper.make_node("Loop", ["M", "c", "x"], ["y"], name="loop", body=body)
    return Bench(f"loop of adds x{trips}", make([node], [vi("x", [size, size])], [vi("y", [size, size])], inits),
                 {"x": rand([size, size], 7)})


SUBGRAPH_BENCHES = {"If": if_chain, "Loop": loop_chain}  # op -> its bench of n body runs


def weight_chain_label(k: int, length: int, transposed: bool = False, rows: int = 1, int8: bool = False) -> str:
    """weight_chain's label, without building its weights (a chain of 24 1024 x 1024 layers is 96 MiB)."""
    op = "DynamicQuantizeMatMul" if int8 else "Gemm" if transposed else "MatMul"
    return f"{op} weights chain {k}x{k} x{length}" + (f" rows {rows}" if rows > 1 else "")


def weight_chain(k: int, length: int, transposed: bool = False, rows: int = 1, int8: bool = False) -> Bench:
    """`length` GEMVs [1, k] x [k, k] in sequence, each with weights of its own (with `rows`, GEMMs of that
    many rows: a decoder's step at a batch of that many sequences).

    In a model a layer's weights are read once per inference with every other layer's read in between, so they
    come from wherever a working set of all the model's weights lives, not from L1 as a lone GEMV run in a loop
    would have them. A chain reproduces that, and its end-to-end time (no profiler: a small GEMV takes less
    than the profiler's microsecond) divided by its length is what one such node costs inside a model.

    `int8`: DynamicQuantizeMatMul nodes over int8 weights, as quantize_dynamic ships a decoder's layers."""
    nodes, inits, prev = [], [], "x"
    for i in range(length):
        out = "y" if i == length - 1 else f"t{i}"
        if int8:
            nodes.append(helper.make_node("DynamicQuantizeMatMul", [prev, f"w{i}", f"s{i}", f"z{i}"], [out],
                                          name=f"gemv{i}", domain=MS))
            inits += [weight(f"w{i}", [k, k], i + 1, np.int8), scalar(f"s{i}", [0.01], np.float32),
                      scalar(f"z{i}", [0], np.int8)]
        else:
            nodes.append(helper.make_node("Gemm", [prev, f"w{i}"], [out], name=f"gemv{i}", transB=1) if transposed
                         else helper.make_node("MatMul", [prev, f"w{i}"], [out], name=f"gemv{i}"))
            inits.append(weight(f"w{i}", [k, k], i + 1))
        prev = out
    return Bench(weight_chain_label(k, length, transposed, rows, int8),
                 make(nodes, [vi("x", [rows, k])], [vi("y", [rows, k])], inits, ms=int8),
                 {"x": rand([rows, k], 3)})


CHAIN_LENGTH = 16


def activation_chain(h: int, m: int, k: int, length: int = CHAIN_LENGTH) -> Bench:
    """`length` batched MatMuls x [h, m, k] x b [h, k, k] in sequence, b one input shared by all."""
    nodes, prev = [], "x"
    for i in range(length):
        out = "y" if i == length - 1 else f"t{i}"
        nodes.append(helper.make_node("MatMul", [prev, "b"], [out], name=f"bmm{i}"))
        prev = out
    return Bench(f"batched MatMul chain {h}x{m}x{k}x{k} x{length}",
                 make(nodes, [vi("x", [h, m, k]), vi("b", [h, k, k])], [vi("y", [h, m, k])]),
                 {"x": rand([h, m, k], 3), "b": rand([h, k, k], 4)})


# A transformer-like block of small nodes, repeated: a few blocks and many, so that the difference per node is free
# of the per-run cost (mixed_residual in planner.calibration.fit)
MIXED_BLOCKS = (4, 24)


def int_init(name: str, values: Sequence[int]):
    return numpy_helper.from_array(np.array(values, np.int64), name)


def mixed_graph(blocks: int, d: int = 64, rows: int = 1) -> Bench:
    """`blocks` repeats of the kind of small-node sequence a decoder export is made of, on [1, rows, d]: scale,
    an RMS-style normalisation (ReduceMean, Sqrt, Div), heads split and merged (Reshape, Transpose), Softmax, a
    rotary-style half swap (Slice, Neg, Concat), Unsqueeze/Squeeze, a residual Add and a small MatMul.

    Chains of one family each (tiny_chain) measure what a node of that kind costs among its own kind; in a
    graph of mixed kinds, each node costs somewhat more (its inputs and outputs are other shapes, the arena
    hands out other blocks). What no family accounts for, per node, is the graph's node overhead. One row (a
    decode step's shapes): with the smallest tensors the residual is the node's alone (measured here: 70 ns a
    node at one row, 121 ns at eight, where work that the families' curves extrapolate below their smallest
    working set is in it too)."""
    nodes = []
    inits = [int_init("sh4", [1, rows, 4, d // 4]), int_init("sh3", [1, rows, d]), int_init("z", [0]),
             int_init("h", [d // 2]), int_init("e", [d]), int_init("ax", [2]), int_init("ax1", [1])]
    prev = "x"
    for i in range(blocks):
        p = f"b{i}_"
        inits += [weight(p + "c", [d], i + 1), weight(p + "w", [d, d], i + 2)]
        nodes += [
            helper.make_node("Mul", [prev, p + "c"], [p + "m"]),
            helper.make_node("ReduceMean", [p + "m"], [p + "rm"], axes=[-1]),
            helper.make_node("Sqrt", [p + "rm"], [p + "sq"]),
            helper.make_node("Div", [p + "m", p + "sq"], [p + "n"]),
            helper.make_node("Reshape", [p + "n", "sh4"], [p + "r"]),
            helper.make_node("Transpose", [p + "r"], [p + "t"], perm=[0, 2, 1, 3]),
            helper.make_node("Softmax", [p + "t"], [p + "s"], axis=-1),
            helper.make_node("Transpose", [p + "s"], [p + "u"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", [p + "u", "sh3"], [p + "v"]),
            helper.make_node("Slice", [p + "v", "z", "h", "ax"], [p + "lo"]),
            helper.make_node("Slice", [p + "v", "h", "e", "ax"], [p + "hi"]),
            helper.make_node("Neg", [p + "hi"], [p + "nh"]),
            helper.make_node("Concat", [p + "nh", p + "lo"], [p + "cat"], axis=-1),
            helper.make_node("Unsqueeze", [p + "cat", "ax1"], [p + "us"]),
            helper.make_node("Squeeze", [p + "us", "ax1"], [p + "sqz"]),
            helper.make_node("Add", [p + "sqz", prev], [p + "res"]),
            helper.make_node("MatMul", [p + "res", p + "w"], ["y" if i == blocks - 1 else p + "out"]),
        ]
        prev = p + "out"
    return Bench(f"mixed x{blocks}", make(nodes, [vi("x", [1, rows, d])], [vi("y", [1, rows, d])], inits),
                 {"x": rand([1, rows, d], 6)})


def scalar(name: str, value, dtype) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype), name)
