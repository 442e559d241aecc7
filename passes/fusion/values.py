"""A scalar that a graph computes from constants and static dims (an attention scale 1/√√D exported as
Sqrt(Div(1, Sqrt(Cast(Shape(q)[-1]))))), evaluated by onnx's reference implementation rather than guessed.

A Shape whose input has unknown dims (a symbolic batch) gives those dims a stand-in; the value is evaluated
with two different stand-ins and kept only when both agree, so it never depends on a dim that is not known.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import onnx
from onnx import helper, numpy_helper

from passes.fusion import GraphView

MAX_NODES = 64
_STAND_INS = (2, 3)


def _ancestors(g: GraphView, name: str) -> list[int] | None:
    """The nodes `name` is computed from, down to constants and Shape nodes; None when a graph input (other
    than through a Shape) or too many nodes are on the way."""
    seen: set[int] = set()
    stack = [name]
    while stack:
        t = stack.pop()
        if not t or t in g.inits:
            continue
        if t in g.inputs:
            return None
        i = g.producer.get(t)
        if i is None:
            return None
        if i in seen:
            continue
        seen.add(i)
        if len(seen) > MAX_NODES:
            return None
        n = g.node(i)
        if n.op_type != "Shape" and n.domain in ("", "ai.onnx"):
            stack.extend(n.input)
        elif n.op_type != "Shape":
            return None
    return sorted(seen)


def _evaluate(g: GraphView, name: str, order: list[int], shapes: dict[str, list], stand_in: int) -> np.ndarray | None:
    from onnx.reference import ReferenceEvaluator

    nodes, inits = [], []
    for i in order:
        n = g.node(i)
        if n.op_type == "Shape":
            dims = shapes.get(n.input[0])
            if dims is None:
                return None
            start = next((a.i for a in n.attribute if a.name == "start"), 0)
            end = next((a.i for a in n.attribute if a.name == "end"), len(dims))
            value = np.array([d if isinstance(d, int) else stand_in for d in dims][start:end], np.int64)
            nodes.append(helper.make_node("Constant", [], [n.output[0]], value=numpy_helper.from_array(value)))
        else:
            nodes.append(n)
            inits += [g.inits[x] for x in n.input if x in g.inits]
    out = helper.make_tensor_value_info(name, onnx.TensorProto.UNDEFINED, None)
    graph = helper.make_graph(nodes, "scalar", [], [out], initializer=list({t.name: t for t in inits}.values()))
    model = helper.make_model(graph, opset_imports=[o for o in g.model.opset_import if o.domain in ("", "ai.onnx")])
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return np.asarray(ReferenceEvaluator(model).run(None, {})[0])
    except Exception:  # an op the reference cannot run here: the value stays unknown
        return None


def scalar_value(g: GraphView, name: str, shapes: dict[str, list]) -> float | None:
    """The one-element value of `name`, or None when it is not a constant of the graph's static dims."""
    v = g.const(name)
    if v is None:
        order = _ancestors(g, name)
        if order is None:
            return None
        values = [_evaluate(g, name, order, shapes, s) for s in _STAND_INS]
        if any(x is None for x in values) or not np.array_equal(values[0], values[1]):
            return None
        v = values[0]
    v = np.asarray(v)
    return float(v.reshape(-1)[0]) if v.size == 1 and v.dtype.kind == "f" else None
