"""Random generators, detection, strings and sequences.

VECTOR, per output element:
    RandomUniform, RandomUniformLike    counter-based generator + scale: 4
    RandomNormal, RandomNormalLike      uniform pair + Box-Muller (log, sqrt, cos, muls): 8
    Bernoulli                           uniform (4) + compare: 5
    Multinomial  input [B, classes] -> [B, samples]: B·classes (cumulative sum)
                 + numel(Y)·(4 + ceil(log2 classes)) (a draw and a binary search per sample)
    NonMaxSuppression  boxes [B, n, 4], scores [B, C, n]: per batch and class, sort (n·ceil(log2 n)) and
                 12 FLOPs per IoU for n·min(n, 100) pairs — max_output_boxes_per_class is a runtime input,
                 kept boxes are assumed ≤ 100.
DATA (io_cost): string ops (RegexFullMatch, StringConcat, StringNormalizer, StringSplit, TfIdfVectorizer),
    ImageDecoder, and the sequence ops that copy tensors (SequenceAt, SequenceConstruct, SequenceErase,
    SequenceInsert, SplitToSequence, ConcatFromSequence).
VIEW (zero): SequenceEmpty, SequenceLength.
Not registered: SequenceMap (a subgraph body, like If/Loop/Scan: costed by whoever walks subgraphs).
"""

from __future__ import annotations

import math

from planner.costs.registry import ZERO, OpClass, OpCost, io_cost, out_numel, register
from planner.model.ir import NodeInfo

RANDOM = {"RandomUniform": 4, "RandomUniformLike": 4, "RandomNormal": 8, "RandomNormalLike": 8,
          "Bernoulli": 5}
IOU = 12
NMS_KEPT = 100


def _make(k: int):
    def formula(node: NodeInfo) -> OpCost:
        return io_cost(node, out_numel(node) * k)

    return formula


for _op, _k in RANDOM.items():
    _f = _make(_k)
    _f.__name__ = f"random_{_op}"
    register(_op, op_class=OpClass.VECTOR)(_f)


@register("Multinomial", op_class=OpClass.VECTOR)
def multinomial(node: NodeInfo) -> OpCost:
    x = node.in_shape(0)
    if x is None or len(x) != 2:
        return io_cost(node)
    classes = max(x[1], 1)
    return io_cost(node, math.prod(x) + out_numel(node) * (4 + math.ceil(math.log2(classes))))


@register("NonMaxSuppression", op_class=OpClass.VECTOR)
def non_max_suppression(node: NodeInfo) -> OpCost:
    scores = node.in_shape(1)
    if scores is None or len(scores) != 3:
        return io_cost(node)
    b, c, n = scores
    if n <= 1:
        return io_cost(node)
    per_class = n * math.ceil(math.log2(n)) + IOU * n * min(n, NMS_KEPT)
    return io_cost(node, b * c * per_class)


@register("RegexFullMatch", "StringConcat", "StringNormalizer", "StringSplit", "TfIdfVectorizer",
          "ImageDecoder", op_class=OpClass.DATA)
@register("SequenceAt", "SequenceConstruct", "SequenceErase", "SequenceInsert", "SplitToSequence",
          "ConcatFromSequence", op_class=OpClass.DATA)
def data_io(node: NodeInfo) -> OpCost:
    return io_cost(node)


@register("SequenceEmpty", "SequenceLength", op_class=OpClass.VIEW)
def sequence_view(node: NodeInfo) -> OpCost:
    return ZERO
