"""Data movement (DATA: bytes only, no FLOPs) and views (VIEW: no kernel, zero cost).

VIEW, registered explicitly with cost ZERO (metadata only, or an identity at inference):
    Reshape, Flatten, Squeeze, Unsqueeze, Identity, Shape, Size, Constant, Dropout (inference), BitCast,
    Optional, OptionalGetElement, OptionalHasElement, com.microsoft ExpandDims.
    (Constant's value is counted once as a weight of the graph, not per read.)

DATA, io_cost (every input read once, every output written once):
    Concat, Split, Transpose, Pad, Tile and Expand (the input is read once, the output written once),
    DepthToSpace, SpaceToDepth, ConstantOfShape, Range, NonZero, OneHot, Trilu, Compress, Unique,
    ReverseSequence, EyeLike, CenterCropPad, Scatter, ScatterElements, ScatterND (functional: the data is
    copied to the output, then updated), com.microsoft.nchwc ReorderInput / ReorderOutput.

DATA, partial reads — only what is touched is read:
    Gather, GatherElements, GatherND   read indices + numel(Y) elements of data (= bytes of Y); when data is
                                       a weight (an embedding table) only those gathered bytes count as weight
    Slice                              read the slice (= bytes of Y) plus the small starts/ends/axes/steps
    TensorScatter                      the in-place KV-cache update it models: read update (+ write_indices),
                                       write bytes of update; the cache itself is not copied
"""

from __future__ import annotations

from collections.abc import Mapping

from planner.costs.registry import ZERO, OpClass, OpCost, io_cost, register
from planner.model.ir import NodeInfo

MS = "com.microsoft"


def io_cost_reading(node: NodeInfo, reads: Mapping[int, int], flops: int = 0) -> OpCost:
    """io_cost, except input i is read for only reads[i] bytes (a gather or a slice touches part of it)."""
    read = weights = 0
    for i, t in enumerate(node.inputs):
        if t is None:
            continue
        b = t.nbytes
        if i in reads:
            b = reads[i] if t.numel is None else min(b, reads[i])
        read += b
        if t.is_weight:
            weights += b
    written = sum(t.nbytes for t in node.outputs if t is not None)
    return OpCost(int(flops), read, written, weights)


def out_bytes(node: NodeInfo, i: int = 0) -> int | None:
    t = node.outputs[i] if i < len(node.outputs) else None
    if t is None or t.shape is None:
        return None
    return t.nbytes


VIEW_OPS = ["Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Shape", "Size", "Constant", "Dropout",
            "BitCast", "Optional", "OptionalGetElement", "OptionalHasElement"]


@register(*VIEW_OPS, op_class=OpClass.VIEW)
@register("ExpandDims", domain=MS, op_class=OpClass.VIEW)
def view(node: NodeInfo) -> OpCost:
    return ZERO


DATA_OPS = ["Concat", "Split", "Transpose", "Pad", "Tile", "Expand", "DepthToSpace", "SpaceToDepth",
            "ConstantOfShape", "Range", "NonZero", "OneHot", "Trilu", "Compress", "Unique", "ReverseSequence",
            "EyeLike", "CenterCropPad", "Scatter", "ScatterElements", "ScatterND"]


@register(*DATA_OPS, op_class=OpClass.DATA)
@register("Pad", "Range", "Trilu", "Unique", domain=MS, op_class=OpClass.DATA)
@register("ReorderInput", "ReorderOutput", domain="com.microsoft.nchwc", op_class=OpClass.DATA)
def data_movement(node: NodeInfo) -> OpCost:
    return io_cost(node)


@register("Gather", "GatherElements", "GatherND", "Slice", op_class=OpClass.DATA)
@register("GatherND", domain=MS, op_class=OpClass.DATA)
def gather(node: NodeInfo) -> OpCost:
    """Gathers and slices read only what they keep from input 0: as many bytes as they write."""
    taken = out_bytes(node)
    if taken is None:
        return io_cost(node)
    return io_cost_reading(node, {0: taken})


@register("TensorScatter", op_class=OpClass.DATA)
def tensor_scatter(node: NodeInfo) -> OpCost:
    upd = node.inputs[1] if node.has_input(1) else None
    if upd is None or upd.shape is None:
        return io_cost(node)
    read = upd.nbytes + (node.inputs[2].nbytes if node.has_input(2) else 0)  # type: ignore[union-attr]
    weights = sum(t.nbytes for t in node.inputs[1:3] if t is not None and t.is_weight)
    return OpCost(0, read, upd.nbytes, weights)
