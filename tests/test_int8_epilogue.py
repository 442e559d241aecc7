"""An int8 GEMM's work around the GEMM (requantizing outputs, quantizing A) is fitted per output and per A element
from benches of the GEMM alone and wrapped, and added back per kernel by the shape."""

import dataclasses

import pytest

from planner.calibration.fit import _Net, bench_grid, fit_epilogues
from planner.calibration.rates import CalibratedRates
from planner.calibration.samples import Sample

RATE = 400e9  # the wrapped GEMM's rate, flat over intensity
SHAPES = [(64, 512, 512), (512, 32, 512), (512, 2048, 512), (1, 1024, 1024), (1500, 192, 768)]


def _sample(family: str, m: int, k: int, n: int, per_out: float, per_a: float, label: str) -> Sample:
    flops = 2 * m * k * n + (4 * m * k if per_a else 0)
    seconds = 2 * m * k * n / RATE + per_out * m * n + per_a * m * k
    return Sample(family, "matrix", "int8", flops, m * k + k * n + m * n, seconds, f"{label} {m}x{k}x{n}")


def test_the_label_gives_the_output_grid():
    assert bench_grid("DynamicQuantizeMatMul u8 weights 48x384x1536") == (48, 1536, 1)
    assert bench_grid("QLinearMatMul activations 8x1x64x65") == (1, 65, 8)
    assert bench_grid("ConvInteger 64->16 160x160 k3") == (0, 16, 1)
    assert bench_grid("ConvInteger 104->104 28x28 k3 g13") == (0, 8, 13)
    assert bench_grid("Add stream 48 KiB") is None


def test_per_output_and_per_a_costs_are_recovered_from_benches_made_by_the_formula():
    """QLinearMatMul: 0.25 ns an output; DynamicQuantizeMatMul: 0.15 ns an output and 0.12 ns an A element (its
    FLOPs count 4 per A element, at the GEMM's rate, which the fit takes out first); MatMulInteger alone: none."""
    base = ((1.0, RATE), (1e4, RATE))
    samples = [_sample("gemm:q", *s, 0.25e-9, 0.0, "QLinearMatMul") for s in SHAPES]
    samples += [_sample("gemm:dq", *s, 0.15e-9, 0.12e-9, "DynamicQuantizeMatMul") for s in SHAPES]
    samples += [_sample("gemm", *s, 0.0, 0.0, "MatMulInteger") for s in SHAPES]
    got = fit_epilogues(samples, _Net({}, ()), {"gemm.int8": base})
    assert set(got) == {"gemm:q", "gemm:dq"}  # MatMulInteger is the core itself
    assert got["gemm:q"] == pytest.approx((0.25e-9, 0.0, 0.0), rel=1e-6)
    # the 4 FLOPs per A element are timed at the GEMM's rate (0.01 ns): the fit keeps the 0.11 ns beyond them
    assert got["gemm:dq"] == pytest.approx((0.15e-9, 0.12e-9 - 4 / RATE, 0.0), rel=1e-6)


def test_a_bench_timed_by_its_weight_read_says_nothing_of_the_epilogue():
    """Beside benches made by the formula (0.25 ns an output), QLinearMatMul 4 x 1024 x 1024 over 1 MiB of weights
    that read at 5 GB/s (210 us) and ran 150 us: its net time is what is left after the read (the floor, 15 us),
    under its GEMM alone (21 us at 400 G op/s); it would pull the fit below the formula. It is left out."""
    base = ((1.0, RATE), (1e4, RATE))
    samples = [_sample("gemm:q", *s, 0.25e-9, 0.0, "QLinearMatMul") for s in SHAPES]
    bound = dataclasses.replace(_sample("gemm:q", 4, 1024, 1024, 0.0, 0.0, "QLinearMatMul"), seconds=150e-6,
                                weight_bytes=1 << 20)
    net = _Net({}, ((1.0, 5e9), (1e10, 5e9)))
    assert net.weight_bound(bound)
    assert fit_epilogues([*samples, bound], net, {"gemm.int8": base})["gemm:q"] == pytest.approx(
        (0.25e-9, 0.0, 0.0), rel=1e-6)


def test_a_kernel_adds_its_epilogue_by_its_shape():
    """[1500, 192] x [192, 768] requantized: 1,152,000 outputs x 0.25 ns = 288 us beyond the GEMM's
    442,368,000 FLOPs at 400 G op/s (1,105.92 us)."""
    from planner.costs import OpClass, OpCost
    from planner.targets.catalog import bundled_targets
    from planner.targets.rates import Work

    rates = CalibratedRates(rate_curves={"gemm.int8": ((1.0, RATE), (1e4, RATE))},
                            epilogue_s={"gemm:q": (0.25e-9, 0.0), "gemm:dq": (0.0, 1e-9)})
    flops = 2 * 1500 * 192 * 768
    cost = OpCost(flops=flops, bytes_read=1500 * 192 + 192 * 768, bytes_written=1500 * 768)
    work = Work(cost, OpClass.MATRIX, "gemm:q", "int8", 1e15, 200.0, grid=(1500, 768, 1))
    t = rates.terms(work, bundled_targets()["a10g"])
    assert t.compute_s == pytest.approx(1105.92e-6 + 288e-6)
    # quantizing A: K from the FLOPs (2·M·N·K + 4·M·K), 1500 x 192 elements at 1 ns
    dq = Work(OpCost(flops=flops + 4 * 1500 * 192, bytes_read=1), OpClass.MATRIX, "gemm:dq", "int8", 1e15, 200.0,
              grid=(1500, 768, 1))
    assert rates.terms(dq, bundled_targets()["a10g"]).compute_s == pytest.approx(
        (flops + 4 * 1500 * 192) / RATE + 1500 * 192 * 1e-9)


def _conv(cin: int, cout: int, side: int, k: int, per_col: float) -> Sample:
    """A ConvInteger bench at stride 1, same padding: flops 2·M·(C·k²)·side², columns C·k²·side²."""
    cols = cin * k * k * side * side
    flops = 2 * cout * cols
    nbytes = cin * side * side + cout * cin * k * k + 4 * cout * side * side
    return Sample("conv:im2col", "matrix", "int8", flops, nbytes, flops / RATE + per_col * cols,
                  f"ConvInteger {cin}->{cout} {side}x{side} k{k}")


def test_a_convinteger_that_builds_columns_pays_per_column_element():
    """onnxruntime's ConvInteger copies a non-pointwise input into im2col columns first: 0.17 ns a column element
    is recovered from benches made by that formula; a 32->32 3x3 over 320x320 then costs its 1.887 G op at
    400 G op/s (4,718 us) plus 29,491,200 columns x 0.17 ns (5,014 us)."""
    from planner.costs import OpClass, OpCost
    from planner.targets.catalog import bundled_targets
    from planner.targets.rates import Work

    samples = [_conv(*s, 0.17e-9) for s in [(64, 64, 56, 3), (16, 32, 32, 3), (64, 16, 160, 3), (32, 32, 192, 3)]]
    got = fit_epilogues(samples, _Net({}, ()), {"conv.int8": ((1.0, RATE), (1e4, RATE))})
    assert got == {"conv:im2col": pytest.approx((0.0, 0.17e-9, 0.0), rel=1e-6)}
    rates = CalibratedRates(rate_curves={"conv.int8": ((1.0, RATE), (1e4, RATE))}, epilogue_s=got)
    flops = 2 * 32 * 32 * 9 * 320 * 320
    work = Work(OpCost(flops=flops, bytes_read=1), OpClass.MATRIX, "conv:im2col", "int8", 1e15, 100.0,
                grid=(320 * 320, 32, 1))
    assert rates.terms(work, bundled_targets()["a10g"]).compute_s == pytest.approx(
        flops / RATE + 32 * 9 * 320 * 320 * 0.17e-9)


def test_only_a_convinteger_that_is_not_pointwise_builds_columns():
    from planner.costs import OpClass
    from planner.model.ir import WEIGHT, NodeInfo, TensorInfo
    from planner.predict.families import kernel_family

    def conv(k: int, op: str = "ConvInteger", **attrs) -> NodeInfo:
        ins = (TensorInfo("x", (1, 8, 16, 16), "uint8"), TensorInfo("w", (8, 8, k, k), "uint8", WEIGHT))
        return NodeInfo("c", op, "", ins, (TensorInfo("y", (1, 8, 16, 16), "int32"),),
                        {"kernel_shape": [k, k], **attrs})

    assert kernel_family(conv(3, pads=[1, 1, 1, 1]), OpClass.MATRIX) == "conv:im2col"
    assert kernel_family(conv(1), OpClass.MATRIX) == "conv"
    assert kernel_family(conv(1, strides=[2, 2]), OpClass.MATRIX) == "conv:im2col"
    assert kernel_family(conv(3, op="Conv", pads=[1, 1, 1, 1]), OpClass.MATRIX) == "conv:narrow"  # 8 rows


def test_a_grouped_convinteger_pays_per_group_too():
    """A grouped ConvInteger runs one im2col and one GEMM per group: benches made as FLOPs at 400 G op/s + 0.17 ns
    a column + 1.5 us a group (dense ones have one group) give both back; RegNet's 104-channel 3x3 in groups of 8
    on 28x28 is then its FLOPs + 733,824 columns x 0.17 ns + 13 groups x 1.5 us."""
    from planner.costs import OpClass, OpCost
    from planner.targets.catalog import bundled_targets
    from planner.targets.rates import Work

    def grouped(c: int, width: int, side: int) -> Sample:
        groups, cols = c // width, c * 9 * side * side
        flops = 2 * width * cols
        return Sample("conv:im2col", "matrix", "int8", flops, 1, flops / RATE + 0.17e-9 * cols + 1.5e-6 * groups,
                      f"ConvInteger {c}->{c} {side}x{side} k3 g{groups}")

    samples = [_conv(64, 64, 56, 3, 0.17e-9), _conv(16, 32, 32, 3, 0.17e-9)]
    samples = [dataclasses.replace(s, seconds=s.seconds + 1.5e-6) for s in samples]  # one group each
    samples += [grouped(*g) for g in [(48, 8, 56), (104, 8, 28), (208, 8, 14), (440, 8, 7)]]
    got = fit_epilogues(samples, _Net({}, ()), {"conv.int8": ((1.0, RATE), (1e4, RATE))})
    assert got["conv:im2col"] == pytest.approx((0.0, 0.17e-9, 1.5e-6), rel=1e-6)
    rates = CalibratedRates(rate_curves={"conv.int8": ((1.0, RATE), (1e4, RATE))}, epilogue_s=got)
    flops = 2 * 8 * (104 * 9 * 28 * 28)  # 8 outputs a group, each over 8 x 9 inputs, at 28 x 28
    work = Work(OpCost(flops=flops, bytes_read=1), OpClass.MATRIX, "conv:im2col", "int8", 1e15, 100.0,
                grid=(28 * 28, 8, 13))
    assert rates.terms(work, bundled_targets()["a10g"]).compute_s == pytest.approx(
        flops / RATE + 104 * 9 * 28 * 28 * 0.17e-9 + 13 * 1.5e-6)


def test_an_nhwc_int8_grouped_convolution_is_timed_by_its_group_width():
    """onnxruntime's NHWC int8 grouped kernel runs at a rate set by the channels of a group: 3x3 groups of 8
    (RegNet's) are one family whatever the stride or image, apart from groups of 4 and of 16 or more."""
    from planner.costs import OpClass
    from planner.model.ir import WEIGHT, NodeInfo, TensorInfo
    from planner.predict.families import kernel_family

    def qconv(c: int, width: int, k: int = 3, stride: int = 1) -> NodeInfo:
        ins = (TensorInfo("x", (1, 56, 56, c), "uint8"), TensorInfo("sx", (), "float32"),
               TensorInfo("zx", (), "uint8"), TensorInfo("w", (c, width, k, k), "int8", WEIGHT))
        return NodeInfo("q", "QLinearConv", "com.microsoft", ins, (TensorInfo("y", (1, 56, 56, c), "uint8"),),
                        {"group": c // width, "kernel_shape": [k, k], "strides": [stride, stride], "channels_last": 1})

    assert kernel_family(qconv(48, 8), OpClass.MATRIX) == "nhwc.conv_grouped:w8"
    assert kernel_family(qconv(104, 8, stride=2), OpClass.MATRIX) == "nhwc.conv_grouped:w8"
    assert kernel_family(qconv(128, 4), OpClass.MATRIX) == "nhwc.conv_grouped:w4"
    assert kernel_family(qconv(448, 32), OpClass.MATRIX) == "nhwc.conv_grouped:w16"
    assert kernel_family(qconv(128, 4, k=1), OpClass.MATRIX) == "nhwc.conv_grouped_1x1"
