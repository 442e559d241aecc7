"""Build NodeInfo/TensorInfo directly for the cost-formula tests (no ModelProto needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from planner.costs import OpCost, node_cost
from planner.model.ir import ACTIVATION, NodeInfo, TensorInfo

W = "weight"  # role of initializers
F16 = "float16"

Spec = Any  # None | shape | (shape,) | (shape, dtype) | (shape, dtype, role) | TensorInfo


def tensor(spec: Spec, name: str) -> TensorInfo | None:
    """None -> an omitted optional input; a bare shape -> float32 activation; (shape, dtype, role)."""
    if spec is None or isinstance(spec, TensorInfo):
        return spec
    if isinstance(spec, tuple) and spec and (spec[0] is None or isinstance(spec[0], (tuple, list))):
        shape = spec[0]
        dtype = spec[1] if len(spec) > 1 else "float32"
        role = spec[2] if len(spec) > 2 else ACTIVATION
    else:
        shape, dtype, role = spec, "float32", ACTIVATION
    return TensorInfo(name, None if shape is None else tuple(shape), dtype, role)


def make_node(op: str, inputs: Sequence[Spec] = (), outputs: Sequence[Spec] = (),
              attrs: Mapping[str, Any] | None = None, domain: str = "") -> NodeInfo:
    return NodeInfo(
        name=f"{op}_0",
        op_type=op,
        domain=domain,
        inputs=tuple(tensor(s, f"{op}_in{i}") for i, s in enumerate(inputs)),
        outputs=tuple(tensor(s, f"{op}_out{i}") for i, s in enumerate(outputs)),
        attrs=dict(attrs or {}),
    )


def cost(op: str, inputs: Sequence[Spec] = (), outputs: Sequence[Spec] = (),
         attrs: Mapping[str, Any] | None = None, domain: str = "") -> OpCost:
    """The registered formula's cost for a node built from these specs (fails if op has no formula)."""
    nc = node_cost(make_node(op, inputs, outputs, attrs, domain))
    assert nc.known, f"{domain or 'ai.onnx'}::{op} has no cost formula"
    return nc.cost
