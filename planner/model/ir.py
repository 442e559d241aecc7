"""The planner's view of a model: tensors with concrete shapes, nodes in execution order, and a data DAG.

Everything downstream (cost formulas, fusion, liveness, roofline) reads this, never the ModelProto, so the
protobuf details (value_info, initializers, Constant nodes, external data) are resolved in one place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import networkx as nx
import onnx

_DTYPE_ALIASES = {"float": "float32", "double": "float64"}


def dtype_name(elem_type: int) -> str:
    try:
        name = onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return "undefined"
    return _DTYPE_ALIASES.get(name, name)


# Bits per element, keyed by the dtype names used throughout the planner (numpy-like, lower case).
DTYPE_BITS: dict[str, int] = {
    "float64": 64, "float32": 32, "float16": 16, "bfloat16": 16,
    "float8e4m3fn": 8, "float8e4m3fnuz": 8, "float8e5m2": 8, "float8e5m2fnuz": 8, "float8e8m0": 8,
    "float4e2m1": 4,
    "int64": 64, "int32": 32, "int16": 16, "int8": 8, "int4": 4, "int2": 2,
    "uint64": 64, "uint32": 32, "uint16": 16, "uint8": 8, "uint4": 4, "uint2": 2,
    "bool": 8, "complex64": 64, "complex128": 128, "string": 64, "undefined": 32,
}

# Tensor roles.
INPUT, WEIGHT, ACTIVATION = "input", "weight", "activation"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...] | None  # None when shape inference could not tell
    dtype: str
    role: str = ACTIVATION  # INPUT, WEIGHT (initializer or Constant output) or ACTIVATION

    @cached_property
    def numel(self) -> int | None:
        if self.shape is None:
            return None
        return math.prod(self.shape)

    @cached_property
    def nbytes(self) -> int:
        """Bytes in memory; 0 when the shape is unknown (such tensors are reported, not guessed)."""
        n = self.numel
        if n is None:
            return 0
        return (n * DTYPE_BITS.get(self.dtype, 32) + 7) // 8

    @property
    def is_weight(self) -> bool:
        return self.role == WEIGHT


@dataclass(frozen=True)
class NodeInfo:
    name: str
    op_type: str
    domain: str  # "" for the default ai.onnx domain
    inputs: tuple[TensorInfo | None, ...]  # None where an optional input is omitted
    outputs: tuple[TensorInfo | None, ...]
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def attr(self, name: str, default: Any = None) -> Any:
        return self.attrs.get(name, default)

    def in_shape(self, i: int) -> tuple[int, ...] | None:
        t = self.inputs[i] if i < len(self.inputs) else None
        return None if t is None else t.shape

    def out_shape(self, i: int = 0) -> tuple[int, ...] | None:
        t = self.outputs[i] if i < len(self.outputs) else None
        return None if t is None else t.shape

    def has_input(self, i: int) -> bool:
        return i < len(self.inputs) and self.inputs[i] is not None

    @property
    def key(self) -> tuple[str, str]:
        return (self.domain, self.op_type)


@dataclass
class Graph:
    """Nodes in a valid execution order plus the tensors they exchange."""

    nodes: list[NodeInfo]
    tensors: dict[str, TensorInfo]
    inputs: list[str]  # graph inputs that are not initializers
    outputs: list[str]
    weights: list[str] = field(default_factory=list)  # weight tensors the runtime nodes read
    opset: int = 0
    dag: nx.DiGraph = field(default_factory=nx.DiGraph)  # node index -> node index, edge attr "tensor"
    # Outer-scope tensors read inside a node's subgraphs (If/Loop/Scan): they stay live until that node runs.
    implicit_inputs: dict[int, list[str]] = field(default_factory=dict)
    folded_nodes: int = 0  # nodes whose inputs are all constant: folded at load time, not run

    @property
    def weight_bytes(self) -> int:
        return sum(self.tensors[w].nbytes for w in self.weights)

    @property
    def dequantized_weight_bytes(self) -> int:
        """Float copies of weights that DequantizeLinear nodes write on every run (a QDQ model whose MatMul
        onnxruntime did not fuse with its weight's DQ): memory a run touches beside the stored weights."""
        return sum(n.outputs[0].nbytes for n in self.nodes
                   if n.op_type == "DequantizeLinear" and n.has_input(0) and n.inputs[0].is_weight)

    def consumers(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for i, n in enumerate(self.nodes):
            for t in n.inputs:
                if t is not None:
                    out.setdefault(t.name, []).append(i)
        return out
