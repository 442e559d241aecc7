"""Mutate small valid models the way corruption and hostility do, and plan each one through the CLI.

Mutants are a pure function of (seed, iteration), so any finding replays from two numbers:

    bytes     flip bits, truncate, splice in random bytes, duplicate a chunk of the serialized file
    fields    a reflective walk over every protobuf field that is set: drop a field or a list element,
              duplicate or reorder elements, set integers to edge values (0, -1, 2^31, 2^62, 2^63 - 1, ...),
              floats to NaN/inf, strings to another tensor's name, '', '../escape', an absolute path, garbage
    targeted  the fields attacks go for: a dim, an attribute value, the opset, an external data location

A planned model and a one-line refusal are both fine; anything else (a traceback, an "internal error", a hang,
a stray file) is a crash. harness.outcome gives the verdict; benchmarks/fuzz_models.py runs this for long.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.descriptor import FieldDescriptor
from onnx import TensorProto, helper, numpy_helper

from harness.outcome import CRASHED, Outcome, run_plan_cli
from planner.atomic import write_atomic
from planner.model.walk import iter_graphs

EDGE_INTS = [0, 1, -1, 2, 3, 7, 255, 2**31 - 1, 2**31, 2**32, 2**40, 2**62, 2**63 - 1, -(2**63), -(2**31)]
EDGE_FLOATS = [0.0, -0.0, 1e-45, 1e38, 3.5e38, float("inf"), float("-inf"), float("nan")]
EDGE_STRINGS = ["", "../escape.bin", "/etc/passwd", "a/../../b", "\u00e9\u4e2d\U0001f600", "x" * 5000, "\x00",
                "com.microsoft", "ai.onnx.ml", "Loop", "If"]
F = TensorProto.FLOAT


# ---- seed models: small, valid, and together touching the code paths that read attributes and shapes ------------


def _vi(name: str, shape, t: int = F) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, t, shape)


def _w(name: str, shape, dtype=np.float32) -> TensorProto:
    return numpy_helper.from_array(np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape) % 7, name)


def _model(nodes, inputs, outputs, inits=(), opset: int = 17, extra_opsets=()) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "seed", inputs, outputs, list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset), *extra_opsets])


def seed_mlp() -> onnx.ModelProto:
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["a"]),
             helper.make_node("Gemm", ["a", "w2", "b2"], ["z"], transB=1, alpha=0.5),
             helper.make_node("Softmax", ["z"], ["y"], axis=-1)]
    return _model(nodes, [_vi("x", ["batch", 16])], [_vi("y", ["batch", 8])],
                  [_w("w1", (16, 32)), _w("b1", (32,)), _w("w2", (8, 32)), _w("b2", (8,))])


def seed_cnn() -> onnx.ModelProto:
    nodes = [helper.make_node("Conv", ["x", "k", "kb"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1], group=1,
                              kernel_shape=[3, 3]),
             helper.make_node("BatchNormalization", ["c", "s", "o", "m", "v"], ["bn"], epsilon=1e-5),
             helper.make_node("MaxPool", ["bn"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["g"]), helper.make_node("Flatten", ["g"], ["f"], axis=1),
             helper.make_node("Resize", ["bn", "", "scales"], ["r"], mode="nearest"),
             helper.make_node("ReduceMean", ["r"], ["rm"], axes=[2, 3], keepdims=0),
             helper.make_node("Concat", ["f", "rm"], ["y"], axis=1)]
    return _model(nodes, [_vi("x", ["N", 3, 8, 8])], [_vi("y", None)],
                  [_w("k", (4, 3, 3, 3)), _w("kb", (4,)), _w("s", (4,)), _w("o", (4,)), _w("m", (4,)),
                   numpy_helper.from_array(np.ones(4, np.float32), "v"),
                   numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")], opset=17)


def seed_shapes() -> onnx.ModelProto:
    """Shape arithmetic the way exporters write it: Shape -> Gather -> Concat -> Reshape, Expand, Slice, Range."""
    nodes = [helper.make_node("Shape", ["x"], ["sh"]),
             helper.make_node("Gather", ["sh", "zero"], ["b"], axis=0),
             helper.make_node("Unsqueeze", ["b", "zero_axes"], ["b1"]),
             helper.make_node("Concat", ["b1", "tail"], ["new_shape"], axis=0),
             helper.make_node("Reshape", ["x", "new_shape"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1, 3]),
             helper.make_node("Transpose", ["t"], ["tt"], perm=[0, 1, 3, 2]),
             helper.make_node("MatMul", ["t", "tt"], ["att"]),
             helper.make_node("Softmax", ["att"], ["p"], axis=-1),
             helper.make_node("Slice", ["p", "starts", "ends", "axes"], ["sl"]),
             helper.make_node("Expand", ["bias", "exp_shape"], ["eb"]),
             helper.make_node("Add", ["sl", "eb"], ["s2"]),
             helper.make_node("ConstantOfShape", ["cshape"], ["cz"], value=helper.make_tensor("v", F, [1], [0.5])),
             helper.make_node("Range", ["r0", "r1", "r2"], ["rg"]),
             helper.make_node("Cast", ["rg"], ["rgf"], to=F),
             helper.make_node("Mul", ["s2", "rgf"], ["m"]),
             helper.make_node("Pad", ["m", "pads"], ["pd"], mode="constant"),
             helper.make_node("Tile", ["pd", "reps"], ["tl"]),
             helper.make_node("ReduceSum", ["tl", "rs_axes"], ["y"], keepdims=1),
             helper.make_node("Add", ["cz", "cz"], ["y2"])]
    c = numpy_helper.from_array
    inits = [c(np.array(0, np.int64), "zero"), c(np.array([0], np.int64), "zero_axes"),
             c(np.array([-1, 2, 4], np.int64), "tail"), c(np.array([0], np.int64), "starts"),
             c(np.array([2], np.int64), "ends"), c(np.array([3], np.int64), "axes"),
             c(np.ones((1, 1, 1, 2), np.float32), "bias"), c(np.array([1, 2, 1, 2], np.int64), "exp_shape"),
             c(np.array([2, 3], np.int64), "cshape"), c(np.array(0, np.int64), "r0"), c(np.array(2, np.int64), "r1"),
             c(np.array(1, np.int64), "r2"), c(np.array([0, 0, 0, 0, 0, 0, 0, 1], np.int64), "pads"),
             c(np.array([1, 1, 2, 1], np.int64), "reps"), c(np.array([1], np.int64), "rs_axes")]
    return _model(nodes, [_vi("x", ["batch", "seq", 8])], [_vi("y", None), _vi("y2", None)], inits, opset=18)


def seed_control_flow() -> onnx.ModelProto:
    then_g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["t"])], "then", [], [_vi("t", None)])
    else_g = helper.make_graph([helper.make_node("Relu", ["x"], ["e"])], "else", [], [_vi("e", None)])
    body = helper.make_graph([helper.make_node("Identity", ["cond_in"], ["cond_out"]),
                              helper.make_node("MatMul", ["h_in", "w"], ["h_out"]),
                              helper.make_node("Relu", ["h_out"], ["scan_out"])], "body",
                             [_vi("i", [], TensorProto.INT64), _vi("cond_in", [], TensorProto.BOOL),
                              _vi("h_in", None)],
                             [_vi("cond_out", [], TensorProto.BOOL), _vi("h_out", None), _vi("scan_out", None)])
    scan_body = helper.make_graph([helper.make_node("Add", ["s_in", "x_t"], ["s_out"]),
                                   helper.make_node("Identity", ["s_out"], ["y_t"])], "scan_body",
                                  [_vi("s_in", None), _vi("x_t", None)], [_vi("s_out", None), _vi("y_t", None)])
    nodes = [helper.make_node("If", ["c"], ["a"], then_branch=then_g, else_branch=else_g),
             helper.make_node("Loop", ["M", "cond", "a"], ["h", "hs"], body=body),
             helper.make_node("Scan", ["s0", "h"], ["s", "ys"], body=scan_body, num_scan_inputs=1)]
    inits = [_w("w", (8, 8)), numpy_helper.from_array(np.array(3, np.int64), "M"),
             numpy_helper.from_array(np.array(True), "cond"), numpy_helper.from_array(np.zeros(8, np.float32), "s0")]
    return _model(nodes, [_vi("x", [4, 8]), _vi("c", [], TensorProto.BOOL)],
                  [_vi("s", None), _vi("ys", None), _vi("hs", None)], inits)


def seed_custom_and_external() -> onnx.ModelProto:
    """A custom-domain op and a weight in external data (the file is written beside the mutant)."""
    w = TensorProto(name="w", data_type=F, dims=[16, 16], data_location=TensorProto.EXTERNAL)
    for k, v in (("location", "weights.bin"), ("offset", "0"), ("length", str(16 * 16 * 4))):
        e = w.external_data.add()
        e.key, e.value = k, v
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("FancyNorm", ["h"], ["n"], domain="com.example", eps=1e-3),
             helper.make_node("LayerNormalization", ["n", "g", "bb"], ["y"], axis=-1, epsilon=1e-5)]
    return _model(nodes, [_vi("x", ["batch", "seq", 16])], [_vi("y", None)],
                  [w, _w("g", (16,)), _w("bb", (16,))], opset=17,
                  extra_opsets=[helper.make_opsetid("com.example", 1)])


SEEDS: dict[str, Callable[[], onnx.ModelProto]] = {
    "mlp": seed_mlp, "cnn": seed_cnn, "shapes": seed_shapes, "control_flow": seed_control_flow,
    "custom_external": seed_custom_and_external,
}
SIDE_FILES = {"custom_external": {"weights.bin": bytes(16 * 16 * 4)}}


# ---- mutations ------------------------------------------------------------------------------------------------


def _names(m: onnx.ModelProto) -> list[str]:

    out = []
    for g in iter_graphs(m.graph):
        out += [v.name for v in list(g.input) + list(g.output)] + [t.name for t in g.initializer]
        out += [x for n in g.node for x in list(n.input) + list(n.output)]
    return out or ["x"]


def _repeated(fd: FieldDescriptor) -> bool:
    rep = getattr(fd, "is_repeated", None)  # protobuf >= 5; `label` before (removed in 7)
    return bool(rep) if rep is not None else fd.label == FieldDescriptor.LABEL_REPEATED


def _slots(msg, out: list) -> list:
    """(message, field, index) for every set field, recursively; index None for singular fields."""
    for fd, value in msg.ListFields():
        if _repeated(fd):
            out.append((msg, fd, None))  # the list itself
            for i, v in enumerate(value):
                if fd.type == FieldDescriptor.TYPE_MESSAGE:
                    _slots(v, out)
                else:
                    out.append((msg, fd, i))
        elif fd.type == FieldDescriptor.TYPE_MESSAGE:
            out.append((msg, fd, None))
            _slots(value, out)
        else:
            out.append((msg, fd, None))
    return out


def _scalar(rng: random.Random, fd: FieldDescriptor, old, names: list[str]):
    t = fd.type
    if t == FieldDescriptor.TYPE_BOOL:
        return not old
    if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return rng.choice(EDGE_FLOATS + [old * rng.choice([-1, 2, 1e10])])
    if t == FieldDescriptor.TYPE_STRING:
        return rng.choice(EDGE_STRINGS + [rng.choice(names)] * 6 + [old + "_"])
    if t == FieldDescriptor.TYPE_BYTES:
        b = bytearray(old)
        choice = rng.randrange(4)
        if choice == 0 or not b:
            return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 3, 8, 64])))
        if choice == 1:
            return bytes(b[: rng.randrange(len(b))])
        if choice == 2:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            return bytes(b)
        return bytes(b) * 2
    if t == FieldDescriptor.TYPE_ENUM:
        return rng.choice([v.number for v in fd.enum_type.values])
    v = rng.choice(EDGE_INTS + [old + 1, old - 1, old * 2, rng.randrange(-16, 64)])
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_UINT32):
        v = abs(v)
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        v = max(-(2**31), min(2**31 - 1, v))
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        v = min(2**32 - 1, v)
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        v = min(2**64 - 1, v)
    return max(-(2**63), min(2**63 - 1, v)) if t not in (FieldDescriptor.TYPE_UINT64,) else v


def mutate_fields(m: onnx.ModelProto, rng: random.Random, names: list[str]) -> str:
    slots = _slots(m, [])
    msg, fd, index = rng.choice(slots)
    label = f"{type(msg).__name__}.{fd.name}"
    value = getattr(msg, fd.name)
    if _repeated(fd) and index is None:
        n = len(value)
        op = rng.randrange(4)
        if op == 0 or n == 0:
            msg.ClearField(fd.name)
            return f"clear {label}"
        i = rng.randrange(n)
        if op == 1:
            del value[i]
            return f"drop {label}[{i}]"
        if op == 2 and fd.type == FieldDescriptor.TYPE_MESSAGE:
            value.add().CopyFrom(value[i])
            return f"duplicate {label}[{i}]"
        if op == 2:
            value.append(value[i])
            return f"duplicate {label}[{i}]"
        j = rng.randrange(n)
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            a, b = type(value[i])(), type(value[j])()
            a.CopyFrom(value[i])
            b.CopyFrom(value[j])
            value[i].CopyFrom(b)
            value[j].CopyFrom(a)
        else:
            value[i], value[j] = value[j], value[i]
        return f"swap {label}[{i}] [{j}]"
    if fd.type == FieldDescriptor.TYPE_MESSAGE:
        msg.ClearField(fd.name)
        return f"clear {label}"
    if index is not None:
        value[index] = _scalar(rng, fd, value[index], names)
        return f"set {label}[{index}]"
    if rng.random() < 0.2:
        msg.ClearField(fd.name)
        return f"clear {label}"
    setattr(msg, fd.name, _scalar(rng, fd, value, names))
    return f"set {label}"


def mutate_targeted(m: onnx.ModelProto, rng: random.Random, names: list[str]) -> str:
    """Mutations that a uniform walk reaches rarely: dims, attribute values, the opset, external locations."""

    graphs = list(iter_graphs(m.graph))
    g = rng.choice(graphs)
    kind = rng.randrange(5)
    vis = [v for v in list(g.input) + list(g.output) if v.type.HasField("tensor_type")]
    if kind == 0 and vis:
        v = rng.choice(vis)
        dims = v.type.tensor_type.shape.dim
        if dims and rng.random() < 0.8:
            d = rng.choice(dims)
            if rng.random() < 0.3:
                d.dim_param = rng.choice(["batch", "seq", "N", "", "x:0"])
            else:
                d.dim_value = rng.choice(EDGE_INTS + [rng.randrange(0, 9)])
        else:
            dims.add().dim_value = rng.choice([1, 2, 2**31])
        return f"dim of {v.name}"
    nodes_with_attrs = [n for n in g.node if n.attribute]
    if kind == 1 and nodes_with_attrs:
        n = rng.choice(nodes_with_attrs)
        a = rng.choice(list(n.attribute))
        if a.type == onnx.AttributeProto.INT:
            a.i = rng.choice(EDGE_INTS)
        elif a.type == onnx.AttributeProto.INTS:
            a.ints[:] = [rng.choice(EDGE_INTS) for _ in range(rng.randrange(0, 6))]
        elif a.type == onnx.AttributeProto.FLOAT:
            a.f = rng.choice(EDGE_FLOATS)
        elif a.type == onnx.AttributeProto.STRING:
            a.s = rng.choice(EDGE_STRINGS).encode("utf-8", "surrogatepass")
        else:
            a.type = rng.choice([onnx.AttributeProto.INT, onnx.AttributeProto.FLOATS, onnx.AttributeProto.STRING])
        return f"attribute {n.op_type}.{a.name}"
    if kind == 2:
        o = rng.choice(list(m.opset_import))
        o.version = rng.choice([0, 1, 6, 7, 9, 11, 13, 17, 21, onnx.defs.onnx_opset_version(), 99, -1])
        return f"opset {o.domain or 'ai.onnx'}"
    ext = [t for gg in graphs for t in gg.initializer if t.data_location == TensorProto.EXTERNAL]
    if kind == 3 and ext:
        e = rng.choice(list(rng.choice(ext).external_data))
        e.value = rng.choice(EDGE_STRINGS + ["weights.bin", str(rng.choice(EDGE_INTS)), "-5", "1e3"])
        return f"external {e.key}"
    inits = list(g.initializer)
    if inits:
        t = rng.choice(inits)
        if t.dims:
            t.dims[rng.randrange(len(t.dims))] = rng.choice(EDGE_INTS)
        else:
            t.dims.append(rng.choice(EDGE_INTS))
        return f"initializer dims {t.name}"
    return "none"


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    b = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0 and b:
        for _ in range(rng.choice([1, 1, 2, 4, 8])):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b), "bit flips"
    if kind == 1 and b:
        return bytes(b[: rng.randrange(len(b))]), "truncate"
    if kind == 2:
        at = rng.randrange(len(b) + 1)
        return bytes(b[:at]) + bytes(rng.randrange(256) for _ in range(rng.choice([1, 4, 16]))) + bytes(b[at:]), \
            "splice random bytes"
    if b:
        at, n = rng.randrange(len(b)), rng.randrange(1, 64)
        return bytes(b[:at]) + bytes(b[at:at + n]) * 2 + bytes(b[at + n:]), "duplicate chunk"
    return data, "none"


@dataclass(frozen=True)
class Mutant:
    seed_name: str
    data: bytes
    steps: tuple[str, ...]
    side_files: dict[str, bytes] = field(default_factory=dict)


def mutant(seed: int, iteration: int) -> Mutant:
    """The mutant for (seed, iteration): the same two numbers always give the same bytes."""
    rng = random.Random(f"{seed}:{iteration}")
    name = rng.choice(sorted(SEEDS))
    m = SEEDS[name]()
    names = _names(m)
    steps = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        r = rng.random()
        try:
            steps.append(mutate_targeted(m, rng, names) if r < 0.45 else mutate_fields(m, rng, names))
        except (ValueError, TypeError, IndexError, OverflowError) as e:  # protobuf refused this value: try another
            steps.append(f"skipped ({type(e).__name__})")
    data = m.SerializeToString()
    if rng.random() < 0.25:
        data, step = mutate_bytes(data, rng)
        steps.append(step)
    return Mutant(name, data, tuple(steps), dict(SIDE_FILES.get(name, {})))


def args_for(seed: int, iteration: int) -> list[str]:
    """Mostly the fast path (no pass pipelines, a short sweep); sometimes the full default CLI."""
    rng = random.Random(f"args:{seed}:{iteration}")
    args = ["--target", rng.choice(["a10g", "a10g,t4", "host", "c7i-xlarge"]), "--json"]
    if rng.random() < 0.85:
        args += ["--passes", "none", "--max-batch", str(rng.choice([1, 4]))]
    if rng.random() < 0.2:
        args += ["--batch", str(rng.choice([1, 3]))]
    if rng.random() < 0.1:
        args += ["--loop-trips", "5"]
    return args


def run_mutant(mt: Mutant, folder: Path, args: list[str], timeout_s: float = 60.0, watch: Path | None = None
               ) -> Outcome:
    """Write the mutant (and its side files) into `folder`, plan it, and clean up after."""
    folder.mkdir(parents=True, exist_ok=True)
    p = write_atomic(folder / "mutant.onnx", mt.data)
    for fname, content in mt.side_files.items():
        write_atomic(folder / fname, content)
    written = {p.name, *mt.side_files}
    try:
        outcome = run_plan_cli(p, args, timeout_s, watch=watch)
        stray = sorted(c.name for c in folder.iterdir() if c.name not in written)
        if stray:  # nothing may appear beside the model either
            return Outcome(CRASHED, outcome.exit_code, f"left stray files beside the model: {', '.join(stray)}")
        return outcome
    finally:
        for child in folder.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
