"""Shapes that hang on computed values: evaluate the small side computations onnx's propagation does not carry.

onnx's data propagation carries values through Shape, Gather, Concat, Unsqueeze, Add, Mul and a few more, but
not through Div, Where, Equal, Range, Cast to float and back or Floor, which exporters use to compute a
Resize's sizes (DPT's position-embedding interpolation), an Expand's target (rotary tables) or a Reshape's
target; onnxruntime's optimized graph, whose names differ from the model's, loses even the chains onnx could
follow. Once every input dim is bound those values are plain numbers, so the nodes that compute them are
evaluated (by onnx's reference implementation, not a second one) and a copy of the model in which they are
Constants gives onnx's inference what it needs. The copy serves inference only: the planner still costs the
original nodes, which onnxruntime runs on every inference.

A value is kept only while it is small (MAX_VALUE_NUMEL elements), so a ConstantOfShape or Range of a bound
dim never materializes a large tensor (planner.model.propagation has the history).
"""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import onnx
from onnx import helper, numpy_helper

MAX_VALUE_NUMEL = 1 << 16
_DEFAULT_DOMAINS = ("", "ai.onnx")
_NEVER = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
          "If", "Loop", "Scan", "Constant", "SequenceConstruct", "SequenceInsert", "SequenceAt", "SplitToSequence",
          "ConcatFromSequence", "SequenceEmpty", "Optional", "OptionalGetElement", "OptionalHasElement"}
# ops whose output can be much larger than their inputs: evaluated only where inference already says it is small
_EXPANDING = {"ConstantOfShape", "Range", "Expand", "Tile", "Pad", "Resize", "Upsample", "OneHot", "EyeLike",
              "MatMul", "Gemm", "Einsum", "Col2Im"}


def _shapes(m: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    out: dict[str, tuple[int, ...]] = {}
    for vi in list(m.graph.input) + list(m.graph.value_info) + list(m.graph.output):
        tt = vi.type.tensor_type
        if vi.type.HasField("tensor_type") and tt.HasField("shape") and all(
            d.HasField("dim_value") and d.dim_value >= 0 for d in tt.shape.dim
        ):
            out[vi.name] = tuple(d.dim_value for d in tt.shape.dim)
    for t in m.graph.initializer:
        out[t.name] = tuple(t.dims)
    return out


def _array(t: onnx.TensorProto) -> np.ndarray | None:
    """A small constant's value, or None where it cannot be read (an undefined type, data that does not fit
    its shape): such a value stays unknown here, and the loader's checks say what is wrong with it."""
    if math.prod(t.dims) > MAX_VALUE_NUMEL or t.data_location == onnx.TensorProto.EXTERNAL:
        return None
    try:
        return numpy_helper.to_array(t)
    except Exception:  # onnx raises TypeError, ValueError or its own errors for corrupt tensors
        return None


def _initial_values(m: onnx.ModelProto) -> dict[str, np.ndarray]:
    values: dict[str, np.ndarray] = {}
    for t in m.graph.initializer:
        a = _array(t)
        if a is not None:
            values[t.name] = a
    for n in m.graph.node:
        if n.op_type == "Constant" and n.domain in _DEFAULT_DOMAINS and n.output:
            for attr in n.attribute:
                a = _array(attr.t) if attr.name == "value" else None
                if a is not None:
                    values[n.output[0]] = a
    return values


def _shape_value(n: onnx.NodeProto, shape: tuple[int, ...]) -> np.ndarray:
    attrs = {a.name: a.i for a in n.attribute}
    r = len(shape)
    start, end = attrs.get("start", 0), attrs.get("end", r)
    start = max(0, min(r, start + r if start < 0 else start))
    end = max(0, min(r, end + r if end < 0 else end))
    return np.array(shape[start:end], dtype=np.int64)


def _evaluate(n: onnx.NodeProto, feeds: dict[str, np.ndarray], opsets: list[onnx.OperatorSetIdProto]
              ) -> list[np.ndarray] | None:
    from onnx.reference import ReferenceEvaluator

    try:
        inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape))
                  for name, v in feeds.items()]
        outputs = [helper.make_empty_tensor_value_info(o) for o in n.output if o]
        model = helper.make_model(helper.make_graph([n], "value", inputs, outputs), opset_imports=list(opsets))
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            res = ReferenceEvaluator(model).run(None, feeds)
    except Exception:  # an op the reference lacks, or an input it rejects: the value stays unknown
        return None
    return [np.asarray(r) for r in res]


def fold_values(m: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of the inferred model `m` in which nodes that compute small known values are Constants.

    Returns the copy and how many nodes became Constants (0: nothing new to fold, the copy is `m` itself).
    """
    shapes = _shapes(m)
    values = _initial_values(m)
    opsets = [o for o in m.opset_import if o.domain in _DEFAULT_DOMAINS]
    nodes: list[onnx.NodeProto] = []
    folded = 0
    for n in m.graph.node:
        result: list[np.ndarray] | None = None
        outs = [o for o in n.output if o]
        if n.domain in _DEFAULT_DOMAINS and n.op_type not in _NEVER and outs and not any(o in values for o in outs):
            if n.op_type == "Shape" and n.input and n.input[0] in shapes:
                result = [_shape_value(n, shapes[n.input[0]])]
            elif n.op_type == "Size" and n.input and n.input[0] in shapes:
                result = [np.array(math.prod(shapes[n.input[0]]), dtype=np.int64)]
            elif n.input and all(not i or i in values for i in n.input) and (
                n.op_type not in _EXPANDING
                or all(o in shapes and math.prod(shapes[o]) <= MAX_VALUE_NUMEL for o in outs)
            ):
                result = _evaluate(n, {i: values[i] for i in n.input if i}, opsets)
        if result is not None and len(result) == len(outs) and all(r.size <= MAX_VALUE_NUMEL for r in result):
            for o, r in zip(outs, result, strict=True):
                values[o] = r
                nodes.append(helper.make_node("Constant", [], [o], value=numpy_helper.from_array(r, o)))
            folded += 1
        else:
            nodes.append(n)
    if not folded:
        return m, 0
    copy = onnx.ModelProto()
    copy.CopyFrom(m)
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    return copy, folded


def with_inferred_types(model: onnx.ModelProto, inferred: onnx.ModelProto) -> onnx.ModelProto:
    """`model`'s nodes with the value_info and output types that inference found on a folded copy of it."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.value_info[:]
    outputs = {vi.name for vi in out.graph.output}
    out.graph.value_info.extend(vi for vi in inferred.graph.value_info if vi.name not in outputs)
    refined = {vi.name: vi for vi in inferred.graph.output}
    for vi in out.graph.output:
        if vi.name in refined:
            vi.CopyFrom(refined[vi.name])
    return out


def values_given(m: onnx.ModelProto, given: dict[str, np.ndarray], wanted: set[str],
                 rounds: int = 8) -> dict[str, np.ndarray]:
    """The values of the tensors named in `wanted` that follow from the graph inputs `given` (and the model's
    constants), as far as small value computations carry them: an If's condition computed from a mode or
    sample-rate input (Equal(sr, 16000)), for instance. Tensors it cannot reach are left out."""
    copy = onnx.ModelProto()
    copy.CopyFrom(m)
    inputs = [vi for vi in copy.graph.input if vi.name not in given]
    del copy.graph.input[:]
    copy.graph.input.extend(inputs)
    consts = [helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(v), name))
              for name, v in given.items()]
    nodes = consts + list(copy.graph.node)
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    found = {k: np.asarray(v) for k, v in given.items() if k in wanted}
    for _ in range(rounds):
        known = _initial_values(copy)
        found.update({k: v for k, v in known.items() if k in wanted})
        if wanted <= found.keys():
            break
        copy, n = fold_values(copy)
        if not n:
            break
    found.update({k: v for k, v in _initial_values(copy).items() if k in wanted})
    return found
