"""Build the planner's Graph from an inferred ModelProto: execution order, roles, constants folded.

Nodes whose inputs are all constant (Constant, ConstantOfShape of a stored shape, arithmetic on weights) are
folded here, as every runtime folds them at session start: their outputs are weights, and they cost nothing
per inference.
"""

from __future__ import annotations

import networkx as nx
import onnx
from onnx import helper

from planner.errors import ModelLoadError
from planner.model.ir import ACTIVATION, DTYPE_BITS, INPUT, WEIGHT, Graph, NodeInfo, TensorInfo, dtype_name
from planner.model.limits import check_tensor_size
from planner.model.loader import default_opset

_NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                     "Bernoulli"}


def _vi_shape(vi: onnx.ValueInfoProto) -> tuple[tuple[int, ...] | None, str]:
    if not vi.type.HasField("tensor_type"):
        return None, "undefined"
    tt = vi.type.tensor_type
    dtype = dtype_name(tt.elem_type)
    if not tt.HasField("shape"):
        return None, dtype
    dims = []
    for d in tt.shape.dim:
        if not d.HasField("dim_value") or d.dim_value < 0:
            return None, dtype
        dims.append(d.dim_value)
    return tuple(dims), dtype


def _attr_value(a: onnx.AttributeProto):
    if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
        return a.g if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
    if a.type == onnx.AttributeProto.TENSOR:
        return a.t  # formulas read dims/dtype; values of large tensors are never needed
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, list) and v and isinstance(v[0], bytes):
        return [x.decode("utf-8", "replace") for x in v]
    return v


def outer_refs(g: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads from enclosing scopes."""
    local = {i.name for i in g.input} | {t.name for t in g.initializer}
    refs: set[str] = set()
    for n in g.node:
        for i in n.input:
            if i and i not in local:
                refs.add(i)
        for a in n.attribute:
            subs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
            for sg in subs:
                refs |= {r for r in outer_refs(sg) if r not in local}
        local.update(o for o in n.output if o)
    return refs


def _execution_order(g: onnx.GraphProto, available: set[str], implicit: dict[int, set[str]]) -> list[int]:
    """The node order, repaired by a topological sort if the file's order is not one; refuses cycles."""
    produced_by: dict[str, int] = {}
    for i, n in enumerate(g.node):
        for o in n.output:
            if not o:
                continue
            if o in produced_by or o in available:
                raise ModelLoadError(f"tensor '{o}' is defined twice (node '{n.name or n.op_type}')")
            produced_by[o] = i
    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(g.node)))
    in_order = True
    for i, n in enumerate(g.node):
        for name in list(n.input) + sorted(implicit.get(i, ())):
            if not name or name in available:
                continue
            if name not in produced_by:
                raise ModelLoadError(f"node '{n.name or n.op_type}' reads tensor '{name}', which nothing defines")
            j = produced_by[name]
            dag.add_edge(j, i)
            in_order &= j < i
    if in_order:
        return list(range(len(g.node)))
    try:
        return list(nx.lexicographical_topological_sort(dag))
    except nx.NetworkXUnfeasible:
        cyc = nx.find_cycle(dag)
        names = [g.node[a].name or g.node[a].op_type for a, _ in cyc][:4]
        raise ModelLoadError(f"graph has a cycle through nodes {' -> '.join(names)}") from None


def build_graph(m: onnx.ModelProto, weight_inputs: set[str] = frozenset(), fold_constants: bool = True) -> Graph:
    """`weight_inputs`: graph inputs that are really weights (the skeleton declared them as inputs).
    `fold_constants=False` keeps nodes whose inputs are all constant: a graph a runtime already optimized
    (planner.ort.executed) runs the ones it left."""
    g = m.graph
    tensor = _Tensors.declared(g, weight_inputs)
    inputs = [i.name for i in g.input if i.name not in tensor.roles]
    for name in inputs:
        tensor.roles[name] = INPUT
    implicit = _implicit_refs(g)
    order = _execution_order(g, set(tensor.roles), implicit)
    nodes, node_implicit, folded = _nodes(g, order, tensor, implicit, fold_constants)
    # Rebuild tensors now that roles are final, and re-point node tensors at them.
    read = {t.name for n in nodes for t in n.inputs if t is not None}
    read |= {x for names in node_implicit.values() for x in names}
    outputs = [o.name for o in g.output]
    tensors: dict[str, TensorInfo] = {}
    written = {t.name for n in nodes for t in n.outputs if t is not None}
    for name in set(tensor.shapes) | read | written | set(tensor.roles):
        t = tensor(name)
        if t is not None:
            tensors[name] = t
    nodes = [NodeInfo(n.name, n.op_type, n.domain,
                      tuple(None if t is None else tensors[t.name] for t in n.inputs),
                      tuple(None if t is None else tensors[t.name] for t in n.outputs), n.attrs) for n in nodes]
    weights = sorted(x for x in read | set(outputs) if tensor.roles.get(x) == WEIGHT)
    return Graph(nodes=nodes, tensors=tensors, inputs=inputs, outputs=outputs, weights=weights,
                 opset=default_opset(m), dag=_dag(nodes, node_implicit), implicit_inputs=node_implicit,
                 folded_nodes=folded)


class _Tensors:
    """What is known of each tensor by name (shape and dtype, role); called, a TensorInfo, sizes checked."""

    def __init__(self, shapes: dict[str, tuple[tuple[int, ...] | None, str]], roles: dict[str, str]) -> None:
        self.shapes, self.roles = shapes, roles

    @classmethod
    def declared(cls, g: onnx.GraphProto, weight_inputs: set[str]) -> _Tensors:
        """From the graph's declarations: value infos, initializers (weights) and inputs that are weights."""
        shapes: dict[str, tuple[tuple[int, ...] | None, str]] = {}
        for vi in list(g.input) + list(g.value_info) + list(g.output):
            shapes[vi.name] = _vi_shape(vi)
        roles: dict[str, str] = {}
        for t in g.initializer:
            shapes[t.name] = (tuple(int(d) for d in t.dims), dtype_name(t.data_type))
            roles[t.name] = WEIGHT
        for t in g.sparse_initializer:
            shapes[t.values.name] = (tuple(int(d) for d in t.dims), dtype_name(t.values.data_type))
            roles[t.values.name] = WEIGHT
        for name in weight_inputs:
            roles[name] = WEIGHT
        return cls(shapes, roles)

    def __call__(self, name: str) -> TensorInfo | None:
        if not name:
            return None
        shape, dtype = self.shapes.get(name, (None, "undefined"))
        if shape is not None and any(d < 0 for d in shape):
            shape = None
        check_tensor_size(name, shape, DTYPE_BITS.get(dtype, 32))  # an inferred size past 2^63 bytes is refused
        return TensorInfo(name, shape, dtype, self.roles.get(name, ACTIVATION))


def _implicit_refs(g: onnx.GraphProto) -> dict[int, set[str]]:
    """Per node index, the outer-scope tensors its subgraphs read (an If branch reading a tensor of the graph)."""
    implicit: dict[int, set[str]] = {}
    for i, n in enumerate(g.node):
        refs: set[str] = set()
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                refs |= outer_refs(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                for sg in a.graphs:
                    refs |= outer_refs(sg)
        if refs:
            implicit[i] = refs
    return implicit


def _nodes(g: onnx.GraphProto, order: list[int], tensor: _Tensors, implicit: dict[int, set[str]],
           fold_constants: bool) -> tuple[list[NodeInfo], dict[int, list[str]], int]:
    """The nodes that run, in execution order (constants and, if asked, nodes of constants only folded into
    weights), the outer tensors each reads, and how many were folded."""
    nodes: list[NodeInfo] = []
    node_implicit: dict[int, list[str]] = {}
    folded = 0
    for i in order:
        n = g.node[i]
        if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
            for a in n.attribute:
                if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
                    tensor.shapes.setdefault(n.output[0], (tuple(int(d) for d in a.t.dims),
                                                           dtype_name(a.t.data_type)))
            tensor.roles[n.output[0]] = WEIGHT
            folded += 1
            continue
        ins = [x for x in n.input if x] + sorted(implicit.get(i, ()))
        if (fold_constants and ins and n.op_type not in _NONDETERMINISTIC and not implicit.get(i)
                and all(tensor.roles.get(x) == WEIGHT for x in ins)):
            for o in n.output:
                if o:
                    tensor.roles[o] = WEIGHT
            folded += 1
            continue
        attrs = {a.name: _attr_value(a) for a in n.attribute}
        if implicit.get(i):
            node_implicit[len(nodes)] = sorted(implicit[i])
        nodes.append(NodeInfo(n.name or f"{n.op_type}_{i}", n.op_type, n.domain if n.domain != "ai.onnx" else "",
                              tuple(tensor(x) for x in n.input), tuple(tensor(x) for x in n.output), attrs))
    return nodes, node_implicit, folded


def _dag(nodes: list[NodeInfo], node_implicit: dict[int, list[str]]) -> nx.DiGraph:
    """Producer -> consumer edges, each labelled with the tensor it carries."""
    dag = nx.DiGraph()
    dag.add_nodes_from(range(len(nodes)))
    producer = {t.name: i for i, n in enumerate(nodes) for t in n.outputs if t is not None}
    for i, n in enumerate(nodes):
        names = [t.name for t in n.inputs if t is not None] + node_implicit.get(i, [])
        for name in names:
            if name in producer:
                dag.add_edge(producer[name], i, tensor=name)
    return dag
