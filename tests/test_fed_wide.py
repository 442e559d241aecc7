"""A float GEMM fed a weight-sized B (a QDQ or fp16 model's dequantized or cast weight) is a family of its own
(families.WIDE): MLAS packs it on every call, out of whatever cache holds it."""

import pytest
from family_rates import refined_rates

from planner.costs import OpClass
from planner.model.ir import NodeInfo, TensorInfo
from planner.predict.families import WIDE_B_BYTES, kernel_family


def fed(a: tuple[int, ...], b: tuple[int, ...], **attrs) -> NodeInfo:
    y = (*a[:-1], b[-1])
    return NodeInfo("m", "FusedMatMul" if attrs else "MatMul", "com.microsoft" if attrs else "",
                    (TensorInfo("a", a, "float32"), TensorInfo("b", b, "float32")), (TensorInfo("y", y, "float32"),),
                    attrs)


def test_a_weight_sized_fed_b_is_wide_and_attention_products_are_not():
    """512 KiB is 131072 floats: a [256, 512] B is wide, [255, 512] not; Whisper's 1500 keys of 64 (96000 floats)
    and a BERT head's [64, 128] never are."""
    assert WIDE_B_BYTES == 512 * 1024
    assert kernel_family(fed((32, 512), (512, 1408)), OpClass.MATRIX) == "gemm:fed:wide"  # a Llama prefill's MLP
    assert kernel_family(fed((32, 256), (256, 512)), OpClass.MATRIX) == "gemm:fed:wide"
    assert kernel_family(fed((32, 255), (255, 512)), OpClass.MATRIX) == "gemm:fed"
    assert kernel_family(fed((6, 1500, 64), (6, 64, 1500)), OpClass.MATRIX) == "gemm:fed"  # per matrix 375 KiB
    assert kernel_family(fed((12, 128, 64), (12, 64, 128)), OpClass.MATRIX) == "gemm:fed"


def test_one_row_stays_on_the_gemv_path_and_aliasing_still_applies():
    """A decode step's one row goes to MLAS's GEMV (no packing) or, scaled, NO_GEMV; a wide B read by A rows 4 KiB
    apart is both."""
    assert kernel_family(fed((1, 512), (512, 1408)), OpClass.MATRIX) == "gemm:fed"
    assert kernel_family(fed((8, 1, 64), (8, 2048, 64), alpha=0.125, transB=1), OpClass.MATRIX) == "gemm:fed:nogemv"
    assert kernel_family(fed((32, 1024), (1024, 768)), OpClass.MATRIX) == "gemm:fed:wide:aliased"


def test_a_wide_fed_gemm_takes_its_own_rate_and_an_older_calibration_the_fed_one():
    """Measured on a Xeon with AMX: [32, 768] x [768, 768] fed 90 GFLOP/s, attention products 126-133."""
    assert refined_rates("gemm:fed", "gemm:fed:wide", 130e9, 90e9, intensity=14.7) == \
        pytest.approx((90e9, 130e9, 130e9))


def test_the_suite_times_wide_fed_gemms_at_few_rows_and_many():
    from planner.calibration.suite import FED_GEMM

    wide = [(h, m, k, n) for h, m, k, n in FED_GEMM if m > 1 and 4 * k * n >= WIDE_B_BYTES]
    rows = sorted(m for _, m, _, _ in wide)
    assert rows[0] <= 4 and rows[-1] >= 512 and sum(32 <= m < 128 for m in rows) >= 2
