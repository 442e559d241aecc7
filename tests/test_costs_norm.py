import pytest
from costs_helpers import W, cost

from planner.costs import OpClass, lookup


def test_batchnorm_inference_two_per_element_and_epilogue():
    n, c, h, w = 8, 64, 56, 56
    params = [((c,), "float32", W)] * 4
    cst = cost("BatchNormalization", [(n, c, h, w), *params], [(n, c, h, w)])
    assert cst.flops == 2 * n * c * h * w
    assert cst.weight_bytes == 4 * c * 4
    spec = lookup("", "BatchNormalization")
    assert spec.epilogue and spec.op_class is OpClass.VECTOR


@pytest.mark.parametrize("op, per", [("LayerNormalization", 8), ("RMSNormalization", 4),
                                     ("GroupNormalization", 8), ("InstanceNormalization", 8),
                                     ("MeanVarianceNormalization", 6), ("LpNormalization", 3),
                                     ("Softmax", 5), ("LogSoftmax", 5), ("Hardmax", 1)])
def test_per_element(op, per):
    b, s, h = 4, 128, 768
    assert cost(op, [(b, s, h), ((h,), "float32", W)], [(b, s, h)]).flops == per * b * s * h


def test_layernorm_bytes():
    b, s, h = 2, 64, 1024
    c = cost("LayerNormalization", [(b, s, h), ((h,), "float32", W), ((h,), "float32", W)], [(b, s, h)])
    assert c.bytes_read == (b * s * h + 2 * h) * 4
    assert c.bytes_written == b * s * h * 4


def test_lrn_depends_on_size():
    n, c, hw, size = 1, 96, 55, 5
    assert cost("LRN", [(n, c, hw, hw)], [(n, c, hw, hw)], {"size": size}).flops == n * c * hw * hw * (size + 7)
