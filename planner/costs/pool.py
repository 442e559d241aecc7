"""Pooling, resampling and ROI ops (VECTOR).  Bytes: io_cost.

    MaxPool, AveragePool, LpPool     N·C · prod over spatial axes of Σ_o taps(o): one compare / add per window
                                     tap that lands on X (onnxruntime clips every window to the input, pads
                                     and ceil_mode's overhang cost nothing; a window of 1280x1280 over a 7x7
                                     map, as Hugging Face's EfficientNet pooler exports, is 49 taps, not
                                     1.6M).  Outputs per axis from Y's shape, else the Conv output-size rule.
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

from planner.costs.conv import conv_out_spatial, int_attrs
from planner.costs.registry import OpClass, OpCost, attr_str, in_numel, io_cost, out_numel, register
from planner.model.ir import NodeInfo

NCHWC = "com.microsoft.nchwc"


EXACT_LOOP = 1 << 20  # past this many windows and taps on one axis (no real model), the unclipped count


def axis_taps(length: int, kernel: int, stride: int, dilation: int, pad_begin: int, outputs: int) -> int:
    """Window taps on one axis that land inside the input, summed over the axis's outputs: counted per tap (the
    outputs whose window puts that tap inside) or per output, whichever is fewer."""
    if min(kernel, outputs) > EXACT_LOOP:
        return kernel * outputs
    if kernel <= outputs:
        total = 0
        for k in range(kernel):  # output o reads o·stride - pad_begin + k·dilation: inside for o in [lo, hi]
            offset = k * dilation - pad_begin
            lo = max(0, -(offset // stride))
            hi = min(outputs - 1, (length - 1 - offset) // stride) if length - 1 >= offset else -1
            total += max(0, hi - lo + 1)
        return total
    total = 0
    for o in range(outputs):
        start = o * stride - pad_begin
        lo = -(-max(0, -start) // dilation)
        hi = min(kernel - 1, (length - 1 - start) // dilation) if length - 1 >= start else -1
        total += max(0, hi - lo + 1)
    return total


def _pad_begin(node: NodeInfo, in_sp: list[int], kernel: list[int], out_sp: list[int],
               strides: list[int], dil: list[int]) -> list[int]:
    d = len(in_sp)
    auto_pad = attr_str(node, "auto_pad", "NOTSET")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        total = [max((out_sp[i] - 1) * strides[i] + dil[i] * (kernel[i] - 1) + 1 - in_sp[i], 0)
                 for i in range(d)]
        return [t // 2 if auto_pad == "SAME_UPPER" else t - t // 2 for t in total]
    if auto_pad == "VALID":
        return [0] * d
    return int_attrs(node, "pads", 2 * d, 0)[:d]


def pool_taps(node: NodeInfo, kernel: list[int]) -> int | None:
    """Window taps onnxruntime computes: every output's window clipped to the input."""
    x, y = node.in_shape(0), node.out_shape(0)
    d = len(kernel)
    if x is None or len(x) != d + 2:
        return math.prod(y) * math.prod(kernel) if y is not None else None
    in_sp = list(x[2:])
    out_sp = list(y[2:]) if y is not None and len(y) == d + 2 else list(conv_out_spatial(node, in_sp, kernel))
    strides = [max(s, 1) for s in int_attrs(node, "strides", d, 1)]
    dil = [max(v, 1) for v in int_attrs(node, "dilations", d, 1)]
    begin = _pad_begin(node, in_sp, kernel, out_sp, strides, dil)
    return x[0] * x[1] * math.prod(axis_taps(in_sp[i], kernel[i], strides[i], dil[i], begin[i], out_sp[i])
                                   for i in range(d))


@register("MaxPool", op_class=OpClass.VECTOR)
@register("AveragePool", op_class=OpClass.VECTOR)
@register("LpPool", op_class=OpClass.VECTOR)
@register("MaxPool", domain=NCHWC, op_class=OpClass.VECTOR)
@register("AveragePool", domain=NCHWC, op_class=OpClass.VECTOR)
def pool(node: NodeInfo) -> OpCost:
    k = node.attr("kernel_shape", None)
    kernel = [int(v) for v in k] if isinstance(k, (list, tuple)) else []
    taps = pool_taps(node, kernel) if kernel else None
    if taps is None:
        return io_cost(node)
    return io_cost(node, taps)


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
