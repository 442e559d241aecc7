"""Normalisations and softmax: FLOPs = numel(X) × a per-element count (VECTOR).  Bytes: io_cost.

    BatchNormalization (inference)  y = x·a + b, a = scale/sqrt(var + eps), b = B - mean·a per channel
                                    (the per-channel fold is negligible): 2 per element
    LayerNormalization              mean (1), centre (1), square (1), accumulate (1), scale by 1/σ (1),
                                    gamma (1), beta (1), ~1 for the per-row reductions' tail: 8 per element
    GroupNormalization, InstanceNormalization: same statistics and affine as LayerNormalization: 8
    MeanVarianceNormalization       LayerNormalization without the affine: 6
    RMSNormalization, SimplifiedLayerNormalization (onnxruntime's name for it)
                                    square (1), accumulate (1), scale by 1/rms (1), gamma (1): 4
    LpNormalization                 |x| or x² (1), accumulate (1), divide (1): 3
    LRN                             sum of squares over `size` channels (size), square (1),
                                    scale and bias (2), pow (3), divide (1): size + 7
    Softmax, LogSoftmax             max (1), subtract (1), exp (1), sum (1), divide / subtract log (1): 5
    Hardmax                         one compare per element: 1
"""

from __future__ import annotations

from planner.costs.registry import OpClass, OpCost, in_numel, io_cost, register
from planner.model.ir import NodeInfo

BATCHNORM = 2
LAYERNORM = 8
RMSNORM = 4
SOFTMAX = 5

PER_ELEMENT: dict[str, int] = {
    "BatchNormalization": BATCHNORM,
    "LayerNormalization": LAYERNORM,
    "GroupNormalization": LAYERNORM,
    "InstanceNormalization": LAYERNORM,
    "MeanVarianceNormalization": LAYERNORM - 2,
    "RMSNormalization": RMSNORM,
    "LpNormalization": 3,
    "Softmax": SOFTMAX,
    "LogSoftmax": SOFTMAX,
    "Hardmax": 1,
}


def _make(k: int):
    def formula(node: NodeInfo) -> OpCost:
        return io_cost(node, in_numel(node) * k)

    return formula


for _op, _k in PER_ELEMENT.items():
    _f = _make(_k)
    _f.__name__ = f"norm_{_op}"
    _f.__doc__ = f"{_op}: {_k} FLOPs per input element."
    register(_op, op_class=OpClass.VECTOR, epilogue=_op == "BatchNormalization")(_f)


@register("LRN", op_class=OpClass.VECTOR)
def lrn(node: NodeInfo) -> OpCost:
    size = node.attr("size", 1)
    size = int(size) if isinstance(size, (int, float)) else 1
    return io_cost(node, in_numel(node) * (max(size, 1) + 7))
