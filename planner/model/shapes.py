"""Bind symbolic dims to numbers and infer every tensor's shape.

onnx's shape inference runs first (with data propagation, so Reshape targets computed from Shape ops resolve);
where it leaves dims unknown, typically after com.microsoft ops it has no schema for, onnxruntime's symbolic
shape inference fills them. Weights are stripped from the copy that inference sees, so binding a model with
large embedded weights does not copy them through protobuf serialisation on every batch size.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

import onnx

from planner.errors import DimError
from planner.model.walk import iter_graphs

BATCH_DEFAULT, SEQUENCE_DEFAULT, IMAGE_DEFAULT, OTHER_DEFAULT = 1, 128, 224, 1
MAX_DIM = 1 << 40

_BATCH = re.compile(r"^(n|b|bs|batch|batch_?size|batches|num_?batch\w*|.*batch.*)$", re.I)
_PAST = re.compile(r"past", re.I)
_TOTAL = re.compile(r"total|all_?seq|kv_?seq|present", re.I)
_SEQ = re.compile(r"seq|length|len$|tokens?|time|steps|^s$|^t$|^l$|context|position", re.I)
_IMAGE = re.compile(r"^(h|w|height|width|img_?\w*|image_?\w*)$", re.I)

_KEEP_INITIALIZER_BYTES = 1024  # shape-like constants inference may read stay; weights go
_KEEP_SHAPE_LIKE = 4096  # a 1-D int table longer than this is an index table, not a shape: its values go too


@dataclass
class DimSpec:
    """The symbolic dims of a model's inputs and how each was classified."""

    names: list[str]  # in first-seen order
    batch: str | None  # the dim --batch binds
    fixed_batch: int | None  # when the model's batch is a number, not a name
    kinds: dict[str, str] = field(default_factory=dict)  # name -> batch / sequence / past / total / image / other


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in inits]


def _classify(name: str) -> str:
    if _BATCH.match(name):
        return "batch"
    if _PAST.search(name):
        return "past"
    if _TOTAL.search(name):
        return "total"
    if _SEQ.search(name):
        return "sequence"
    if _IMAGE.match(name):
        return "image"
    return "other"


_ARITHMETIC = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
               ast.FloorDiv: lambda a, b: a // b}


def _expression(name: str) -> ast.expr | None:
    """A dim named by arithmetic on other dims ("past_sequence_length + sequence_length", "s0 + s1", "2*seq"),
    as exporters name an attention mask's length; None for a plain name."""
    if not any(op in name for op in "+-*/"):
        return None
    try:
        tree = ast.parse(name, mode="eval").body
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
            continue
        if isinstance(node, (ast.Name, ast.Load, ast.operator)) or (
                isinstance(node, ast.Constant) and isinstance(node.value, int)):
            continue
        return None
    return tree if isinstance(tree, ast.BinOp) else None


def _symbols(tree: ast.expr) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _evaluate(tree: ast.expr, values: dict[str, int]) -> int:
    if isinstance(tree, ast.BinOp):
        return _ARITHMETIC[type(tree.op)](_evaluate(tree.left, values), _evaluate(tree.right, values))
    if isinstance(tree, ast.Name):
        return values[tree.id]
    return int(tree.value)  # ast.Constant, checked by _expression


def anonymous_dim_name(input_name: str, axis: int) -> str:
    return f"{input_name}:{axis}"


def dim_spec(model: onnx.ModelProto) -> DimSpec:
    names: list[str] = []
    first_axis: dict[str, int] = {}
    axis0_values: set[int] = set()
    for vi in _graph_inputs(model):
        if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
            continue
        for axis, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.HasField("dim_value"):
                if axis == 0:
                    axis0_values.add(d.dim_value)
                continue
            name = d.dim_param or anonymous_dim_name(vi.name, axis)
            if name not in first_axis:
                names.append(name)
                first_axis[name] = axis
    kinds = {n: _classify(n) for n in names}
    for n in names:
        tree = _expression(n)
        if tree is not None and _symbols(tree) and _symbols(tree) <= set(names) - {n}:
            kinds[n] = "expression"  # its value follows from the others' (bind_dims)
    batch = next((n for n in names if kinds[n] == "batch"), None)
    if batch is None:  # an unnamed or oddly named leading dim shared by inputs is the batch
        lead = [n for n in names if first_axis[n] == 0 and kinds[n] in ("other",)]
        if lead:
            batch = lead[0]
            kinds[batch] = "batch"
    fixed = None
    if batch is None and len(axis0_values) == 1:
        fixed = next(iter(axis0_values))
    return DimSpec(names=names, batch=batch, fixed_batch=fixed, kinds=kinds)


@dataclass
class Binding:
    values: dict[str, int]  # every symbolic dim -> its number
    defaults_used: list[str]  # "name=value (why)" for each dim the user did not bind
    batch: int


def bind_dims(spec: DimSpec, user: dict[str, int], batch: int | None) -> Binding:
    """Give every symbolic dim a number: the user's, or a stated default."""
    for k, v in user.items():
        if v == 0 and spec.kinds.get(k) == "past":
            continue  # an empty KV cache: a decoder's prefill binds its past length to 0
        if v <= 0 or v > MAX_DIM:
            zero = " (0 only for a past / KV cache length)" if v == 0 else ""
            raise DimError(f"--dim {k}={v}: a dim must be a positive integer up to {MAX_DIM}{zero}")
    unknown = [k for k in user if k not in spec.names]
    if unknown:
        known = ", ".join(spec.names) or "none (all dims are fixed)"
        raise DimError(f"--dim {unknown[0]}: the model has no such symbolic dim (it has: {known})")
    if batch is not None and batch <= 0:
        raise DimError(f"--batch {batch}: must be a positive integer")
    values: dict[str, int] = {}
    defaults: list[str] = []
    if spec.batch and batch is not None:
        if spec.batch in user and user[spec.batch] != batch:
            raise DimError(f"--batch {batch} contradicts --dim {spec.batch}={user[spec.batch]}")
        values[spec.batch] = batch
    values.update(user)
    derived_total = []
    for name in spec.names:
        if name in values:
            continue
        kind = spec.kinds[name]
        if kind == "total":
            derived_total.append(name)
        if kind in ("total", "expression"):  # computed from the others below
            continue
        default = {"batch": BATCH_DEFAULT, "sequence": SEQUENCE_DEFAULT, "past": SEQUENCE_DEFAULT,
                   "image": IMAGE_DEFAULT}.get(kind, OTHER_DEFAULT)
        values[name] = default
        defaults.append(f"{name}={default} ({kind} default)")
    for name in derived_total:
        past = sum(values[n] for n in spec.names if spec.kinds[n] == "past")
        seq = sum(values[n] for n in spec.names if spec.kinds[n] == "sequence")
        values[name] = past + seq if past + seq else SEQUENCE_DEFAULT
        defaults.append(f"{name}={values[name]} (total = past + sequence)")
    for name in spec.names:
        if spec.kinds[name] != "expression":
            continue
        tree = _expression(name)
        follows = _evaluate(tree, values) if tree is not None and _symbols(tree) <= values.keys() else None
        if follows is None:
            continue
        if name in user and user[name] != follows:
            raise DimError(f"--dim '{name}'={user[name]} contradicts the dims it is computed from "
                           f"({', '.join(f'{k}={values[k]}' for k in sorted(_symbols(tree)))} give {follows})")
        if follows <= 0 and name not in user:
            raise DimError(f"dim '{name}' comes to {follows} with the dims bound: bind them so it is positive")
        if name not in user:
            values[name] = follows
            defaults.append(f"{name}={follows} (computed from the other dims)")
    b = values.get(spec.batch, 0) if spec.batch else (spec.fixed_batch or 1)
    return Binding(values=values, defaults_used=defaults, batch=b)


def skeleton(model: onnx.ModelProto) -> tuple[onnx.ModelProto, set[str]]:
    """A copy whose large weights are declared as typed graph inputs instead of carrying bytes.

    Inference needs a weight's dims and dtype, never its values (except small shape-like constants, which
    stay). Declaring the rest as inputs keeps both onnx's and onnxruntime's inference from reading or copying
    payloads, external ones included. Returns the copy and the names of the weights it turned into inputs.
    """
    sk = onnx.ModelProto()
    sk.CopyFrom(model)
    g = sk.graph
    declared = {i.name for i in g.input}
    keep, moved = [], set()
    for t in g.initializer:
        small = t.data_location != onnx.TensorProto.EXTERNAL and t.ByteSize() <= _KEEP_INITIALIZER_BYTES
        shape_like = t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32) and len(t.dims) <= 1 \
            and t.data_location != onnx.TensorProto.EXTERNAL and (not t.dims or t.dims[0] <= _KEEP_SHAPE_LIKE)
        if small or shape_like:
            keep.append(t)
            continue
        moved.add(t.name)
        if t.name not in declared:
            g.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    if moved:
        kept = [onnx.TensorProto() for _ in keep]
        for dst, src in zip(kept, keep, strict=False):
            dst.CopyFrom(src)
        del g.initializer[:]
        g.initializer.extend(kept)
    return sk, moved


def apply_binding(sk: onnx.ModelProto, spec: DimSpec, binding: Binding, fixed_batch_override: bool,
                  weights: set[str] = frozenset()) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(sk)
    inits = {t.name for t in m.graph.initializer} | set(weights)
    for vi in m.graph.input:
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        for axis, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.HasField("dim_value"):
                if axis == 0 and fixed_batch_override and d.dim_value == spec.fixed_batch:
                    d.dim_value = binding.batch
                continue
            name = d.dim_param or anonymous_dim_name(vi.name, axis)
            d.dim_value = binding.values[name]
    # Stale intermediate shapes would conflict with the new binding: inference recomputes them all.
    del m.graph.value_info[:]
    if fixed_batch_override:  # declared outputs carry the old fixed batch
        for vi in m.graph.output:
            if vi.type.HasField("tensor_type"):
                vi.type.tensor_type.ClearField("shape")
    return m


def mark_dynamic(model: onnx.ModelProto) -> int:
    """Turn every declared dim of -1 into an unnamed symbolic dim, in place; returns how many there were.

    Some exporters write -1 for "any size"; onnxruntime reads it as a dynamic dim (a session reports it as
    None), so the planner binds it like any other symbolic dim (an input's is named "input:axis"). Other
    negative dims stay what they are: invalid, and planner.model.limits refuses them."""
    count = 0
    for g in iter_graphs(model.graph):
        for vi in [*g.input, *g.output, *g.value_info]:
            if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
                continue
            for d in vi.type.tensor_type.shape.dim:
                if d.HasField("dim_value") and d.dim_value == -1:
                    d.ClearField("dim_value")
                    count += 1
    return count
