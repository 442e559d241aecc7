import pytest
from costs_helpers import cost


@pytest.mark.parametrize("op, per", [("ReduceMean", 1), ("ReduceSum", 1), ("ReduceMax", 1), ("ReduceMin", 1),
                                     ("ReduceProd", 1), ("ReduceLogSum", 1), ("ReduceL1", 2), ("ReduceL2", 2),
                                     ("ReduceSumSquare", 2), ("ReduceLogSumExp", 3), ("ArgMax", 1),
                                     ("ArgMin", 1), ("CumSum", 1), ("CumProd", 1)])
def test_per_input_element(op, per):
    b, s, h = 4, 128, 768
    c = cost(op, [(b, s, h)], [(b, s, 1)], {"axes": [-1]})
    assert c.flops == per * b * s * h
    assert c.bytes_read == b * s * h * 4 and c.bytes_written == b * s * 4


def test_noop_with_empty_axes_is_identity():
    n = 1000
    assert cost("ReduceSum", [(n,)], [(n,)], {"noop_with_empty_axes": 1}).flops == 0
    assert cost("ReduceSum", [(n,), ((1,), "int64")], [(1,)], {"noop_with_empty_axes": 1}).flops == n


def test_topk_heap():
    rows, vocab, k = 4, 50257, 5
    c = cost("TopK", [(rows, vocab), ((1,), "int64")], [(rows, k), ((rows, k), "int64")])
    assert c.flops == rows * vocab * 3  # ceil(log2(k + 1))
    assert c.bytes_written == rows * k * (4 + 8)


def test_losses():
    n, classes = 32, 1000
    assert cost("NegativeLogLikelihoodLoss", [(n, classes), ((n,), "int64")], [()]).flops == 2 * n
    assert cost("SoftmaxCrossEntropyLoss", [(n, classes), ((n,), "int64")], [()]).flops \
        == 5 * n * classes + 2 * n
