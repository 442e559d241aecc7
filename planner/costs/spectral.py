"""Signal processing: DFT, STFT, window functions, MelWeightMatrix (VECTOR).  Bytes: io_cost.

    DFT    an FFT of length L costs 5·L·log2(L) (the radix-2 complex count; Bluestein/mixed radix taken the
           same); a real input (last dim 1) costs half.  L = max(input, output) length on the transform axis
           (attribute `axis`, opset 17, else the axis before the complex dim: the opset-20 default -2);
           FLOPs = transforms · 5·L·ceil(log2 L), transforms = numel(X) / (L_in · last dim).
    STFT   signal [B, len, 1|2], output [B, frames, bins, 2], frame length L = the window's length (else from
           bins: 2·(bins - 1) onesided, bins otherwise): B·frames·(5·L·ceil(log2 L) (/2 real) + L windowing).
    HannWindow, HammingWindow   0.5 - 0.5·cos(2πn/N) and the like: 5 per output element
    BlackmanWindow              two cosine terms: 9 per output element
    MelWeightMatrix             triangular filters: 4 per output element
"""

from __future__ import annotations

import math

from planner.costs.registry import OpClass, OpCost, io_cost, out_numel, register
from planner.model.ir import NodeInfo

FFT = 5
WINDOW = {"HannWindow": 5, "HammingWindow": 5, "BlackmanWindow": 9, "MelWeightMatrix": 4}


def fft_flops(length: int, real: bool) -> int:
    if length <= 1:
        return 0
    f = FFT * length * math.ceil(math.log2(length))
    return f // 2 if real else f


@register("DFT", op_class=OpClass.VECTOR)
def dft(node: NodeInfo) -> OpCost:
    x, y = node.in_shape(0), node.out_shape(0)
    if x is None or len(x) < 2:
        return io_cost(node)
    axis = node.attr("axis", None)
    axis = axis if isinstance(axis, int) and -len(x) < axis < len(x) - 1 else len(x) - 2
    axis %= len(x)
    n_in = x[axis]
    n_out = y[axis] if y is not None and len(y) == len(x) else n_in
    length = max(n_in, n_out)
    transforms = math.prod(x) // max(n_in * x[-1], 1)
    return io_cost(node, transforms * fft_flops(length, real=x[-1] == 1))


@register("STFT", op_class=OpClass.VECTOR)
def stft(node: NodeInfo) -> OpCost:
    x, y, w = node.in_shape(0), node.out_shape(0), node.in_shape(2)
    if x is None or y is None or len(y) != 4 or len(x) != 3:
        return io_cost(node)
    batch, frames, bins = y[0], y[1], y[2]
    if w is not None and len(w) == 1:
        length = w[0]
    else:
        length = 2 * (bins - 1) if node.attr("onesided", 1) else bins
    return io_cost(node, batch * frames * (fft_flops(length, real=x[-1] == 1) + length))


def _make(k: int):
    def formula(node: NodeInfo) -> OpCost:
        return io_cost(node, out_numel(node) * k)

    return formula


for _op, _k in WINDOW.items():
    _f = _make(_k)
    _f.__name__ = f"window_{_op}"
    register(_op, op_class=OpClass.VECTOR)(_f)
