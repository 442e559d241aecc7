"""Operator cost formulas, one small pure function per (domain, op_type).

A formula sees a node's shapes, dtypes and attributes only, never a hardware target: what an op costs is a
property of the op, how fast that runs is a property of the target (see planner.predict.roofline).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from planner.model.ir import NodeInfo


@dataclass(frozen=True)
class OpCost:
    flops: int = 0  # a multiply-add counts 2
    bytes_read: int = 0
    bytes_written: int = 0
    weight_bytes: int = 0  # the part of bytes_read that is weights (initializers / constants)

    def __add__(self, other: OpCost) -> OpCost:
        return OpCost(
            self.flops + other.flops,
            self.bytes_read + other.bytes_read,
            self.bytes_written + other.bytes_written,
            self.weight_bytes + other.weight_bytes,
        )

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written


ZERO = OpCost()


class OpClass(str, Enum):
    """Which units of a processor an op keeps busy; the roofline picks the peak from this."""

    MATRIX = "matrix"  # GEMM/conv-like: tensor cores / AMX / matrix engines at the dtype's peak
    VECTOR = "vector"  # elementwise, reductions, normalisations: SIMD/CUDA cores
    DATA = "data"  # pure data movement (Concat, Transpose, Gather, Pad): bytes only
    VIEW = "view"  # metadata only (Reshape, Shape, Identity, Squeeze): no kernel, no bytes


Formula = Callable[[NodeInfo], OpCost]


@dataclass(frozen=True)
class OpSpec:
    domain: str
    op_type: str
    formula: Formula
    op_class: OpClass
    # An epilogue op can be folded into the kernel of the op that produces its input (bias, activation,
    # residual add, clip): its intermediate tensor never reaches memory on runtimes that fuse.
    epilogue: bool = False


_REGISTRY: dict[tuple[str, str], OpSpec] = {}


def normalize_domain(domain: str) -> str:
    return "" if domain in ("", "ai.onnx") else domain


def register(*op_types: str, domain: str = "", op_class: OpClass = OpClass.VECTOR,
             epilogue: bool = False) -> Callable[[Formula], Formula]:
    """Register `formula` for each op type; registering the same (domain, op_type) twice is an error."""

    def deco(formula: Formula) -> Formula:
        d = normalize_domain(domain)
        for op in op_types:
            key = (d, op)
            if key in _REGISTRY:
                raise ValueError(f"cost formula for {d or 'ai.onnx'}::{op} registered twice")
            _REGISTRY[key] = OpSpec(d, op, formula, op_class, epilogue)
        return formula

    return deco


def lookup(domain: str, op_type: str) -> OpSpec | None:
    return _REGISTRY.get((normalize_domain(domain), op_type))


def registered() -> dict[tuple[str, str], OpSpec]:
    return dict(_REGISTRY)


# ---- helpers shared by the formula modules -------------------------------------------------------------


def io_cost(node: NodeInfo, flops: int = 0) -> OpCost:
    """Read every input once, write every output once: the right byte count for most ops."""
    read = sum(t.nbytes for t in node.inputs if t is not None)
    written = sum(t.nbytes for t in node.outputs if t is not None)
    weights = sum(t.nbytes for t in node.inputs if t is not None and t.is_weight)
    return OpCost(int(flops), read, written, weights)


def attr_str(node: NodeInfo, name: str, default: str = "") -> str:
    """A string attribute as `str` (ONNX stores them as bytes), or `default` when absent."""
    v = node.attr(name, default)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return v if isinstance(v, str) else default


def out_numel(node: NodeInfo, i: int = 0) -> int:
    t = node.outputs[i] if i < len(node.outputs) else None
    return 0 if t is None or t.numel is None else t.numel


def in_numel(node: NodeInfo, i: int = 0) -> int:
    t = node.inputs[i] if i < len(node.inputs) else None
    return 0 if t is None or t.numel is None else t.numel


@dataclass(frozen=True)
class NodeCost:
    cost: OpCost
    op_class: OpClass
    epilogue: bool
    known: bool  # False: no formula, planned by its bytes alone


def node_cost(node: NodeInfo) -> NodeCost:
    """The cost of one node; an op without a formula costs its bytes and is marked unknown, never a crash."""
    spec = lookup(node.domain, node.op_type)
    if spec is None:
        return NodeCost(io_cost(node), OpClass.DATA, False, False)
    return NodeCost(spec.formula(node), spec.op_class, spec.epilogue, True)
