"""Give If, Loop and Scan bodies shapes and repeat counts, so that their cost is counted instead of guessed.

A subgraph's inputs have no shapes of their own: they come from the node that runs it (a Loop's carried
values, a Scan's per-step slices) and from outer-scope tensors it reads by name. Each body is therefore turned
into a small model whose inputs carry those outer shapes, run through the same shape inference and graph
builder as the main model, and resolved again for control flow nested inside it.

How often a body runs:
    If     once, but which branch is unknown: both are resolved; costs take the larger (planner.costs.controlflow)
           and time on a target takes the slower branch there. Where the condition is known (a constant, or
           computed from inputs whose values the user gave: `--value mode=1`, `--value sr=16000`), only the
           branch that runs is resolved, and it stands for both
    Loop   M when M is a constant below 2^31 (the loop's `cond` may end it sooner: an upper bound);
           otherwise --loop-trips N, else DEFAULT_LOOP_TRIPS. Exporters write INT64_MAX (or INT32_MAX) for a
           while-loop with no bound, so a constant that large means "unknown", not 9.2e18 iterations
    Scan   the scan length: the first scan input's size on its scan axis (Scan-8: x batch)
Every control-flow node gets a note in the plan saying which rule counted it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import onnx
from onnx import numpy_helper

from planner.errors import ModelLoadError
from planner.model.build import build_graph, outer_refs
from planner.model.inference import infer
from planner.model.ir import Graph, NodeInfo, TensorInfo
from planner.model.value_folding import values_given
from planner.model.walk import iter_graphs

DEFAULT_LOOP_TRIPS = 1
NO_BOUND = 1 << 31  # a constant trip count at or above this is an exporter's "no maximum"
MAX_DEPTH = 16  # nesting deeper than this is refused (protobuf itself stops parsing near 100)
MAX_NOTES = 8
MAX_BODIES = 2000  # per analysis: each costs a shape inference; past it, control flow is costed by its bytes


CONTROL_FLOW_OPS = ("If", "Loop", "Scan")
BODY_ATTRS = {"If": ("then_branch", "else_branch"), "Loop": ("body",), "Scan": ("body",)}


@dataclass(frozen=True)
class Body:
    """A subgraph as the planner sees it: its Graph with shapes, runs per node run, and why that many."""

    proto: onnx.GraphProto
    graph: Graph
    repeats: int
    why: str
    memo: dict = field(default_factory=dict, compare=False, repr=False)  # per-target timing reuses its kernels
    # bytes of initializers in the If branch that does not run, where the condition is known: onnxruntime loads
    # both branches with the session (planner.predict.bodies.control_flow_memory)
    idle_weight_bytes: int = 0


def bodies(node: NodeInfo) -> list[Body] | None:
    """The node's resolved bodies, or None when any is missing (the node was not resolved)."""
    names = BODY_ATTRS.get(node.op_type, ())
    found = [node.attr(a) for a in names]
    return found if found and all(isinstance(b, Body) for b in found) else None


def initializer_bytes(g: onnx.GraphProto) -> int:
    """Bytes of a subgraph's own initializers (and of those of the subgraphs inside it)."""
    total = 0
    for t in g.initializer:
        n = 1
        for d in t.dims:
            n *= d
        total += n * onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
    for node in g.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                total += initializer_bytes(a.g)
    return total


def is_control_flow(node: NodeInfo) -> bool:
    return node.domain == "" and node.op_type in BODY_ATTRS


def iter_nodes(graph: Graph) -> Iterator[NodeInfo]:
    """Every node, those inside resolved If/Loop/Scan bodies included (for listing unknown ops)."""
    for n in graph.nodes:
        yield n
        for b in bodies(n) or ():
            yield from iter_nodes(b.graph)


def _elem_type(dtype: str) -> int:
    name = {"float32": "FLOAT", "float64": "DOUBLE"}.get(dtype, dtype.upper())
    v = getattr(onnx.TensorProto, name, onnx.TensorProto.UNDEFINED)
    return v if isinstance(v, int) else onnx.TensorProto.UNDEFINED


def _value_info(name: str, t: TensorInfo | None, declared: onnx.ValueInfoProto | None = None,
                shape: tuple[int, ...] | None = None) -> onnx.ValueInfoProto:
    """A typed input for the body model: the outer shape when known, else what the body declared."""
    shape = shape if shape is not None else (t.shape if t is not None else None)
    if t is not None and t.dtype != "undefined" and shape is not None:
        return onnx.helper.make_tensor_value_info(name, _elem_type(t.dtype), list(shape))
    vi = onnx.ValueInfoProto()
    if declared is not None:
        vi.CopyFrom(declared)
    elif t is not None and t.dtype != "undefined":
        vi.CopyFrom(onnx.helper.make_tensor_value_info(name, _elem_type(t.dtype), None))
    vi.name = name
    return vi


def _const_int(name: str, scopes: list[onnx.GraphProto]) -> int | None:
    """The value of a scalar (0-d or [1]) integer constant, searched inner scope first."""
    v = _const_value(name, scopes)
    if v is None or v.ndim > 1 or not np.issubdtype(v.dtype, np.integer):
        return None
    return int(v.reshape(-1)[0])


def _const_value(name: str, scopes: list[onnx.GraphProto]) -> np.ndarray | None:
    """A one-element constant (initializer or Constant node), searched inner scope first."""
    for g in reversed(scopes):
        for t in g.initializer:
            if t.name == name:
                return _one_element(t)
        for n in g.node:
            if n.op_type == "Constant" and name in n.output:
                for a in n.attribute:
                    if a.name == "value" and a.type == onnx.AttributeProto.TENSOR:
                        return _one_element(a.t)
                    if a.name == "value_int":
                        return np.array(a.i, np.int64)
                return None
    return None


def _one_element(t: onnx.TensorProto) -> np.ndarray | None:
    if int(np.prod(t.dims)) != 1 or t.data_location == onnx.TensorProto.EXTERNAL:
        return None
    try:
        return numpy_helper.to_array(t)
    except Exception:  # a corrupt constant decides nothing: the stated default (both branches, default trips)
        return None


def _show(v: np.ndarray) -> str:
    a = np.asarray(v).reshape(-1)
    return str(a[0].item()).lower() if a.size == 1 else f"[{a.size} values]"




Inference = Callable[[onnx.ModelProto], tuple[onnx.ModelProto, list[str]]]


class _Resolver:
    def __init__(self, model: onnx.ModelProto, loop_trips: int | None, opset: int,
                 infer_body: Inference = infer, values: Mapping[str, np.ndarray] | None = None) -> None:
        self.model = model
        self.infer = infer_body
        self.values = dict(values or {})
        self._conditions: dict[str, np.ndarray] | None = None
        self.loop_trips = loop_trips
        self.scan8 = opset < 9  # Scan-8: sequence_lens first, a batch axis 0 and the scan axis 1
        self.notes: list[str] = []
        self.count = 0
        self.bodies = self.skipped = 0
        self._types: dict[int, dict[str, onnx.ValueInfoProto]] = {}

    def declared(self, name: str, scopes: list[onnx.GraphProto]) -> onnx.ValueInfoProto | None:
        """How an enclosing graph typed `name`: a sequence or optional has no TensorInfo, and an untyped input
        stalls onnxruntime's inference."""
        for g in reversed(scopes):
            index = self._types.get(id(g))
            if index is None:
                index = {vi.name: vi for vi in list(g.input) + list(g.value_info) + list(g.output)
                         if vi.HasField("type")}
                self._types[id(g)] = index
            if name in index:
                return index[name]
        return None

    def note(self, text: str) -> None:
        self.count += 1
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)

    def graph(self, graph: Graph, scopes: list[onnx.GraphProto], depth: int) -> Graph:
        if not any(is_control_flow(n) for n in graph.nodes):
            return graph
        nodes = [self.node(n, graph.tensors, scopes, depth) if is_control_flow(n) else n for n in graph.nodes]
        return replace(graph, nodes=nodes)

    def body(self, sg: onnx.GraphProto, inputs: list[onnx.ValueInfoProto], scope: Mapping[str, TensorInfo],
             scopes: list[onnx.GraphProto], depth: int, repeats: int, why: str) -> Body:
        g = onnx.GraphProto()
        g.CopyFrom(sg)
        del g.input[:]
        g.input.extend(inputs)
        del g.value_info[:]  # inferred afresh from the outer shapes
        for o in g.output:
            if o.type.HasField("tensor_type"):
                o.type.tensor_type.ClearField("shape")
        weights = set()
        for ref in sorted(outer_refs(sg)):
            t = scope.get(ref)
            g.input.append(_value_info(ref, t, self.declared(ref, scopes)))
            if t is not None and t.is_weight:
                weights.add(ref)
        m = onnx.ModelProto()
        m.ir_version = self.model.ir_version
        m.opset_import.extend(self.model.opset_import)
        m.functions.extend(self.model.functions)
        m.graph.CopyFrom(g)
        inferred, _ = self.infer(m)
        graph = self.graph(build_graph(inferred, weights), scopes + [inferred.graph], depth + 1)
        return Body(proto=sg, graph=graph, repeats=repeats, why=why)

    def node(self, n: NodeInfo, scope: Mapping[str, TensorInfo], scopes: list[onnx.GraphProto],
             depth: int) -> NodeInfo:
        attrs = dict(n.attrs)
        name = f"{n.op_type} '{n.name}'"
        if not all(isinstance(attrs.get(a), onnx.GraphProto) for a in BODY_ATTRS[n.op_type]):
            return n  # malformed (a missing body): costed by bytes, as an op without a formula
        self.bodies += len(BODY_ATTRS[n.op_type])
        if self.bodies > MAX_BODIES:
            self.skipped += 1
            return n
        taken = self.branch(n, scopes) if n.op_type == "If" else None
        if taken is not None:
            attr, why = taken
            idle = attrs["else_branch" if attr == "then_branch" else "then_branch"]
            body = self.body(attrs[attr], [], scope, scopes, depth, 1, why)
            attrs["then_branch"] = attrs["else_branch"] = replace(body, idle_weight_bytes=initializer_bytes(idle))
            self.note(f"{name}: only its {attr.split('_')[0]} branch is costed: {why}")
        elif n.op_type == "If":
            for a in ("then_branch", "else_branch"):
                attrs[a] = self.body(attrs[a], [], scope, scopes, depth, 1, "one branch runs")
            self.note(f"{name}: costed as the larger of its two branches (which one runs is decided at run time; "
                      "--value NAME=V binds an input it depends on)")
        elif n.op_type == "Loop":
            trips, why = self.trips(n, scopes)
            attrs["body"] = self.body(attrs["body"], self.loop_inputs(n, attrs["body"]), scope, scopes, depth,
                                      trips, why)
            self.note(f"{name}: body x {trips} ({why})")
        else:
            sg = attrs["body"]
            inputs, length, why = self.scan_inputs(n, sg)
            attrs["body"] = self.body(sg, inputs, scope, scopes, depth, length, why)
            self.note(f"{name}: body x {length} ({why})")
        return replace(n, attrs=attrs)

    def branch(self, n: NodeInfo, scopes: list[onnx.GraphProto]) -> tuple[str, str] | None:
        """The branch attribute that runs and why, where the condition is known; else None."""
        cond = n.inputs[0].name if n.inputs and n.inputs[0] is not None else None
        if cond is None:
            return None
        value, source = _const_value(cond, scopes), "a constant"
        if value is None and self.values:
            if self._conditions is None:  # every If's condition at once: one evaluation of the value chains
                wanted = {x.input[0] for g in iter_graphs(self.model.graph) for x in g.node
                          if x.op_type == "If" and x.input}
                self._conditions = values_given(self.model, self.values, wanted)
            value = self._conditions.get(cond)
            source = "given " + ", ".join(f"{k}={_show(v)}" for k, v in self.values.items())
        if value is None or value.size != 1:
            return None
        truth = bool(value.reshape(-1)[0])
        return ("then_branch" if truth else "else_branch"), f"its condition {cond!r} is {str(truth).lower()} ({source})"

    def trips(self, n: NodeInfo, scopes: list[onnx.GraphProto]) -> tuple[int, str]:
        m = n.inputs[0] if n.inputs else None
        if m is not None:
            value = _const_int(m.name, scopes)
            if value is not None and 0 <= value < NO_BOUND:
                cond = len(n.inputs) > 1 and n.inputs[1] is not None
                return value, f"constant trip count M={value}" + (", an upper bound: cond may end it sooner"
                                                                   if cond else "")
        if self.loop_trips is not None:
            return self.loop_trips, f"--loop-trips {self.loop_trips}: the trip count is decided at run time"
        return DEFAULT_LOOP_TRIPS, (f"trip count decided at run time; default {DEFAULT_LOOP_TRIPS}, "
                                    "set it with --loop-trips N")

    @staticmethod
    def loop_inputs(n: NodeInfo, sg: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
        declared = list(sg.input)
        out = []
        for i, d in enumerate(declared):
            if i == 0:
                out.append(onnx.helper.make_tensor_value_info(d.name, onnx.TensorProto.INT64, []))
            elif i == 1:
                out.append(onnx.helper.make_tensor_value_info(d.name, onnx.TensorProto.BOOL, []))
            else:
                t = n.inputs[i] if i < len(n.inputs) else None
                out.append(_value_info(d.name, t, d))
        return out

    def scan_inputs(self, n: NodeInfo, sg: onnx.GraphProto) -> tuple[list[onnx.ValueInfoProto], int, str]:
        declared = list(sg.input)
        num_scan = int(n.attr("num_scan_inputs", 0) or 0)
        legacy = self.scan8
        ins = list(n.inputs[1:]) if legacy else list(n.inputs)  # Scan-8: sequence_lens (optional) first
        n_state = max(len(ins) - num_scan, 0)
        axes = list(n.attr("scan_input_axes", []) or []) if not legacy else []
        out, length, why = [], None, "scan length unknown; default 1"
        for i, d in enumerate(declared):
            t = ins[i] if i < len(ins) else None
            shape = None if t is None else t.shape
            if i < n_state:
                if legacy and shape:
                    shape = shape[1:]  # Scan-8 states carry the batch dim outside the body
                out.append(_value_info(d.name, t, d, shape))
                continue
            j = i - n_state
            axis = 1 if legacy else (int(axes[j]) if j < len(axes) else 0)
            if shape is not None and shape and -len(shape) <= axis < len(shape):
                axis %= len(shape)
                if length is None:
                    length = shape[axis] * (shape[0] if legacy else 1)
                    why = (f"scan length {shape[axis]} x batch {shape[0]} (Scan-8)" if legacy
                           else f"scan length {shape[axis]}")
                shape = shape[:axis] + shape[axis + 1:]
                if legacy:
                    shape = shape[1:]
            out.append(_value_info(d.name, t, d, shape))
        return out, 1 if length is None else length, why


def nesting_depth(g: onnx.GraphProto) -> int:
    """How deep subgraphs nest (0: none), walked without recursion so a hostile depth cannot blow the stack."""
    deepest, stack = 0, [(g, 0)]
    while stack:
        graph, d = stack.pop()
        deepest = max(deepest, d)
        for n in graph.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    stack.append((a.g, d + 1))
                elif a.type == onnx.AttributeProto.GRAPHS:
                    stack.extend((sg, d + 1) for sg in a.graphs)
    return deepest


def resolve_control_flow(graph: Graph, model: onnx.ModelProto, loop_trips: int | None = None,
                         infer_body: Inference = infer, values: Mapping[str, np.ndarray] | None = None
                         ) -> tuple[Graph, list[str]]:
    """`graph` with each If/Loop/Scan body resolved (shapes, repeats), and one note per control-flow node.

    `infer_body` infers a body's shapes once its inputs carry the outer ones: onnx's and onnxruntime's
    inference for a model's own bodies; onnxruntime's optimized graph passes the executed-graph rules, since
    its bodies hold the same NCHWc and com.microsoft ops as its main graph. `values`: graph inputs whose values
    the user gave (name -> array), which decide the If conditions computed from them."""
    if not any(is_control_flow(n) for n in graph.nodes):
        return graph, []
    depth = nesting_depth(model.graph)
    if depth > MAX_DEPTH:  # checked before any work: resolving costs inference per body, per level
        raise ModelLoadError(f"control flow is nested {depth} levels deep, more than the {MAX_DEPTH} planned")
    r = _Resolver(model, loop_trips, graph.opset, infer_body, values)
    out = r.graph(graph, [model.graph], 0)
    notes = list(r.notes)
    if r.count > len(r.notes):
        notes.append(f"... and {r.count - len(r.notes)} more control-flow nodes")
    if r.skipped:
        notes.append(f"{r.skipped} control-flow nodes past the first {MAX_BODIES} bodies were costed by their "
                     "inputs' and outputs' bytes only (their bodies were not walked)")
    return out, notes
