"""A plain NCHW float convolution of few output channels is a family of its own (families.NARROW)."""

import pytest
from family_rates import refined_rates

from planner.costs import OpClass
from planner.model.ir import WEIGHT, NodeInfo, TensorInfo
from planner.predict.families import NARROW_ROWS, kernel_family


def conv(cout: int, op: str = "Conv", domain: str = "", weight: bool = False, cin: int = 3, k: int = 7,
         stride: int = 2) -> NodeInfo:
    ins = (TensorInfo("x", (1, cin, 64, 64), "float32"),
           TensorInfo("w", (cout, cin, k, k), "float32", WEIGHT if weight else "activation"))
    return NodeInfo("c", op, domain, ins, (TensorInfo("y", (1, cout, 32, 32), "float32"),),
                    {"kernel_shape": [k, k], "strides": [stride, stride], "pads": [k // 2] * 4})


def test_few_output_channels_of_a_plain_convolution_are_their_own_family():
    """The rows of the GEMM are its output channels: a stem of 32 (an fp16 detector's, weights cast each run) is
    "conv:narrow", one of 64 stays "conv"; FusedConv runs the same plain kernel; the blocked layout, ConvInteger
    and depthwise kernels are other families."""
    assert NARROW_ROWS == 32
    assert kernel_family(conv(32), OpClass.MATRIX) == "conv:narrow:strided"  # conv() is at stride 2
    assert kernel_family(conv(32, k=3, stride=1), OpClass.MATRIX) == "conv:narrow"
    assert kernel_family(conv(16, op="FusedConv", domain="com.microsoft", stride=1), OpClass.MATRIX) == "conv:narrow"
    assert kernel_family(conv(64), OpClass.MATRIX) == "conv"
    assert kernel_family(conv(32, op="Conv", domain="com.microsoft.nchwc", weight=True, cin=32),
                         OpClass.MATRIX) == "nchwc.conv"
    assert kernel_family(conv(32, op="ConvInteger"), OpClass.MATRIX) == "conv:im2col"


def test_a_narrow_convolution_takes_its_own_rate_and_an_older_calibration_the_plain_one():
    """Measured on a Zen 4 EPYC: the 3 -> 32 7x7 stem at 60 GFLOP/s, wide plain convolutions at 95. A calibration
    with a narrow curve times the stem by it; one from before the split by the plain conv curve."""
    assert refined_rates("conv", "conv:narrow", 95e9, 60e9) == pytest.approx((60e9, 95e9, 95e9))
    assert refined_rates("conv", "conv:narrow", 95e9, 60e9, "conv:narrow:strided")[0] == pytest.approx(60e9)


def test_the_suite_times_narrow_plain_convolutions():
    from planner.calibration.suite import PLAIN_CONV

    narrow = [c for c in PLAIN_CONV if c[1] <= NARROW_ROWS]
    assert len(narrow) >= 4 and {k for _, _, _, k, _ in narrow} >= {1, 3, 7}
    assert len([c for c in narrow if c[4] > 1]) >= 3  # the strided ones: a curve of their own


def test_a_conv_transpose_is_its_own_family_and_an_older_calibration_times_it_as_a_conv():
    """Its column scatter, not its GEMM, sets its time at few channels (families.TRANSPOSED): a DB head's
    16 -> 16 2x2/s2 ran at 2.6x what the convolution curve gave its FLOPs."""
    from planner.calibration.suite import CONV_TRANSPOSE

    node = NodeInfo("t", "ConvTranspose", "", (TensorInfo("x", (1, 16, 160, 160), "float32"),
                                               TensorInfo("w", (16, 16, 2, 2), "float32", WEIGHT)),
                    (TensorInfo("y", (1, 16, 320, 320), "float32"),), {"kernel_shape": [2, 2], "strides": [2, 2]})
    assert kernel_family(node, OpClass.MATRIX) == "conv:transpose"
    assert refined_rates("conv", "conv:transpose", 95e9, 36e9, intensity=3.0) == pytest.approx((36e9, 95e9, 95e9))
    assert {k == s for _, _, _, k, s in CONV_TRANSPOSE} == {True, False}  # stride = kernel, and overlapping
    assert min(c for _, c, _, _, _ in CONV_TRANSPOSE) <= 16  # few output channels: the scatter-bound end
