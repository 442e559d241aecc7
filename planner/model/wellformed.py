"""Refuse what protobuf parses but ONNX forbids, before any later step trips over it.

Two things a corrupt or hostile file can hold that every later step assumes away, both found by the fuzzer:

    names that are not text    proto2 string fields are not UTF-8-checked when parsed; Python then hands
                               back `bytes` where every consumer expects `str` (a domain, a tensor name, an
                               external data location), and mixes of bytes and str fail far from the cause
    attributes of the wrong    an attribute's declared type disagrees with its operator's schema (Scan's
    type                       num_scan_inputs holding a sparse tensor): formulas that read an int get an
                               object. Custom domains have no schema and are left alone.
    counts that disagree       Scan's num_scan_inputs or Split's num_outputs larger than the node's own
                               inputs or outputs: libraries allocate lists of that length
"""

from __future__ import annotations

from collections.abc import Iterable

import onnx

from planner.errors import ModelLoadError
from planner.model.walk import iter_graphs

_TYPE_NAMES = {v: k.lower() for k, v in onnx.AttributeProto.AttributeType.items()}


def _texts(label: str, values: Iterable) -> None:
    for v in values:
        if not isinstance(v, str):
            raise ModelLoadError(f"{label} is not valid UTF-8 text ({bytes(v)[:40]!r}): corrupt file")


def _check_value_infos(where: str, vis: Iterable[onnx.ValueInfoProto]) -> None:
    for vi in vis:
        _texts(f"{where}: a tensor name", (vi.name,))
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            _texts(f"{where}: a symbolic dim of '{vi.name}'",
                   (d.dim_param for d in vi.type.tensor_type.shape.dim if d.HasField("dim_param")))


def _check_tensor(where: str, t: onnx.TensorProto) -> None:
    _texts(f"{where}: a tensor name", (t.name,))
    for e in t.external_data:
        _texts(f"{where}: external data of '{t.name}'", (e.key, e.value))


def check_text(model: onnx.ModelProto) -> None:
    """Every name, domain, op type, symbolic dim and external data location is `str`."""

    _texts("an opset domain", (o.domain for o in model.opset_import))
    for g in iter_graphs(model.graph):
        where = f"graph '{g.name}'" if isinstance(g.name, str) else "a graph"
        _check_value_infos(where, list(g.input) + list(g.output) + list(g.value_info))
        for t in g.initializer:
            _check_tensor(where, t)
        for st in g.sparse_initializer:
            _check_tensor(where, st.values)
        for n in g.node:
            _texts(f"{where}: a node's name, type, domain or tensor name",
                   (n.name, n.op_type, n.domain, *n.input, *n.output))
            for a in n.attribute:
                _texts(f"{where}: an attribute name of node '{n.name or n.op_type}'", (a.name, a.ref_attr_name))
                if a.type == onnx.AttributeProto.TENSOR:
                    _check_tensor(where, a.t)


def _schema(op_type: str, domain: str, version: int, cache: dict):
    key = (op_type, domain, version)
    if key not in cache:
        try:
            cache[key] = onnx.defs.get_schema(op_type, version, domain)
        except Exception:  # no schema (custom domain, unknown op, too-old version): nothing to check against
            cache[key] = None
    return cache[key]


def check_attribute_types(model: onnx.ModelProto) -> None:
    """Each attribute of an op with a schema has the type that schema declares."""

    versions = {("" if o.domain == "ai.onnx" else o.domain): o.version for o in model.opset_import}
    cache: dict = {}
    for g in iter_graphs(model.graph):
        for n in g.node:
            domain = "" if n.domain == "ai.onnx" else n.domain
            if domain not in versions or not n.attribute:
                continue
            schema = _schema(n.op_type, domain, versions[domain], cache)
            if schema is None:
                continue
            for a in n.attribute:
                if a.ref_attr_name:
                    continue  # a function body's reference, typed by the caller
                declared = schema.attributes.get(a.name)
                if declared is None:
                    continue  # unknown attributes are ignored by runtimes and by our formulas
                if a.type != declared.type.value:
                    raise ModelLoadError(
                        f"node '{n.name or n.op_type}' ({n.op_type}): attribute '{a.name}' is a "
                        f"{_TYPE_NAMES.get(a.type, str(a.type))}, its schema says "
                        f"{_TYPE_NAMES.get(declared.type.value, '?')}: corrupt or hand-edited model")


def _int_attr(n: onnx.NodeProto, name: str) -> int | None:
    for a in n.attribute:
        if a.name == name and a.type == onnx.AttributeProto.INT:
            return a.i
    return None


def check_counts(model: onnx.ModelProto) -> None:
    """Attributes that count a node's own inputs or outputs agree with them.

    Libraries size lists by these counts (onnxruntime's shape inference builds `[0] * num_scan_inputs`), so a
    count of 2^31 in a 1 kB file is a memory bomb, not just a wrong model.
    """

    for g in iter_graphs(model.graph):
        for n in g.node:
            if n.domain not in ("", "ai.onnx"):
                continue
            label = f"node '{n.name or n.op_type}' ({n.op_type})"
            if n.op_type == "Scan":
                k = _int_attr(n, "num_scan_inputs")
                if k is None or not 1 <= k <= len(n.input):
                    raise ModelLoadError(f"{label}: num_scan_inputs={k} but the node has {len(n.input)} inputs")
                for a in n.attribute:
                    if a.name in ("scan_input_axes", "scan_input_directions", "scan_output_axes",
                                  "scan_output_directions") and len(a.ints) > max(len(n.input), len(n.output)):
                        raise ModelLoadError(f"{label}: {a.name} lists {len(a.ints)} axes for "
                                             f"{len(n.input)} inputs and {len(n.output)} outputs")
            elif n.op_type == "Split":
                k = _int_attr(n, "num_outputs")
                if k is not None and k != len(n.output):
                    raise ModelLoadError(f"{label}: num_outputs={k} but the node has {len(n.output)} outputs")


def check_well_formed(model: onnx.ModelProto) -> None:
    check_text(model)
    check_attribute_types(model)
    check_counts(model)
