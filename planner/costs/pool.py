"""Pooling, resampling and ROI ops (VECTOR).  Bytes: io_cost.

    MaxPool, AveragePool, LpPool     numel(Y) · prod(kernel_shape)     one compare / add per window tap
                                     (Y's shape, else the Conv output-size rule; ceil_mode ignored)
    GlobalAveragePool, GlobalMaxPool, GlobalLpPool    numel(X)
    Resize, Upsample, GridSample     numel(Y) · taps, taps = 1 nearest, 2^d linear, 4^d cubic, where d is
                                     the number of resized axes (axes where X and Y differ; the spatial rank
                                     when a shape is unknown; GridSample: rank(X) - 2).  One FLOP per tap:
                                     the interpolation weights are per output coordinate, not per element.
    AffineGrid                       numel(grid) · 2·d, d = grid's last dim (a length-d dot product each)
    RoiAlign                         numel(Y) · s² · 8, s = sampling_ratio (2 when adaptive, i.e. 0);
                                     a bilinear sample is 4 weighted taps = 8
    MaxRoiPool                       numel(Y) / (pooled_h · pooled_w) · H · W: an ROI is at most the whole map
    MaxUnpool                        scatter into a zeroed output: DATA, bytes only
The com.microsoft.nchwc pooling/Upsample ops that onnxruntime saves at ORT_ENABLE_ALL get the same formulas.
"""

from __future__ import annotations

import math

from planner.costs.conv import conv_out_spatial
from planner.costs.registry import OpClass, OpCost, attr_str, in_numel, io_cost, out_numel, register
from planner.model.ir import NodeInfo

NCHWC = "com.microsoft.nchwc"


def _pool_out_numel(node: NodeInfo, kernel: list[int]) -> int | None:
    y = node.out_shape(0)
    if y is not None:
        return math.prod(y)
    x = node.in_shape(0)
    if x is None or len(x) != len(kernel) + 2:
        return None
    return x[0] * x[1] * math.prod(conv_out_spatial(node, x[2:], kernel))


@register("MaxPool", op_class=OpClass.VECTOR)
@register("AveragePool", op_class=OpClass.VECTOR)
@register("LpPool", op_class=OpClass.VECTOR)
@register("MaxPool", domain=NCHWC, op_class=OpClass.VECTOR)
@register("AveragePool", domain=NCHWC, op_class=OpClass.VECTOR)
def pool(node: NodeInfo) -> OpCost:
    k = node.attr("kernel_shape", None)
    kernel = [int(v) for v in k] if isinstance(k, (list, tuple)) else []
    n_out = _pool_out_numel(node, kernel)
    if n_out is None:
        return io_cost(node)
    return io_cost(node, n_out * math.prod(kernel))


@register("GlobalAveragePool", op_class=OpClass.VECTOR)
@register("GlobalMaxPool", op_class=OpClass.VECTOR)
@register("GlobalLpPool", op_class=OpClass.VECTOR)
@register("GlobalAveragePool", domain=NCHWC, op_class=OpClass.VECTOR)
@register("GlobalMaxPool", domain=NCHWC, op_class=OpClass.VECTOR)
def global_pool(node: NodeInfo) -> OpCost:
    return io_cost(node, in_numel(node))


def interpolation_taps(mode: str, d: int) -> int:
    mode = mode.lower()
    if "cubic" in mode:
        return 4**d
    if "linear" in mode:  # linear, bilinear, trilinear
        return 2**d
    return 1


def _resized_axes(node: NodeInfo) -> int:
    x, y = node.in_shape(0), node.out_shape(0)
    if x is not None and y is not None and len(x) == len(y):
        return sum(1 for a, b in zip(x, y, strict=True) if a != b)
    rank = len(x) if x is not None else (len(y) if y is not None else 4)
    return max(rank - 2, 1)


@register("Resize", op_class=OpClass.VECTOR)
@register("Upsample", op_class=OpClass.VECTOR)
@register("Upsample", domain=NCHWC, op_class=OpClass.VECTOR)
def resize(node: NodeInfo) -> OpCost:
    taps = interpolation_taps(attr_str(node, "mode", "nearest"), _resized_axes(node))
    return io_cost(node, out_numel(node) * taps)


@register("GridSample", op_class=OpClass.VECTOR)
@register("GridSample", domain="com.microsoft", op_class=OpClass.VECTOR)
def grid_sample(node: NodeInfo) -> OpCost:
    x = node.in_shape(0)
    d = max(len(x) - 2, 1) if x is not None else 2
    taps = interpolation_taps(attr_str(node, "mode", "linear"), d)
    return io_cost(node, out_numel(node) * taps)


@register("AffineGrid", op_class=OpClass.VECTOR)
def affine_grid(node: NodeInfo) -> OpCost:
    y = node.out_shape(0)
    d = y[-1] if y else 2
    return io_cost(node, out_numel(node) * 2 * d)


@register("RoiAlign", op_class=OpClass.VECTOR)
def roi_align(node: NodeInfo) -> OpCost:
    s = node.attr("sampling_ratio", 0)
    s = int(s) if isinstance(s, (int, float)) and s > 0 else 2
    return io_cost(node, out_numel(node) * s * s * 8)


@register("MaxRoiPool", op_class=OpClass.VECTOR)
def max_roi_pool(node: NodeInfo) -> OpCost:
    x, y = node.in_shape(0), node.out_shape(0)
    if x is None or y is None or len(x) < 3 or len(y) < 3:
        return io_cost(node)
    bins = math.prod(y[2:]) or 1
    return io_cost(node, math.prod(y) // bins * math.prod(x[2:]))


@register("MaxUnpool", op_class=OpClass.DATA)
def max_unpool(node: NodeInfo) -> OpCost:
    return io_cost(node)
