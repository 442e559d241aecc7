"""Reductions, scans, selection and losses (VECTOR).  FLOPs ≈ numel(X) × a per-element count; bytes: io_cost.

    ReduceSum, ReduceMean, ReduceMax, ReduceMin, ReduceProd, ReduceLogSum      1 per input element
    ReduceL1 (|x| + add), ReduceL2 (x² + add), ReduceSumSquare (x² + add)      2
    ReduceLogSumExp (max, exp, add)                                            3
        (the per-output tail — divide for the mean, sqrt, log — is negligible and not counted;
         noop_with_empty_axes=1 without axes is an identity: 0)
    ArgMax, ArgMin                  1 compare per input element
    CumSum, CumProd                 1 per input element
    TopK                            numel(X) · ceil(log2(k + 1)): a k-heap per slice, k = Y's size on `axis`
    NegativeLogLikelihoodLoss       gather, weight and accumulate: 2 per target element
    SoftmaxCrossEntropyLoss         LogSoftmax (5 per score) + NegativeLogLikelihoodLoss
"""

from __future__ import annotations

from planner.costs.norm import SOFTMAX
from planner.costs.registry import OpClass, OpCost, in_numel, io_cost, register
from planner.model.ir import NodeInfo

PER_ELEMENT: dict[str, int] = {
    "ReduceSum": 1, "ReduceMean": 1, "ReduceMax": 1, "ReduceMin": 1, "ReduceProd": 1, "ReduceLogSum": 1,
    "ReduceL1": 2, "ReduceL2": 2, "ReduceSumSquare": 2, "ReduceLogSumExp": 3,
    "ArgMax": 1, "ArgMin": 1, "CumSum": 1, "CumProd": 1,
}


def _is_noop(node: NodeInfo) -> bool:
    if not node.attr("noop_with_empty_axes", 0):
        return False
    axes = node.attr("axes", None)
    return not axes and not node.has_input(1)


def _make(k: int):
    def formula(node: NodeInfo) -> OpCost:
        if node.op_type.startswith("Reduce") and _is_noop(node):
            return io_cost(node)
        return io_cost(node, in_numel(node) * k)

    return formula


for _op, _k in PER_ELEMENT.items():
    _f = _make(_k)
    _f.__name__ = f"reduce_{_op}"
    _f.__doc__ = f"{_op}: {_k} FLOPs per input element."
    register(_op, op_class=OpClass.VECTOR)(_f)


@register("TopK", op_class=OpClass.VECTOR)
def topk(node: NodeInfo) -> OpCost:
    y = node.out_shape(0)
    axis = node.attr("axis", -1)
    k = 1
    if y and isinstance(axis, int) and -len(y) <= axis < len(y):
        k = max(y[axis], 1)
    return io_cost(node, in_numel(node) * k.bit_length())


@register("NegativeLogLikelihoodLoss", op_class=OpClass.VECTOR)
def nll_loss(node: NodeInfo) -> OpCost:
    return io_cost(node, 2 * in_numel(node, 1))


@register("SoftmaxCrossEntropyLoss", op_class=OpClass.VECTOR)
def softmax_cross_entropy(node: NodeInfo) -> OpCost:
    return io_cost(node, SOFTMAX * in_numel(node) + 2 * in_numel(node, 1))
