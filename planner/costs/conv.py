"""Convolutions.  A multiply-add counts 2.

    Conv           X [N, C_in, *in_sp], W [C_out, C_in/group, *kernel], Y [N, C_out, *out_sp]
                   FLOPs = 2 · N · C_out · prod(out_sp) · (C_in/group) · prod(kernel)  (+ numel(Y) with bias)
                         = 2 · numel(Y) · numel(W) / C_out, which is what the code computes: it holds for any
                           layout whose W starts with C_out (NCHW, NHWC/OHWI, NCHWc), groups, depthwise.
                   out_sp from Y's shape, else from pads/strides/dilations/auto_pad:
                   out = floor((in + pad_begin + pad_end - dilation·(kernel - 1) - 1) / stride) + 1,
                   SAME_*: ceil(in / stride), VALID: floor((in - dilation·(kernel - 1) - 1) / stride) + 1.
    ConvTranspose  X [N, C_in, *in_sp], W [C_in, C_out/group, *kernel]
                   FLOPs = 2 · N · C_in · prod(in_sp) · (C_out/group) · prod(kernel)   (+ numel(Y) with bias)
                         = 2 · numel(X) · numel(W) / C_in
                   out = stride·(in - 1) + output_padding + dilation·(kernel - 1) + 1 - pad_begin - pad_end
                   (or the output_shape attribute) when Y's shape is unknown.
    DeformConv     Conv + bilinear sampling of every tap: N · C_in · prod(out_sp) · prod(kernel) · 8
                   (4 weighted taps: 4 mul + 3 add + 1 accumulate), + 1 per tap with a mask.
    Col2Im         every input element is accumulated into the image once: numel(input), VECTOR.
    CausalConvWithState  depthwise causal conv, W [C, 1, *kernel]: numel(Y) · (2·prod(kernel) + bias + act),
                   act = Swish (6) for "silu"/"swish"; VECTOR (depthwise: no matrix unit).
    com.microsoft.nchwc::Conv (saved by onnxruntime at ORT_ENABLE_ALL) is Conv plus its fused activation and
    Sum input.

Bytes: io_cost (X, W and B read once, Y written once); padding and im2col traffic are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from planner.costs.elementwise import per_element
from planner.costs.registry import OpClass, OpCost, attr_str, in_numel, io_cost, out_numel, register
from planner.model.ir import NodeInfo


def int_attrs(node: NodeInfo, name: str, n: int, default: int) -> list[int]:
    v = node.attr(name, None)
    vals = [int(x) for x in v] if isinstance(v, (list, tuple)) else []
    return [vals[i] if i < len(vals) else default for i in range(n)]


def conv_out_spatial(node: NodeInfo, in_sp: Sequence[int], kernel: Sequence[int]) -> tuple[int, ...]:
    d = len(in_sp)
    strides = [max(s, 1) for s in int_attrs(node, "strides", d, 1)]
    dil = int_attrs(node, "dilations", d, 1)
    pads = int_attrs(node, "pads", 2 * d, 0)
    auto_pad = attr_str(node, "auto_pad", "NOTSET")
    out = []
    for i in range(d):
        eff = dil[i] * (kernel[i] - 1) + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-in_sp[i] // strides[i])
        elif auto_pad == "VALID":
            o = (in_sp[i] - eff) // strides[i] + 1
        else:
            o = (in_sp[i] + pads[i] + pads[i + d] - eff) // strides[i] + 1
        out.append(max(o, 0))
    return tuple(out)


def _kernel(node: NodeInfo, w: Sequence[int], d: int, channels_last: bool) -> list[int] | None:
    k = node.attr("kernel_shape", None)
    if isinstance(k, (list, tuple)) and len(k) == d:
        return [int(x) for x in k]
    ks = list(w[1:-1]) if channels_last else list(w[2:])
    return ks if len(ks) == d else None


def conv_out_numel(node: NodeInfo, ix: int = 0, iw: int = 1, channels_last: bool = False) -> int | None:
    """numel(Y): from Y's shape, else computed from X, W and the attributes."""
    y = node.out_shape(0)
    if y is not None:
        return math.prod(y)
    x, w = node.in_shape(ix), node.in_shape(iw)
    if x is None or w is None or len(x) < 2 or len(w) < 1:
        return None
    in_sp = x[1:-1] if channels_last else x[2:]
    kernel = _kernel(node, w, len(in_sp), channels_last)
    if kernel is None:
        return None
    return x[0] * w[0] * math.prod(conv_out_spatial(node, in_sp, kernel))


def conv_flops(node: NodeInfo, ix: int = 0, iw: int = 1, ib: int | None = 2, extra_per_out: int = 0,
               channels_last: bool = False) -> int | None:
    w = node.in_shape(iw)
    if w is None or len(w) < 1 or w[0] == 0:
        return None
    n_out = conv_out_numel(node, ix, iw, channels_last)
    if n_out is None:
        return None
    macs_per_out = math.prod(w) // w[0]
    bias = 1 if ib is not None and node.has_input(ib) else 0
    return 2 * n_out * macs_per_out + (bias + extra_per_out) * n_out


def conv_cost(node: NodeInfo, ix: int = 0, iw: int = 1, ib: int | None = 2, extra_per_out: int = 0,
              channels_last: bool = False) -> OpCost:
    flops = conv_flops(node, ix, iw, ib, extra_per_out, channels_last)
    return io_cost(node) if flops is None else io_cost(node, flops)


def activation_flops(node: NodeInfo, attr: str = "activation") -> int:
    """Per-element FLOPs of a fused activation named by an attribute (FusedConv, FusedGemm, nchwc Conv)."""
    name = attr_str(node, attr, "")
    if name.lower() in ("silu", "swish"):
        return per_element("Swish")
    return per_element(name)


@register("Conv", op_class=OpClass.MATRIX)
def conv(node: NodeInfo) -> OpCost:
    return conv_cost(node)


@register("Conv", domain="com.microsoft.nchwc", op_class=OpClass.MATRIX)
def conv_nchwc(node: NodeInfo) -> OpCost:
    extra = activation_flops(node) + (1 if node.has_input(3) else 0)  # activation, Sum input
    return conv_cost(node, extra_per_out=extra)


def conv_transpose_out_numel(node: NodeInfo) -> int | None:
    y = node.out_shape(0)
    if y is not None:
        return math.prod(y)
    x, w = node.in_shape(0), node.in_shape(1)
    if x is None or w is None or len(x) < 3 or len(w) != len(x):
        return None
    d = len(x) - 2
    group = max(int(node.attr("group", 1) or 1), 1)
    c_out = w[1] * group
    shape_attr = node.attr("output_shape", None)
    if isinstance(shape_attr, (list, tuple)) and len(shape_attr) >= d:
        return x[0] * c_out * math.prod(int(s) for s in shape_attr[-d:])
    kernel = _kernel(node, w, d, False) or list(w[2:])
    strides = [max(s, 1) for s in int_attrs(node, "strides", d, 1)]
    dil = int_attrs(node, "dilations", d, 1)
    pads = int_attrs(node, "pads", 2 * d, 0)
    opad = int_attrs(node, "output_padding", d, 0)
    same = attr_str(node, "auto_pad", "NOTSET") in ("SAME_UPPER", "SAME_LOWER")
    out = []
    for i in range(d):
        if same:
            o = x[2 + i] * strides[i]
        else:
            o = strides[i] * (x[2 + i] - 1) + opad[i] + dil[i] * (kernel[i] - 1) + 1 - pads[i] - pads[i + d]
        out.append(max(o, 0))
    return x[0] * c_out * math.prod(out)


@register("ConvTranspose", op_class=OpClass.MATRIX)
def conv_transpose(node: NodeInfo) -> OpCost:
    x, w = node.in_shape(0), node.in_shape(1)
    if x is None or w is None or len(w) < 1 or w[0] == 0:
        return io_cost(node)
    flops = 2 * math.prod(x) * (math.prod(w) // w[0])
    if node.has_input(2):
        flops += conv_transpose_out_numel(node) or 0
    return io_cost(node, flops)


@register("DeformConv", op_class=OpClass.MATRIX)
def deform_conv(node: NodeInfo) -> OpCost:
    x, w = node.in_shape(0), node.in_shape(1)
    flops = conv_flops(node, ib=3)
    n_out = conv_out_numel(node)
    if flops is None or n_out is None or x is None or w is None or len(x) < 2 or len(w) < 3 or w[0] == 0:
        return io_cost(node)
    taps = (n_out // w[0]) * x[1] * math.prod(w[2:])  # N · C_in · prod(out_sp) · prod(kernel)
    return io_cost(node, flops + taps * (8 + (1 if node.has_input(4) else 0)))


@register("Col2Im", op_class=OpClass.VECTOR)
def col2im(node: NodeInfo) -> OpCost:
    return io_cost(node, in_numel(node))


@register("CausalConvWithState", op_class=OpClass.VECTOR)
@register("CausalConvWithState", domain="com.microsoft", op_class=OpClass.VECTOR)
def causal_conv_with_state(node: NodeInfo) -> OpCost:
    w = node.in_shape(1)
    if w is None or len(w) < 1 or w[0] == 0:
        return io_cost(node)
    taps = math.prod(w) // w[0]
    act = per_element("Swish") if attr_str(node, "activation", "none").lower() in ("silu", "swish") else 0
    bias = 1 if node.has_input(2) else 0
    n = out_numel(node) or in_numel(node)
    return io_cost(node, n * (2 * taps + bias + act))
